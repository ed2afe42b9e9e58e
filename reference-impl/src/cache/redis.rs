//! The optional second tier: completions shared through Redis between gateway replicas.
//!
//! Values are stored as encoded in memory (one flag byte, then the raw or LZ4 body) under the
//! key's string form. Every command is bounded by `timeout_ms`; a failure is reported to the
//! caller, which counts it and carries on with the memory tier alone.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, SetExpiry, SetOptions};
use serde::{Deserialize, Serialize};

use super::memory::Encoded;

/// `[cache.redis]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCacheConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Longest a lookup or write waits for Redis.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Lifetime of entries in Redis.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
}

fn default_timeout_ms() -> u64 {
    20
}

fn default_ttl_secs() -> u64 {
    3_600
}

/// Why Redis could not serve a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisTierError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis holds a value this cache did not write")]
    Corrupt,
}

const RAW: u8 = 0;
const LZ4: u8 = 1;

#[derive(Clone)]
pub(crate) struct RedisTier {
    connection: ConnectionManager,
    timeout: Duration,
    ttl_secs: u64,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("timeout", &self.timeout)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// Prepares a connection that is opened on first use and reopened after failures.
    pub fn new(config: &RedisCacheConfig) -> Result<Self, redis::RedisError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let connection = ConnectionManager::new_lazy_with_config(
            Client::open(config.url.as_str())?,
            redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1),
        )?;
        Ok(Self {
            connection,
            timeout,
            ttl_secs: config.ttl_secs,
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Encoded>, RedisTierError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = self.bounded(connection.get(key)).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let (flag, data) = value.split_first().ok_or(RedisTierError::Corrupt)?;
        let compressed = match *flag {
            RAW => false,
            LZ4 => true,
            _ => return Err(RedisTierError::Corrupt),
        };
        Ok(Some(Encoded {
            data: Bytes::copy_from_slice(data),
            compressed,
        }))
    }

    pub async fn set(&self, key: &str, encoded: &Encoded) -> Result<(), RedisTierError> {
        let mut value = BytesMut::with_capacity(encoded.data.len() + 1);
        value.put_u8(if encoded.compressed { LZ4 } else { RAW });
        value.put_slice(&encoded.data);
        let options = SetOptions::default().with_expiration(SetExpiry::EX(self.ttl_secs));
        let mut connection = self.connection.clone();
        self.bounded(connection.set_options::<_, _, ()>(key, &value[..], options))
            .await
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisTierError> {
        tokio::time::timeout(self.timeout, command)
            .await
            .map_err(|_| RedisTierError::Timeout(self.timeout))?
            .map_err(RedisTierError::from)
    }
}
