//! Buckets kept in Redis so several gateway replicas share one limit.
//!
//! Each check is one `EVALSHA` of [`CHECK`]: the script reads every bucket of the check, decides,
//! and writes them back in one atomic step, using the Redis server's clock so replicas need not
//! agree on time. Times cross the wire in microseconds (exact in Lua's doubles for centuries).

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, Script};
use serde::{Deserialize, Serialize};

use super::{Cell, Decision, LimiterError, allowed, denied};

/// `[limiter.redis]` configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisLimiterConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Longest a check waits for Redis before deciding locally.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Prefix of every bucket name.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

fn default_timeout_ms() -> u64 {
    50
}

fn default_prefix() -> String {
    "ai:ratelimit".to_owned()
}

/// KEYS: bucket names. ARGV: emission (us), capacity, cost for each key, in order.
/// Returns {1, reset_us of each bucket...} or {0, index of the refusing bucket, wait_us,
/// reset_us of the first bucket with this request's cost (0 when the first refused)}.
const CHECK: &str = r"
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local tats = {}
for i = 1, #KEYS do
  local emission = tonumber(ARGV[3 * i - 2])
  local capacity = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * emission
  local limit_at = now + capacity * emission
  if new_tat > limit_at then
    local first = 0
    if i > 1 then first = tats[1] - now end
    return {0, i, new_tat - limit_at, first}
  end
  tats[i] = new_tat
end
for i = 1, #KEYS do
  if tonumber(ARGV[3 * i]) > 0 then
    redis.call('SET', KEYS[i], tats[i], 'PX', math.floor((tats[i] - now) / 1000) + 1)
  end
end
local resets = {1}
for i = 1, #KEYS do
  resets[i + 1] = tats[i] - now
end
return resets
";

/// KEYS[1]: bucket. ARGV: emission (us), cost. Adds the cost whether or not it fits.
const CHARGE: &str = r"
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[2]) * tonumber(ARGV[1])
redis.call('SET', KEYS[1], tat, 'PX', math.floor((tat - now) / 1000) + 1)
return 1
";

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub(super) enum RedisUnavailable {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis script returned {0:?}")]
    Reply(Vec<i64>),
}

#[derive(Debug)]
pub(super) struct RedisBuckets {
    connection: ConnectionManager,
    timeout: Duration,
    prefix: String,
    check: Script,
    charge: Script,
}

impl RedisBuckets {
    pub fn new(config: &RedisLimiterConfig) -> Result<Self, LimiterError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = Client::open(config.url.as_str()).map_err(LimiterError::RedisUrl)?;
        // Lazy: the gateway starts whether or not Redis is up, and reconnects by itself later.
        let connection = ConnectionManager::new_lazy_with_config(
            client,
            redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1),
        )
        .map_err(LimiterError::RedisUrl)?;
        Ok(Self {
            connection,
            timeout,
            prefix: config.key_prefix.clone(),
            check: Script::new(CHECK),
            charge: Script::new(CHARGE),
        })
    }

    pub async fn check(&self, cells: &[Cell<'_>]) -> Result<Decision, RedisUnavailable> {
        let mut invocation = self.check.prepare_invoke();
        for cell in cells {
            invocation
                .key(format!("{}:{cell}", self.prefix))
                .arg(micros(cell.rate.emission).max(1))
                .arg(cell.rate.capacity)
                .arg(cell.cost);
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| RedisUnavailable::Timeout(self.timeout))??;
        let from_micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        match reply[..] {
            [1, ref resets @ ..] if resets.len() == cells.len() => {
                let resets: Vec<Duration> = resets.iter().copied().map(from_micros).collect();
                Ok(allowed(cells, &resets))
            }
            [0, index, wait_us, first_us] => {
                let index = usize::try_from(index - 1)
                    .ok()
                    .filter(|index| *index < cells.len())
                    .ok_or_else(|| RedisUnavailable::Reply(reply.clone()))?;
                let key_reset = (index > 0).then(|| from_micros(first_us));
                Ok(denied(cells, index, from_micros(wait_us), key_reset))
            }
            _ => Err(RedisUnavailable::Reply(reply)),
        }
    }

    pub async fn charge(&self, cell: &Cell<'_>) -> Result<(), RedisUnavailable> {
        let mut invocation = self.charge.prepare_invoke();
        invocation
            .key(format!("{}:{cell}", self.prefix))
            .arg(micros(cell.rate.emission).max(1))
            .arg(cell.cost);
        let mut connection = self.connection.clone();
        let _: i64 = tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| RedisUnavailable::Timeout(self.timeout))??;
        Ok(())
    }
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}
