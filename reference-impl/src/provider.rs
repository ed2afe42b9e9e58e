//! An upstream provider: its pooled client, endpoint, credentials and live health.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::config::{ProviderConfig, ProviderKind};
use crate::error::GatewayError;
use crate::health::Health;
use crate::pool::{PoolStats, Upstream};
use crate::queue::{QueueConfig, RequestQueue};

/// Everything needed to send a request to one provider, built once at startup.
#[derive(Debug)]
pub struct Provider {
    pub config: ProviderConfig,
    /// Full URL of the chat endpoint (`/v1/chat/completions` or `/v1/messages`).
    pub endpoint: Uri,
    /// Full URL of `/v1/embeddings`; only OpenAI-compatible providers have one.
    pub embeddings: Option<Uri>,
    /// The credential header, marked sensitive so it never shows in debug output.
    pub auth: Option<(HeaderName, HeaderValue)>,
    /// The provider's name as an `x-gateway-provider` header value.
    pub header_value: HeaderValue,
    pub client: Upstream,
    pub pool: Arc<PoolStats>,
    pub health: Health,
    /// Stops traffic to a provider that keeps failing.
    pub breaker: CircuitBreaker,
    /// Concurrency limit and wait queue, when configured.
    pub queue: Option<RequestQueue>,
}

impl Provider {
    /// Builds the client and precomputes the URLs and headers; fails if the config holds a value
    /// that cannot go into a URL or an HTTP header.
    pub fn new(
        config: ProviderConfig,
        breaker: &BreakerConfig,
        queue: Option<&QueueConfig>,
    ) -> Result<Self, GatewayError> {
        let invalid = |field: &str, reason: &str| {
            GatewayError::Config(crate::config::ConfigError::Invalid {
                field: format!("providers.{}.{field}", config.name),
                reason: reason.to_owned(),
            })
        };
        let path = match config.kind {
            ProviderKind::OpenAi => "v1/chat/completions",
            ProviderKind::Anthropic => "v1/messages",
        };
        let base = url::Url::parse(&config.base_url)
            .map_err(|_| invalid("base_url", "not a valid URL"))?;
        let base = if base.path().ends_with('/') {
            base
        } else {
            let mut with_slash = base.clone();
            with_slash.set_path(&format!("{}/", base.path()));
            with_slash
        };
        let join = |path: &str| {
            base.join(path)
                .ok()
                .and_then(|url| Uri::try_from(url.as_str()).ok())
                .ok_or_else(|| invalid("base_url", "cannot append the API path"))
        };
        let endpoint = join(path)?;
        let embeddings = match config.kind {
            ProviderKind::OpenAi => Some(join("v1/embeddings")?),
            ProviderKind::Anthropic => None,
        };
        let auth = match &config.api_key {
            None => None,
            Some(key) => {
                let (name, value) = match config.kind {
                    ProviderKind::OpenAi => (http::header::AUTHORIZATION, format!("Bearer {key}")),
                    ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), key.clone()),
                };
                let mut value = HeaderValue::try_from(value).map_err(|_| {
                    invalid("api_key", "contains characters not allowed in a header")
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let header_value = HeaderValue::try_from(config.name.as_str())
            .map_err(|_| invalid("name", "contains characters not allowed in a header"))?;
        let pool = Arc::new(PoolStats::default());
        let client = Upstream::new(&config.pool, pool.clone())
            .map_err(|why| invalid("pool.ca_file", &why))?;
        let breaker = CircuitBreaker::new(config.name.clone(), breaker.clone());
        Ok(Self {
            config,
            endpoint,
            embeddings,
            auth,
            header_value,
            client,
            pool,
            health: Health::default(),
            breaker,
            queue: queue.cloned().map(RequestQueue::new),
        })
    }

    /// Headers of a JSON request to this provider: `forward` plus content type and credential.
    pub fn json_headers(&self, forward: &HeaderMap) -> HeaderMap {
        let mut headers = forward.clone();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some((name, value)) = &self.auth {
            headers.insert(name, value.clone());
        }
        headers
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }
}
