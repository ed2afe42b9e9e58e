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

use super::key::KEY_PREFIX;
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

/// Keys a clear looks at per SCAN step: one round trip each, short enough not to stall Redis.
const CLEAR_BATCH: usize = 500;

/// Each command of a clear may take at least this long: a SCAN step over a large keyspace
/// is slower than the GET the lookup timeout is sized for.
const CLEAR_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// Removes one entry.
    pub async fn remove(&self, key: &str) -> Result<(), RedisTierError> {
        let mut connection = self.connection.clone();
        self.bounded(connection.unlink::<_, ()>(key)).await
    }

    /// Removes every key of this cache ([`KEY_PREFIX`]) and nothing else in the database:
    /// SCAN with MATCH in steps of [`CLEAR_BATCH`], each step's keys UNLINKed (freed off
    /// Redis's main thread). Never FLUSHDB: the database may hold other data, such as the rate
    /// limiter's buckets. Returns how many keys were removed.
    pub async fn clear(&self) -> Result<u64, RedisTierError> {
        let pattern = format!("{KEY_PREFIX}*");
        let timeout = self.timeout.max(CLEAR_COMMAND_TIMEOUT);
        let mut connection = self.connection.clone();
        let (mut cursor, mut removed) = (0u64, 0u64);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) =
                within(timeout, scan.query_async(&mut connection)).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                let unlinked: u64 = within(timeout, unlink.query_async(&mut connection)).await?;
                removed += unlinked;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisTierError> {
        within(self.timeout, command).await
    }
}

/// One Redis command, bounded by `timeout`.
async fn within<T>(
    timeout: Duration,
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RedisTierError> {
    tokio::time::timeout(timeout, command)
        .await
        .map_err(|_| RedisTierError::Timeout(timeout))?
        .map_err(RedisTierError::from)
}
