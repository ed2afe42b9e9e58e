//! Rate limiting per API key tier, per model and by tokens per minute (GCRA).
//!
//! Contract:
//! - Every request is checked against its key's tier quota (free/pro/enterprise: 100/1000/10000
//!   requests per hour by default), the model's quota when one is configured, and, when the tier
//!   has a `tokens_per_minute` budget, whether that budget is still positive. A check admits all
//!   of them or none (a refused check takes nothing from any bucket).
//! - Token usage is only known after the response, so it is charged with
//!   [`RateLimiter::charge_tokens`]; a large response can push the budget negative, which refuses
//!   the key's next requests until it has refilled.
//! - API keys enter as a [`KeyId`] (SHA-256, truncated): the raw key never reaches a bucket name,
//!   a metric or a log line.
//! - With `[limiter.redis]`, one atomic Lua script per check holds the buckets, so replicas share
//!   limits; if Redis errors or does not answer within `timeout_ms`, the check falls back to the
//!   local buckets and [`LimiterStats::redis_fallbacks`] counts it. A request is never failed
//!   because Redis is unavailable.
//! - A [`Decision`] carries what the rate-limit headers need ([`Decision::write_headers`]):
//!   OpenAI's `x-ratelimit-{limit,remaining,reset}-requests` for the key's tier quota (on a
//!   refusal by the model's quota, that quota), the same `-tokens` triple when the tier has a
//!   `tokens_per_minute` budget, the IETF draft's structured `RateLimit` and `RateLimit-Policy`
//!   fields for the request quota (policy `"default"`), and `retry-after` on a refusal.
//!
//! ```
//! # use reference_impl::limiter::{KeyId, LimiterConfig, RateLimiter, Tier};
//! # async fn handle(mut headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::new(LimiterConfig::default())?;
//! let key = KeyId::from_api_key("sk-secret");
//! let decision = limiter.check(&key, Tier::Free, "gpt-4o-mini").await;
//! decision.write_headers(&mut headers); // 429 with these headers when `decision.is_denied()`
//! # Ok(()) }
//! ```

mod gcra;
mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use gcra::{LocalStore, Rate};
pub use redis::RedisLimiterConfig;

/// `[limiter]` configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimiterConfig {
    /// `false` admits everything (and still reports no headers).
    pub enabled: bool,
    pub tiers: TierLimits,
    /// Quotas shared by all keys for one model, by model name.
    pub models: BTreeMap<String, ModelLimit>,
    /// Shared buckets in Redis; local buckets when absent.
    pub redis: Option<RedisLimiterConfig>,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tiers: TierLimits::default(),
            models: BTreeMap::new(),
            redis: None,
        }
    }
}

/// `[limiter.tiers]`: one quota per tier.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierLimits {
    pub free: TierLimit,
    pub pro: TierLimit,
    pub enterprise: TierLimit,
}

impl Default for TierLimits {
    fn default() -> Self {
        Self {
            free: TierLimit::per_hour(100),
            pro: TierLimit::per_hour(1_000),
            enterprise: TierLimit::per_hour(10_000),
        }
    }
}

/// A key's quota: `requests` per `period_secs` (also the burst), plus an optional token budget.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimit {
    pub requests: u64,
    #[serde(default = "one_hour")]
    pub period_secs: u64,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

impl TierLimit {
    fn per_hour(requests: u64) -> Self {
        Self {
            requests,
            period_secs: one_hour(),
            tokens_per_minute: None,
        }
    }
}

fn one_hour() -> u64 {
    3_600
}

/// A model's quota shared by every key: `requests` per `period_secs`, which is also the burst.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimit {
    pub requests: u64,
    #[serde(default = "one_second")]
    pub period_secs: u64,
}

fn one_second() -> u64 {
    1
}

impl LimiterConfig {
    /// Rejects quotas that could never admit anything.
    pub fn validate(&self) -> Result<(), LimiterError> {
        let tiers = [
            ("free", &self.tiers.free),
            ("pro", &self.tiers.pro),
            ("enterprise", &self.tiers.enterprise),
        ];
        for (name, limit) in tiers {
            let field = |f: &str| format!("limiter.tiers.{name}.{f}");
            if limit.requests == 0 {
                return Err(LimiterError::Config(field("requests")));
            }
            if limit.period_secs == 0 {
                return Err(LimiterError::Config(field("period_secs")));
            }
            if limit.tokens_per_minute == Some(0) {
                return Err(LimiterError::Config(field("tokens_per_minute")));
            }
        }
        for (model, limit) in &self.models {
            let field = |f: &str| format!("limiter.models.\"{model}\".{f}");
            if limit.requests == 0 {
                return Err(LimiterError::Config(field("requests")));
            }
            if limit.period_secs == 0 {
                return Err(LimiterError::Config(field("period_secs")));
            }
        }
        Ok(())
    }
}

/// Errors building a limiter.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("{0} must be at least 1")]
    Config(String),
    #[error("limiter.redis.url: {0}")]
    RedisUrl(#[source] ::redis::RedisError),
}

/// An API key's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

/// The one-way identity of an API key: the first 16 bytes of its SHA-256. Hash once per request
/// (at authentication) and pass this around; it is what buckets, metrics and logs see.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    pub fn from_api_key(api_key: &str) -> Self {
        let digest = Sha256::digest(api_key.as_bytes());
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    fn bucket(&self, scope: Scope) -> u64 {
        let mut bytes = [0u8; 17];
        bytes[0] = scope as u8;
        bytes[1..].copy_from_slice(&self.0);
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Which quota a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The key's requests-per-period tier quota.
    Key,
    /// The model's shared quota.
    Model,
    /// The key's tokens-per-minute budget.
    Tokens,
}

/// The state of the quota a decision reports, as the `x-ratelimit-*` headers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset: Duration,
    /// The period over which `limit` units come back (the policy's window).
    pub window: Duration,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; `quota` is the key's tier quota after this request (`None` when disabled),
    /// `tokens` the key's token budget when its tier has one.
    Allowed {
        quota: Option<Quota>,
        tokens: Option<Quota>,
    },
    /// Refused by `scope`; `quota` describes that scope, `retry_after` when it would admit.
    /// When the token budget refused, `requests` is the key's tier quota (which the refusal
    /// took nothing from).
    Denied {
        scope: Scope,
        quota: Quota,
        retry_after: Duration,
        requests: Option<Quota>,
    },
}

impl Decision {
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Denied { .. })
    }

    /// Writes the rate-limit headers, all durations in whole seconds rounded up:
    /// - the request quota as `x-ratelimit-{limit,remaining,reset}-requests` (reset with an `s`
    ///   suffix, as OpenAI writes it) and as the IETF draft's structured fields
    ///   `RateLimit-Policy: "default";q=LIMIT;w=WINDOW` and
    ///   `RateLimit: "default";r=REMAINING;t=RESET`;
    /// - the token budget, when the tier has one and this check reached it, as
    ///   `x-ratelimit-{limit,remaining,reset}-tokens`;
    /// - `retry-after` when denied.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let (requests, tokens, retry_after) = match *self {
            Self::Allowed { quota: None, .. } => return,
            Self::Allowed {
                quota: Some(quota),
                tokens,
            } => (Some(quota), tokens, None),
            Self::Denied {
                scope: Scope::Tokens,
                quota,
                retry_after,
                requests,
            } => (requests, Some(quota), Some(retry_after)),
            Self::Denied {
                quota, retry_after, ..
            } => (Some(quota), None, Some(retry_after)),
        };
        if let Some(quota) = requests {
            const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
            const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
            const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
            const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
            const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
            headers.insert(LIMIT, HeaderValue::from(quota.limit));
            headers.insert(REMAINING, HeaderValue::from(quota.remaining));
            headers.insert(RESET, seconds_header(quota.reset, "s"));
            let window = quota.window.as_secs_f64().round() as u64;
            headers.insert(
                POLICY,
                structured(format_args!("\"default\";q={};w={window}", quota.limit)),
            );
            headers.insert(
                RATELIMIT,
                structured(format_args!(
                    "\"default\";r={};t={}",
                    quota.remaining,
                    whole_seconds(quota.reset)
                )),
            );
        }
        if let Some(quota) = tokens {
            const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
            const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
            const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
            headers.insert(LIMIT, HeaderValue::from(quota.limit));
            headers.insert(REMAINING, HeaderValue::from(quota.remaining));
            headers.insert(RESET, seconds_header(quota.reset, "s"));
        }
        if let Some(wait) = retry_after {
            headers.insert(http::header::RETRY_AFTER, seconds_header(wait, ""));
        }
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn seconds_header(duration: Duration, suffix: &str) -> HeaderValue {
    structured(format_args!("{}{suffix}", whole_seconds(duration)))
}

/// A header value of digits, quotes, letters and `;=`: always a valid header value.
fn structured(value: fmt::Arguments<'_>) -> HeaderValue {
    HeaderValue::try_from(value.to_string()).unwrap_or(HeaderValue::from_static("1"))
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimiterStats {
    pub allowed: u64,
    pub denied_key: u64,
    pub denied_model: u64,
    pub denied_tokens: u64,
    /// Checks that Redis could not answer in time and the local buckets decided.
    pub redis_fallbacks: u64,
}

/// One bucket a check touches: its identity, shape and what the request costs from it.
#[derive(Debug, Clone, Copy)]
struct Cell<'a> {
    scope: Scope,
    /// Whose bucket it is: the key for `Key` and `Tokens`, the model for `Model`.
    subject: Subject<'a>,
    /// Local identity: a hash of scope and subject.
    id: u64,
    rate: Rate,
    cost: u64,
}

#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    Key(KeyId),
    Model(&'a str),
}

impl fmt::Display for Cell<'_> {
    /// The bucket's name in Redis, without the configured prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            Scope::Key => "k",
            Scope::Model => "m",
            Scope::Tokens => "t",
        };
        match self.subject {
            Subject::Key(key) => write!(f, "{scope}:{key}"),
            Subject::Model(model) => write!(f, "{scope}:{model}"),
        }
    }
}

/// The (at most three) cells of one check, on the stack: key first, then model, then tokens.
#[derive(Debug)]
struct Cells<'a> {
    cells: [Cell<'a>; 3],
    len: usize,
}

impl<'a> Cells<'a> {
    fn new(key_cell: Cell<'a>) -> Self {
        Self {
            cells: [key_cell; 3],
            len: 1,
        }
    }

    fn push(&mut self, cell: Cell<'a>) {
        self.cells[self.len] = cell;
        self.len += 1;
    }

    fn as_slice(&self) -> &[Cell<'a>] {
        &self.cells[..self.len]
    }
}

/// The rate limiter. Share it behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct RateLimiter {
    config: LimiterConfig,
    epoch: Instant,
    local: LocalStore,
    redis: Option<redis::RedisBuckets>,
    allowed: AtomicU64,
    denied: [AtomicU64; 3],
    redis_fallbacks: AtomicU64,
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl RateLimiter {
    /// Builds the limiter; a Redis connection, if configured, is opened on first use.
    pub fn new(config: LimiterConfig) -> Result<Self, LimiterError> {
        config.validate()?;
        let redis = config
            .redis
            .as_ref()
            .map(redis::RedisBuckets::new)
            .transpose()?;
        Ok(Self {
            config,
            epoch: Instant::now(),
            local: LocalStore::new(),
            redis,
            allowed: AtomicU64::new(0),
            denied: Default::default(),
            redis_fallbacks: AtomicU64::new(0),
        })
    }

    /// Checks (and on admission takes) one request for `key` of `tier` asking for `model`.
    pub async fn check(&self, key: &KeyId, tier: Tier, model: &str) -> Decision {
        if !self.config.enabled {
            return Decision::Allowed {
                quota: None,
                tokens: None,
            };
        }
        let cells = self.cells(key, tier, model);
        let decision = match &self.redis {
            Some(redis) => match redis.check(cells.as_slice()).await {
                Ok(decision) => decision,
                Err(error) => {
                    self.redis_fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, "rate limiter falling back to local buckets");
                    self.check_local(cells.as_slice())
                }
            },
            None => self.check_local(cells.as_slice()),
        };
        self.count(&decision);
        decision
    }

    /// The same check on the local buckets only, ignoring `[limiter.redis]`: for callers that
    /// cannot await, and for measuring the local path.
    pub fn check_local_now(&self, key: &KeyId, tier: Tier, model: &str) -> Decision {
        if !self.config.enabled {
            return Decision::Allowed {
                quota: None,
                tokens: None,
            };
        }
        let decision = self.check_local(self.cells(key, tier, model).as_slice());
        self.count(&decision);
        decision
    }

    /// Charges `tokens` of usage to the key's tokens-per-minute budget, if its tier has one.
    pub async fn charge_tokens(&self, key: &KeyId, tier: Tier, tokens: u64) {
        let Some(cell) = self.token_cell(key, tier, tokens) else {
            return;
        };
        if let Some(redis) = &self.redis {
            match redis.charge(&cell).await {
                Ok(()) => return,
                Err(error) => {
                    self.redis_fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, "token charge falling back to local buckets");
                }
            }
        }
        self.local.charge(cell.id, self.now(), cell.rate, cell.cost);
    }

    pub fn stats(&self) -> LimiterStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LimiterStats {
            allowed: load(&self.allowed),
            denied_key: load(&self.denied[Scope::Key as usize]),
            denied_model: load(&self.denied[Scope::Model as usize]),
            denied_tokens: load(&self.denied[Scope::Tokens as usize]),
            redis_fallbacks: load(&self.redis_fallbacks),
        }
    }

    fn cells<'a>(&self, key: &KeyId, tier: Tier, model: &'a str) -> Cells<'a> {
        let limit = self.tier_limit(tier);
        let mut cells = Cells::new(Cell {
            scope: Scope::Key,
            subject: Subject::Key(*key),
            id: key.bucket(Scope::Key),
            rate: Rate::per_period(
                limit.requests,
                limit.period_secs.saturating_mul(NANOS_PER_SEC),
            ),
            cost: 1,
        });
        if let Some(limit) = self.config.models.get(model) {
            cells.push(Cell {
                scope: Scope::Model,
                subject: Subject::Model(model),
                id: xxhash_rust::xxh3::xxh3_64_with_seed(model.as_bytes(), Scope::Model as u64),
                rate: Rate::per_period(
                    limit.requests,
                    limit.period_secs.saturating_mul(NANOS_PER_SEC),
                ),
                cost: 1,
            });
        }
        if let Some(cell) = self.token_cell(key, tier, 0) {
            cells.push(cell);
        }
        cells
    }

    fn token_cell(&self, key: &KeyId, tier: Tier, tokens: u64) -> Option<Cell<'static>> {
        let budget = self.tier_limit(tier).tokens_per_minute?;
        Some(Cell {
            scope: Scope::Tokens,
            subject: Subject::Key(*key),
            id: key.bucket(Scope::Tokens),
            rate: Rate::per_period(budget, 60 * NANOS_PER_SEC),
            cost: tokens,
        })
    }

    fn tier_limit(&self, tier: Tier) -> &TierLimit {
        match tier {
            Tier::Free => &self.config.tiers.free,
            Tier::Pro => &self.config.tiers.pro,
            Tier::Enterprise => &self.config.tiers.enterprise,
        }
    }

    /// Takes from every cell in order, giving back what was taken if a later one refuses.
    fn check_local(&self, cells: &[Cell<'_>]) -> Decision {
        let now = self.now();
        let mut resets = [Duration::ZERO; 3];
        for (index, cell) in cells.iter().enumerate() {
            match self.local.take(cell.id, now, cell.rate, cell.cost) {
                Ok(reset) => resets[index] = Duration::from_nanos(reset),
                Err(wait) => {
                    for taken in &cells[..index] {
                        self.local.refund(taken.id, taken.rate, taken.cost);
                    }
                    let key_reset = (index > 0).then_some(resets[0]);
                    return denied(cells, index, Duration::from_nanos(wait), key_reset);
                }
            }
        }
        allowed(cells, &resets)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn count(&self, decision: &Decision) {
        match decision {
            Decision::Allowed { .. } => self.allowed.fetch_add(1, Ordering::Relaxed),
            Decision::Denied { scope, .. } => {
                self.denied[*scope as usize].fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The quota of `cell` whose bucket is full again after `reset`.
fn quota(cell: &Cell<'_>, reset: Duration) -> Quota {
    let rate = cell.rate;
    let reset_nanos = u64::try_from(reset.as_nanos()).unwrap_or(u64::MAX);
    Quota {
        limit: rate.capacity,
        remaining: rate.remaining(reset_nanos),
        reset,
        window: Duration::from_nanos(rate.capacity.saturating_mul(rate.emission)),
    }
}

/// The decision for an admitted check, from each cell's time until full (`resets` in the
/// order of `cells`: the key first, the token budget, when there is one, last).
fn allowed(cells: &[Cell<'_>], resets: &[Duration]) -> Decision {
    let tokens = cells
        .iter()
        .zip(resets)
        .find(|(cell, _)| cell.scope == Scope::Tokens)
        .map(|(cell, reset)| quota(cell, *reset));
    Decision::Allowed {
        quota: Some(quota(&cells[0], resets[0])),
        tokens,
    }
}

/// The decision when `cells[index]` refused; it admits the request after `retry_after`.
/// `key_reset` is the key cell's time until full as the check left it (this request's cost
/// included, then given back) when a later cell refused.
fn denied(
    cells: &[Cell<'_>],
    index: usize,
    retry_after: Duration,
    key_reset: Option<Duration>,
) -> Decision {
    let cell = &cells[index];
    let rate = cell.rate;
    // Full again once the refused cost fits (`retry_after`) plus the rest of the capacity refills.
    let rest = rate
        .capacity
        .saturating_sub(cell.cost)
        .saturating_mul(rate.emission);
    let key = &cells[0];
    let requests = key_reset.map(|reset| {
        let given_back = Duration::from_nanos(key.cost.saturating_mul(key.rate.emission));
        quota(key, reset.saturating_sub(given_back))
    });
    Decision::Denied {
        scope: cell.scope,
        quota: Quota {
            remaining: 0,
            reset: retry_after + Duration::from_nanos(rest),
            ..quota(cell, Duration::ZERO)
        },
        retry_after,
        requests,
    }
}
