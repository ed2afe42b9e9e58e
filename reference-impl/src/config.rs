//! Gateway configuration: TOML with `deny_unknown_fields`, defaults that run out of the box,
//! environment overrides for secrets, and validation errors that name the offending field.
//!
//! Every section is a plain struct with public fields and a `Default`, so a caller can build a
//! config in code (the benchmark harness points providers at mock servers this way) as easily as
//! from a file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::cache::CacheConfig;
use crate::limiter::{LimiterConfig, Tier};
use crate::limits;
use crate::queue::QueueConfig;

/// `[dashboard]`: its types live with the dashboard, which is private to the crate.
pub use crate::dashboard::DashboardConfig;
pub use crate::dashboard::alerts::AlertThresholds;
/// `[websocket]`: its type lives with the WebSocket route.
pub use crate::realtime::WebSocketConfig;

/// Environment variable that overrides `admin.token`.
pub const ADMIN_TOKEN_ENV: &str = "GATEWAY_ADMIN_TOKEN";

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub routing: RoutingConfig,
    /// Upstream providers, tried in the order the router ranks them.
    pub providers: Vec<ProviderConfig>,
    /// Model name -> candidate providers. A route named `*` serves any model not listed.
    pub models: Vec<ModelRoute>,
    /// Response cache and request coalescing; off unless a `[cache]` section is given.
    pub cache: CacheConfig,
    /// Rate limits per key tier and model; off unless a `[limiter]` section is given.
    pub limiter: LimiterConfig,
    /// Circuit breaker settings, one breaker per provider.
    pub breaker: BreakerConfig,
    /// Per-provider concurrency limit and priority wait queue; none unless `[queue]` is given.
    pub queue: Option<QueueConfig>,
    /// Client API keys and their tiers (for rate limits and queue priority).
    pub api_keys: Vec<ApiKey>,
    /// Tier of requests whose key is absent or not listed.
    pub default_tier: Tier,
    /// Deliberate slowdown for proving that a performance gate catches one; off by default.
    pub inject: InjectConfig,
    /// Alert thresholds of the live dashboard (`/admin/dashboard`).
    pub dashboard: DashboardConfig,
    /// Keep-alive and bounds of `GET /v1/realtime/chat`.
    pub websocket: WebSocketConfig,
}

/// `[inject]`: makes this gateway a known amount slower, so a load gate can be shown to flag
/// it (and an unchanged gateway shown not to be flagged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InjectConfig {
    /// Microseconds of CPU work added to every chat request inside the gateway, as a slower
    /// code path would add: it shows in `x-gateway-overhead-us` and costs throughput once the
    /// gateway is CPU-bound. 0 adds nothing.
    pub busy_us: u64,
    /// Every Nth chat request panics inside the gateway once its upstream has answered, as a
    /// bug would: the panic is caught for that request alone (a 500 in the front door's error
    /// shape, `gateway_panics_total`), and whatever the request held (in-flight and stream
    /// gauges, queue slot, a coalesced flight its followers wait on) is released as it
    /// unwinds. 0 never panics.
    pub panic_one_in: u64,
}

/// A client API key and its tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The key as clients send it (`authorization: Bearer KEY`); only its hash is kept.
    pub key: String,
    pub tier: Tier,
}

impl Default for GatewayConfig {
    /// One OpenAI-compatible provider on loopback port 9000 serving every model: the
    /// `mock-providers` binary's default, so `gateway` with no config file works against it.
    fn default() -> Self {
        Self::with_providers(vec![ProviderConfig::new(
            "local",
            ProviderKind::OpenAi,
            "http://127.0.0.1:9000",
        )])
    }
}

impl GatewayConfig {
    /// A config with default settings, the given providers, and one `*` route that tries the
    /// providers in the order given, passing the requested model name through unchanged.
    pub fn with_providers(providers: Vec<ProviderConfig>) -> Self {
        let candidates = providers
            .iter()
            .map(|p| Candidate {
                provider: p.name.clone(),
                model: None,
            })
            .collect();
        Self {
            server: ServerConfig::default(),
            admin: AdminConfig::default(),
            routing: RoutingConfig::default(),
            providers,
            models: vec![ModelRoute {
                name: ANY_MODEL.to_owned(),
                candidates,
            }],
            cache: CacheConfig {
                enabled: false,
                ..CacheConfig::default()
            },
            limiter: LimiterConfig {
                enabled: false,
                ..LimiterConfig::default()
            },
            breaker: BreakerConfig::default(),
            queue: None,
            api_keys: Vec::new(),
            default_tier: Tier::Free,
            inject: InjectConfig::default(),
            dashboard: DashboardConfig::default(),
            websocket: WebSocketConfig::default(),
        }
    }

    /// Reads, parses, applies environment overrides and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_toml(&text)?;
        config.apply_env();
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text. Does not read the environment and does not validate.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |span| span.start.min(text.len()));
            let line = text[..start].matches('\n').count() + 1;
            // toml names unknown and missing fields in its message but not a mistyped one;
            // the key on the offending line does.
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(key, _)| key.trim().to_owned())
                .filter(|key| !key.is_empty() && !key.starts_with('['));
            ConfigError::Parse {
                line: e.span().map(|_| line),
                key,
                message: e.message().to_owned(),
            }
        })
    }

    /// Replaces secrets with values from the environment: `GATEWAY_ADMIN_TOKEN` for the admin
    /// token and each provider's `api_key_env` variable for its API key. Secrets then never
    /// need to live in the config file.
    pub fn apply_env(&mut self) {
        if let Some(token) = non_empty_env(ADMIN_TOKEN_ENV) {
            self.admin.token = Some(token);
        }
        for provider in &mut self.providers {
            if let Some(key) = provider.api_key_env.as_deref().and_then(non_empty_env) {
                provider.api_key = Some(key);
            }
        }
    }

    /// Checks every constraint the gateway relies on; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        ensure(
            s.body_limit_bytes > 0,
            "server.body_limit_bytes",
            "must be > 0",
        )?;
        self.routing.validate()?;
        self.check_ceilings()?;
        component("limiter", self.limiter.validate())?;
        component("breaker", self.breaker.validate())?;
        self.dashboard.validate()?;
        self.websocket.validate()?;
        if let Some(queue) = &self.queue {
            component("queue", queue.validate())?;
        }
        ensure(
            !self.providers.is_empty(),
            "providers",
            "at least one provider is required",
        )?;
        for (i, p) in self.providers.iter().enumerate() {
            p.validate(&format!("providers[{i}]"))?;
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                return invalid(format!("providers[{i}].name"), "duplicate provider name");
            }
        }
        ensure(
            !self.models.is_empty(),
            "models",
            "at least one model route is required",
        )?;
        for (i, m) in self.models.iter().enumerate() {
            ensure(
                !m.name.is_empty(),
                &format!("models[{i}].name"),
                "must not be empty",
            )?;
            if self.models[..i].iter().any(|n| n.name == m.name) {
                return invalid(format!("models[{i}].name"), "duplicate model route");
            }
            ensure(
                !m.candidates.is_empty(),
                &format!("models[{i}].candidates"),
                "at least one candidate is required",
            )?;
            for (j, c) in m.candidates.iter().enumerate() {
                if !self.providers.iter().any(|p| p.name == c.provider) {
                    return invalid(
                        format!("models[{i}].candidates[{j}].provider"),
                        format!("unknown provider `{}`", c.provider),
                    );
                }
            }
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Every duration and count of the config against its ceiling in [`limits`], so an absurd
    /// value is refused here, naming its field, instead of panicking in `Instant + Duration`
    /// or allocating without bound later.
    fn check_ceilings(&self) -> Result<(), ConfigError> {
        let (s, r) = (&self.server, &self.routing);
        limits::at_most(
            "server.body_limit_bytes",
            s.body_limit_bytes as u64,
            limits::MAX_BODY_LIMIT_BYTES,
        )?;
        limits::at_most(
            "server.max_connections",
            s.max_connections as u64,
            limits::MAX_CONNECTIONS,
        )?;
        ensure(
            s.max_connections > crate::server::RESERVED_CONNECTIONS,
            "server.max_connections",
            "must be more than the 8 connections reserved for /health, /ready, /metrics and the admin API",
        )?;
        limits::at_most(
            "routing.max_attempts",
            r.max_attempts.into(),
            limits::MAX_ATTEMPTS,
        )?;
        limits::at_most("inject.busy_us", self.inject.busy_us, limits::MAX_BUSY_US)?;
        let mut durations: Vec<(String, u64)> = [
            ("server.shutdown_grace_ms", s.shutdown_grace_ms),
            ("server.header_read_timeout_ms", s.header_read_timeout_ms),
            ("routing.attempt_timeout_ms", r.attempt_timeout_ms),
            ("routing.deadline_ms", r.deadline_ms),
            ("routing.backoff_ms", r.backoff_ms),
            ("breaker.ratio_window_secs", self.breaker.ratio_window_secs),
            ("breaker.open_secs", self.breaker.open_secs),
            ("cache.ttl.frequent_secs", self.cache.ttl.frequent_secs),
            ("cache.ttl.moderate_secs", self.cache.ttl.moderate_secs),
            ("cache.ttl.rare_secs", self.cache.ttl.rare_secs),
            ("cache.semantic.timeout_ms", self.cache.semantic.timeout_ms),
            (
                "limiter.tiers.free.period_secs",
                self.limiter.tiers.free.period_secs,
            ),
            (
                "limiter.tiers.pro.period_secs",
                self.limiter.tiers.pro.period_secs,
            ),
            (
                "limiter.tiers.enterprise.period_secs",
                self.limiter.tiers.enterprise.period_secs,
            ),
        ]
        .into_iter()
        .map(|(field, value)| (field.to_owned(), value))
        .collect();
        if let Some(redis) = &self.cache.redis {
            durations.push(("cache.redis.timeout_ms".into(), redis.timeout_ms));
            durations.push(("cache.redis.ttl_secs".into(), redis.ttl_secs));
        }
        if let Some(redis) = &self.limiter.redis {
            durations.push(("limiter.redis.timeout_ms".into(), redis.timeout_ms));
        }
        if let Some(queue) = &self.queue {
            durations.push(("queue.max_wait_ms".into(), queue.max_wait_ms));
            durations.push(("queue.retry_after_secs".into(), queue.retry_after_secs));
        }
        for (model, limit) in &self.limiter.models {
            let field = format!("limiter.models.\"{model}\".period_secs");
            durations.push((field, limit.period_secs));
        }
        for (i, p) in self.providers.iter().enumerate() {
            let pool = &p.pool;
            durations.push((
                format!("providers[{i}].pool.idle_timeout_ms"),
                pool.idle_timeout_ms,
            ));
            durations.push((
                format!("providers[{i}].pool.connect_timeout_ms"),
                pool.connect_timeout_ms,
            ));
        }
        durations
            .iter()
            .try_for_each(|(field, value)| limits::duration_at_most(field, *value))
    }
}

/// The route name that matches any model without a route of its own.
pub const ANY_MODEL: &str = "*";

/// The listening socket and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// On shutdown, in-flight streams get this long to finish before they are ended.
    pub shutdown_grace_ms: u64,
    /// Request headers with these prefixes are forwarded to the upstream. The default forwards
    /// the mock providers' per-request control headers so a load run can inject faults through
    /// the gateway.
    pub forward_header_prefixes: Vec<String>,
    /// A client must send a request's whole header block within this long, or its connection
    /// is closed (slowloris defence). The clock also runs while a keep-alive connection waits
    /// for its next request, so it doubles as the idle timeout. 0 turns it off.
    pub header_read_timeout_ms: u64,
    /// Client connections open at once, at most. The last
    /// [`RESERVED_CONNECTIONS`](crate::server::RESERVED_CONNECTIONS) of them are kept for
    /// `/health`, `/ready`, `/metrics` and the admin API, one request per connection, so
    /// probes are answered while the cap is full. Past the cap, new connections wait in the
    /// kernel's listen backlog (not accepted, not refused) until a connection closes. Each
    /// connection is one file descriptor: keep `ulimit -n` above this plus the upstream pools.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_ms: 10_000,
            forward_header_prefixes: vec!["x-mock-".to_owned()],
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
        }
    }
}

impl ServerConfig {
    /// Moves `listen` to `ip` and `port` where given (command-line flags over the file), and
    /// keeps the configured half of the address that is not.
    pub fn listen_on(&mut self, ip: Option<IpAddr>, port: Option<u16>) {
        if let Some(ip) = ip {
            self.listen.set_ip(ip);
        }
        if let Some(port) = port {
            self.listen.set_port(port);
        }
    }
}

/// The admin API under `/admin/performance/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token for the admin API (overridden by `GATEWAY_ADMIN_TOKEN`). Without one the
    /// admin API answers loopback clients only.
    pub token: Option<String>,
}

/// How candidates are ranked and how failed attempts are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub weights: Weights,
    /// Providers scoring below this reliability are skipped while a healthier one exists.
    pub min_reliability: f64,
    /// Smoothing factor of the latency and reliability moving averages (weight of the newest sample).
    pub ewma_alpha: f64,
    /// A provider's lost reliability halves every this many seconds without new samples, so a
    /// skipped provider is tried again eventually.
    pub reliability_half_life_secs: f64,
    /// Upstream attempts per request, across all candidates.
    pub max_attempts: u32,
    /// Time allowed for one attempt to produce response headers and the first stream event.
    pub attempt_timeout_ms: u64,
    /// Time allowed for all attempts of one request before the first byte reaches the client.
    pub deadline_ms: u64,
    /// Pause before retrying a provider that gave no `retry-after`; doubles per retry.
    pub backoff_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            min_reliability: 0.8,
            ewma_alpha: 0.2,
            reliability_half_life_secs: 30.0,
            max_attempts: 3,
            attempt_timeout_ms: 30_000,
            deadline_ms: 60_000,
            backoff_ms: 50,
        }
    }
}

impl RoutingConfig {
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.weights;
        for (field, value) in [
            ("routing.weights.cost", w.cost),
            ("routing.weights.latency", w.latency),
            ("routing.weights.reliability", w.reliability),
        ] {
            ensure(
                value.is_finite() && value >= 0.0,
                field,
                "must be a number >= 0",
            )?;
        }
        ensure(
            w.cost + w.latency + w.reliability > 0.0,
            "routing.weights",
            "at least one weight must be > 0",
        )?;
        ensure(
            (0.0..=1.0).contains(&self.min_reliability),
            "routing.min_reliability",
            "must be between 0 and 1",
        )?;
        ensure(
            self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0,
            "routing.ewma_alpha",
            "must be in (0, 1]",
        )?;
        ensure(
            self.reliability_half_life_secs.is_finite() && self.reliability_half_life_secs > 0.0,
            "routing.reliability_half_life_secs",
            "must be > 0",
        )?;
        ensure(
            self.max_attempts >= 1,
            "routing.max_attempts",
            "must be >= 1",
        )?;
        ensure(
            self.attempt_timeout_ms > 0,
            "routing.attempt_timeout_ms",
            "must be > 0",
        )?;
        ensure(self.deadline_ms > 0, "routing.deadline_ms", "must be > 0")
    }
}

/// Weights of the routing score; each factor is normalised to 0..=1 before weighting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub cost: f64,
    pub latency: f64,
    pub reliability: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            cost: 0.4,
            latency: 0.3,
            reliability: 0.3,
        }
    }
}

/// The wire protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible `POST {base_url}/v1/chat/completions`; bodies pass through unchanged.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic `POST {base_url}/v1/messages`; requests and responses are translated.
    Anthropic,
}

/// One upstream provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Scheme, host and port, without the `/v1/...` path.
    pub base_url: String,
    /// API key sent upstream; prefer `api_key_env` to keep it out of the file.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Environment variable holding the API key; it wins over `api_key` when set.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Relative price per token; only ratios between providers matter.
    #[serde(default = "default_cost")]
    pub cost: f64,
    /// `max_tokens` sent to Anthropic when the client gave none (Anthropic requires one).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    #[serde(default)]
    pub pool: PoolConfig,
}

fn default_cost() -> f64 {
    1.0
}

fn default_max_tokens() -> u32 {
    4096
}

impl ProviderConfig {
    /// A provider with default cost and pool settings and no API key.
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            api_key_env: None,
            cost: default_cost(),
            default_max_tokens: default_max_tokens(),
            pool: PoolConfig::default(),
        }
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        ensure(
            !self.name.is_empty(),
            &format!("{at}.name"),
            "must not be empty",
        )?;
        let https = match url::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                url.scheme() == "https"
            }
            Ok(_) => return invalid(format!("{at}.base_url"), "must be an http(s) URL"),
            Err(e) => return invalid(format!("{at}.base_url"), e.to_string()),
        };
        ensure(
            https || self.pool.ca_file.is_none(),
            &format!("{at}.pool.ca_file"),
            "applies to an https:// base_url only",
        )?;
        ensure(
            self.cost.is_finite() && self.cost > 0.0,
            &format!("{at}.cost"),
            "must be > 0",
        )?;
        ensure(
            self.default_max_tokens > 0,
            &format!("{at}.default_max_tokens"),
            "must be > 0",
        )?;
        ensure(
            self.pool.connect_timeout_ms > 0,
            &format!("{at}.pool.connect_timeout_ms"),
            "must be > 0",
        )
    }
}

/// Connection pool of one provider's HTTP client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Idle keep-alive connections kept per upstream host.
    pub max_idle_per_host: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Speak HTTP/2 to the upstream: with prior knowledge (cleartext h2c) over `http://`, by
    /// ALPN over `https://`.
    pub http2: bool,
    /// PEM file of certificate authorities trusted for an `https://` base URL besides the
    /// bundled web PKI roots: a private CA, or a mock's self-signed certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_idle_per_host: 512,
            idle_timeout_ms: 90_000,
            connect_timeout_ms: 2_000,
            http2: false,
            ca_file: None,
        }
    }
}

/// Candidates for one model name, in preference order for ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// Model name as clients send it, or `*` for any model.
    pub name: String,
    pub candidates: Vec<Candidate>,
}

/// One provider that can serve a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub provider: String,
    /// Model name sent upstream; defaults to the name the client asked for.
    #[serde(default)]
    pub model: Option<String>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// TOML syntax or type error; toml's message names the field (e.g. "unknown field `x`").
    #[error(
        "invalid config{}{}: {message}",
        .line.map(|l| format!(" at line {l}")).unwrap_or_default(),
        .key.as_deref().map(|k| format!(" (field `{k}`)")).unwrap_or_default()
    )]
    Parse {
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },
    #[error("invalid config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

/// A component's own validation error, which names the field in its message.
fn component<E: std::fmt::Display>(
    section: &str,
    result: Result<(), E>,
) -> Result<(), ConfigError> {
    result.map_err(|e| ConfigError::Invalid {
        field: section.to_owned(),
        reason: e.to_string(),
    })
}

fn ensure(ok: bool, field: &str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        invalid(field.to_owned(), reason)
    }
}

fn invalid(field: String, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        field,
        reason: reason.into(),
    })
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_flags_replace_only_their_half_of_the_address() {
        let configured = || ServerConfig {
            listen: "127.0.0.1:9100".parse().unwrap(),
            ..ServerConfig::default()
        };
        let mut server = configured();
        server.listen_on(None, None);
        assert_eq!(server.listen, configured().listen);
        server.listen_on(None, Some(0));
        assert_eq!(server.listen, "127.0.0.1:0".parse().unwrap());
        let mut server = configured();
        server.listen_on(Some("0.0.0.0".parse().unwrap()), None);
        assert_eq!(server.listen, "0.0.0.0:9100".parse().unwrap());
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let config = GatewayConfig::default();
        config.validate().unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(GatewayConfig::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(
            GatewayConfig::from_toml("").unwrap(),
            GatewayConfig::default()
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let err = GatewayConfig::from_toml("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field_and_line() {
        let err = GatewayConfig::from_toml("[routing]\nmax_attempts = \"three\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("`max_attempts`"),
            "{text}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = GatewayConfig::default();
        config.models[0].candidates[0].provider = "nope".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("models[0].candidates[0].provider"), "{err}");

        let mut config = GatewayConfig::default();
        config.providers[0].base_url = "ftp://x".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("providers[0].base_url"), "{err}");

        let mut config = GatewayConfig::default();
        config.providers[0].pool.ca_file = Some("ca.pem".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("providers[0].pool.ca_file") && err.contains("https://"),
            "a CA for a plain-http upstream is a mistake: {err}"
        );

        let mut config = GatewayConfig::default();
        config.routing.ewma_alpha = 0.0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("routing.ewma_alpha"), "{err}");
    }

    #[test]
    fn absurd_durations_and_counts_are_refused_naming_the_field() {
        type Set = fn(&mut GatewayConfig);
        let cases: [(&str, Set); 8] = [
            ("routing.deadline_ms", |c| c.routing.deadline_ms = u64::MAX),
            ("server.max_connections", |c| {
                c.server.max_connections = usize::MAX;
            }),
            ("server.max_connections", |c| c.server.max_connections = 8),
            ("server.header_read_timeout_ms", |c| {
                c.server.header_read_timeout_ms = u64::MAX;
            }),
            ("breaker.open_secs", |c| c.breaker.open_secs = u64::MAX),
            ("cache.ttl.rare_secs", |c| c.cache.ttl.rare_secs = u64::MAX),
            ("providers[0].pool.idle_timeout_ms", |c| {
                c.providers[0].pool.idle_timeout_ms = u64::MAX;
            }),
            ("inject.busy_us", |c| c.inject.busy_us = u64::MAX),
        ];
        for (field, set) in cases {
            let mut config = GatewayConfig::default();
            set(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field) && !err.contains('\n'), "{field}: {err}");
        }
        let text = "[routing]\ndeadline_ms = 9223372036854775807\n";
        let err = GatewayConfig::from_toml(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("routing.deadline_ms"), "{err}");
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
            [server]
            listen = "127.0.0.1:0"
            [[providers]]
            name = "openai"
            kind = "openai"
            base_url = "http://127.0.0.1:1"
            api_key_env = "OPENAI_API_KEY"
            cost = 2.5
            [providers.pool]
            http2 = true
            [[providers]]
            name = "claude"
            kind = "anthropic"
            base_url = "http://127.0.0.1:2"
            [[models]]
            name = "gpt-4o"
            candidates = [{ provider = "openai" }, { provider = "claude", model = "claude-sonnet-4" }]
        "#;
        let config = GatewayConfig::from_toml(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.providers[1].kind, ProviderKind::Anthropic);
        assert!(config.providers[0].pool.http2);
        assert_eq!(
            config.models[0].candidates[1].model.as_deref(),
            Some("claude-sonnet-4")
        );
    }
}
