//! Startup, the HTTP routes, and graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::cache::{Embedder, OpenAiEmbedder, ResponseCache, SemanticConfig};
use crate::config::{ConfigError, GatewayConfig, ServerConfig};
use crate::connection::{self, ConnectionSettings};
use crate::dashboard::{self, Dashboard};
use crate::error::{ApiError, GatewayError};
use crate::front::Api;
use crate::limiter::{KeyId, RateLimiter, Tier};
use crate::metrics::{GatewayMetrics, GaugeGuard};
use crate::provider::Provider;
use crate::router::Router;
use crate::{admin, embeddings, pipeline, prometheus, realtime};

/// State shared by every request: what the handlers of [`pipeline`] are given.
/// [`Gateway::start`] builds one; [`Shared::new`] builds one without a listener, to drive a
/// handler in-process (the instruction-count benches do). Its parts are the crate's own.
pub struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) router: Router,
    pub(crate) metrics: GatewayMetrics,
    /// Response cache with coalescing, when enabled.
    pub(crate) cache: Option<ResponseCache>,
    /// Rate limiter, when enabled.
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    /// Tier of each configured API key, by key hash.
    pub(crate) tiers: HashMap<KeyId, Tier>,
    /// Cancelled when the shutdown grace period is over: open streams end with an error event.
    pub(crate) streams_stop: CancellationToken,
    /// Cancelled when shutdown begins: `/ready` turns 503.
    pub(crate) draining: CancellationToken,
    pub(crate) started: Instant,
    /// The live dashboard's samples, taken once a second off the request path.
    pub(crate) dashboard: Dashboard,
    /// Chat requests counted for `[inject] panic_one_in`.
    pub(crate) injected: AtomicU64,
}

impl Shared {
    /// Validates `config` and builds one pooled client per provider.
    pub fn new(config: GatewayConfig) -> Result<Self, GatewayError> {
        config.validate()?;
        let providers = config
            .providers
            .iter()
            .cloned()
            .map(|p| Provider::new(p, &config.breaker, config.queue.as_ref()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let router = Router::new(config.routing.clone(), providers, &config.models);
        let invalid = |field: &str, reason: String| {
            GatewayError::Config(ConfigError::Invalid {
                field: field.to_owned(),
                reason,
            })
        };
        let cache = match (config.cache.enabled, config.cache.semantic.enabled) {
            (false, _) => None,
            (true, false) => Some(ResponseCache::new(config.cache.clone())),
            (true, true) => {
                let embedder = semantic_embedder(&config.cache.semantic, router.providers())
                    .ok_or_else(|| {
                        invalid(
                            "cache.semantic.provider",
                            "names no OpenAI-compatible provider to take embeddings from".into(),
                        )
                    })?;
                Some(ResponseCache::with_embedder(config.cache.clone(), embedder))
            }
        }
        .transpose()
        .map_err(|e| invalid("cache", e.to_string()))?;
        let limiter = match config.limiter.enabled {
            true => Some(Arc::new(
                RateLimiter::new(config.limiter.clone())
                    .map_err(|e| invalid("limiter", e.to_string()))?,
            )),
            false => None,
        };
        let tiers = config
            .api_keys
            .iter()
            .map(|k| (KeyId::from_api_key(&k.key), k.tier))
            .collect();
        Ok(Self {
            config,
            router,
            metrics: GatewayMetrics::default(),
            cache,
            limiter,
            tiers,
            streams_stop: CancellationToken::new(),
            draining: CancellationToken::new(),
            started: Instant::now(),
            dashboard: Dashboard::default(),
            injected: AtomicU64::new(0),
        })
    }

    /// The response cache, when `cache.enabled`: a bench fills it so that a request is
    /// answered without going upstream.
    pub fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref()
    }
}

/// The semantic cache tier's embeddings: from `[cache.semantic] provider`, or the first
/// OpenAI-compatible provider, over that provider's pooled client and credentials.
fn semantic_embedder(
    semantic: &SemanticConfig,
    providers: &[Arc<Provider>],
) -> Option<Arc<dyn Embedder>> {
    let (provider, url) = providers.iter().find_map(|p| {
        let url = p.embeddings.as_ref()?;
        let chosen = semantic
            .provider
            .as_deref()
            .is_none_or(|name| name == p.name());
        chosen.then_some((p, url))
    })?;
    Some(Arc::new(OpenAiEmbedder::new(
        provider.client.clone(),
        url.clone(),
        provider.json_headers(&HeaderMap::new()),
        semantic.embedding_model.clone(),
    )))
}

/// The gateway, started in-process with [`Gateway::start`].
pub struct Gateway;

impl Gateway {
    /// Validates `config`, builds one pooled client per provider, binds `server.listen` and
    /// serves until [`GatewayHandle::shutdown`] (or until the handle is dropped).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), reference_impl::GatewayError> {
    /// use reference_impl::{Gateway, GatewayConfig, ProviderConfig, ProviderKind};
    /// let upstream = ProviderConfig::new("mock", ProviderKind::OpenAi, "http://127.0.0.1:9000");
    /// let mut config = GatewayConfig::with_providers(vec![upstream]);
    /// config.server.listen = ([127, 0, 0, 1], 0).into();
    /// let gateway = Gateway::start(config).await?;
    /// println!("POST {}/v1/chat/completions", gateway.url());
    /// gateway.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: GatewayConfig) -> Result<GatewayHandle, GatewayError> {
        let addr = config.server.listen;
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let shared = Arc::new(Shared::new(config)?);

        let listener = listen(addr).map_err(|source| GatewayError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let http = connection_settings(&shared.config.server);
        let app = routes(shared.clone());
        let task = tokio::spawn(serve(listener, http, app, shared.clone()));
        dashboard::start_sampler(shared.clone());
        tracing::info!(%local, "gateway listening");
        Ok(GatewayHandle {
            addr: local,
            url: format!("http://{local}"),
            shared,
            grace,
            task: Some(task),
        })
    }
}

/// Connections the kernel completes and holds for a listener before it accepts them.
///
/// Tokio's `TcpListener::bind` asks for 128, and a burst of more connects than that (a load test
/// starting its users, a client pool filling up) overflows the queue: the kernel drops the SYNs
/// past it and the clients retry after a second, which a benchmark reads as a one-second request.
/// The kernel caps this at `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a backlog of [`LISTEN_BACKLOG`]; what the gateway and the bare
/// proxy listen with.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections of `server.max_connections` kept for `/health`, `/ready`, `/metrics` and the
/// admin API. With every other slot taken by client traffic, a probe still gets a connection
/// (after whatever is ahead of it in the kernel's listen backlog): a liveness check must not
/// fail, and restart the gateway, only because the gateway is busy.
pub const RESERVED_CONNECTIONS: usize = 8;

/// Header deadline of a reserved connection, whatever `server.header_read_timeout_ms` says:
/// it exists for one quick probe, so a client that sends nothing must not sit on it.
const RESERVED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// The slot of the connection cap a connection holds, released when its task ends.
struct Slot {
    /// A reserved slot: one probe request (`/health`, `/ready`, `/metrics`, admin), then close.
    probes_only: bool,
    _permit: OwnedSemaphorePermit,
}

/// What an accepted connection holds until it closes: its unit of `gateway_open_connections`,
/// its [`Slot`] of the cap, and its place among the connections shutdown waits for. Each of its
/// requests carries a clone, so a connection upgraded to a WebSocket, which outlives the HTTP
/// connection's task, keeps holding them ([`realtime`]).
#[derive(Clone)]
pub(crate) struct ConnectionHold {
    _held: Arc<(GaugeGuard, Slot, watch::Receiver<()>)>,
}

/// Paths a reserved connection serves; anything else gets a 503 there. Not the dashboard's
/// event stream: it never ends, and would keep a reserved slot from the probes.
fn is_probe_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
        || (path.starts_with("/admin/") && path != "/admin/dashboard/events")
}

/// Pause after an accept error other than a failed handshake (such as running out of file
/// descriptors), so the loop does not spin while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// HTTP/1.1 with keep-alive, or HTTP/2 with prior knowledge, and a deadline for each request's
/// header block.
///
/// `axum::serve` sets no timer, so hyper enforces no header deadline there and a client that
/// trickles a header line (slowloris) holds its connection forever; [`connection`] keeps the
/// deadline for both protocols.
fn connection_settings(server: &ServerConfig) -> ConnectionSettings {
    let timeout = (server.header_read_timeout_ms > 0)
        .then(|| Duration::from_millis(server.header_read_timeout_ms));
    ConnectionSettings::new(timeout, false)
}

/// A reserved connection: one request, a short header deadline.
fn reserved_settings(server: &ServerConfig) -> ConnectionSettings {
    let timeout = Duration::from_millis(server.header_read_timeout_ms);
    let timeout = match server.header_read_timeout_ms {
        0 => RESERVED_HEADER_TIMEOUT,
        _ => timeout.min(RESERVED_HEADER_TIMEOUT),
    };
    ConnectionSettings::new(Some(timeout), true)
}

/// The accept loop: one task per connection, `TCP_NODELAY` on each, and each request handed
/// to [`route`], which catches a handler's panic (there rather than as a router layer, which
/// would box every request's future once more).
///
/// `server.max_connections` is enforced here: the loop takes a slot (a semaphore permit, held
/// by the connection's task until it closes) before it accepts, so past the cap connections
/// wait in the kernel's listen backlog, and the connections being served keep their share of
/// the machine. The last [`RESERVED_CONNECTIONS`] slots serve probes only.
///
/// Once `draining` is cancelled it closes the listener, every connection finishes the request
/// it is serving (idle keep-alive connections close at once), and it returns when the last
/// connection has closed.
async fn serve(
    listener: TcpListener,
    http: ConnectionSettings,
    app: axum::Router,
    gw: Arc<Shared>,
) {
    let draining = &gw.draining;
    // Each connection task holds a receiver; `closed()` resolves once the last one is dropped.
    let (all_closed, open) = watch::channel(());
    let max = gw
        .config
        .server
        .max_connections
        .max(RESERVED_CONNECTIONS + 1);
    let general = Arc::new(Semaphore::new(max - RESERVED_CONNECTIONS));
    let reserved = Arc::new(Semaphore::new(RESERVED_CONNECTIONS));
    let (http, reserved_http) = (
        Arc::new(http),
        Arc::new(reserved_settings(&gw.config.server)),
    );
    loop {
        // Neither semaphore is ever closed, so one of the acquires eventually succeeds.
        let slot = tokio::select! {
            biased;
            () = draining.cancelled() => break,
            Ok(permit) = general.clone().acquire_owned() => Slot { probes_only: false, _permit: permit },
            Ok(permit) = reserved.clone().acquire_owned() => Slot { probes_only: true, _permit: permit },
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_handshake_error(&e) => continue,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = draining.cancelled() => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let probes_only = slot.probes_only;
        let hold = ConnectionHold {
            _held: Arc::new((gw.metrics.open_connections.hold(), slot, open.clone())),
        };
        let (app, handler_gw, held) = (app.clone(), gw.clone(), hold.clone());
        let service = service_fn(move |request: http::Request<Incoming>| {
            let (app, gw, held) = (app.clone(), handler_gw.clone(), held.clone());
            async move {
                if probes_only && !is_probe_path(request.uri().path()) {
                    return Ok(over_capacity(&gw));
                }
                Ok(route(app, gw, request, peer, held).await)
            }
        });
        let settings = Arc::clone(if probes_only { &reserved_http } else { &http });
        let gw = gw.clone();
        tokio::spawn(async move {
            let result = connection::serve(tcp, &settings, service, &gw.draining).await;
            if let Err(e) = result {
                tracing::debug!(%peer, "connection closed: {e}");
            }
            drop(hold);
        });
    }
    drop(listener);
    drop(open);
    all_closed.closed().await;
}

/// Errors of one incoming connection, not of the listener: the next accept can succeed.
fn is_handshake_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// One request of a connection, to its handler, with the handler's panic caught.
///
/// A `POST` to a front door goes straight to [`pipeline::handle`]: the router would box its
/// handler's future (several kilobytes, past the allocator's per-thread cache) on top of its
/// own per-request work, and the pipeline reads nothing the router adds. Everything else goes
/// through the router, with the peer address ([`ConnectInfo`]) and the connection's
/// [`ConnectionHold`] as extensions.
async fn route(
    mut app: axum::Router,
    gw: Arc<Shared>,
    mut request: http::Request<Incoming>,
    peer: SocketAddr,
    held: ConnectionHold,
) -> Response {
    let front_door = Api::at(request.uri().path());
    if let Some(api) = front_door.filter(|_| request.method() == Method::POST) {
        let handled = pipeline::handle(gw.clone(), api, request.map(Body::new));
        return AssertUnwindSafe(handled)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| panicked(&gw, api));
    }
    request.extensions_mut().insert(ConnectInfo(peer));
    request.extensions_mut().insert(held);
    let handled = AssertUnwindSafe(app.call(request)).catch_unwind().await;
    match handled {
        Ok(Ok(response)) => response,
        Ok(Err(infallible)) => match infallible {},
        Err(_) => panicked(&gw, front_door.unwrap_or_default()),
    }
}

/// A running gateway. Dropping it stops the server without waiting.
pub struct GatewayHandle {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    grace: Duration,
    task: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// `http://IP:PORT` the gateway listens on.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests and streams finish for up to
    /// `server.shutdown_grace_ms`, then ends the remaining streams with an error event.
    pub async fn shutdown(mut self) {
        self.shared.draining.cancel();
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(self.grace, &mut task).await.is_err() {
            tracing::warn!("shutdown grace period over; ending open streams");
            self.shared.streams_stop.cancel();
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.shared.draining.cancel();
        self.shared.streams_stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The whole map of the gateway's paths. A `POST` to a front door never reaches it (the accept
/// loop's [`route`] serves those directly); the front doors stay here so that the router still
/// answers their other methods with 405 and a served request is one the router would serve.
fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route(Api::OpenAi.path(), post(pipeline::chat_completions))
        .route(Api::Anthropic.path(), post(pipeline::messages))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/realtime/chat", get(realtime::upgrade))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .nest("/admin/performance", admin::routes(shared.clone()))
        .nest("/admin/dashboard", dashboard::routes(shared.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// What a request other than a probe gets on a reserved connection: the gateway is at
/// `server.max_connections`, so it is refused at once (503, `retry-after: 1`) rather than
/// left hanging.
fn over_capacity(gw: &Shared) -> Response {
    gw.metrics.record_status(503);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the gateway is at server.max_connections; retry on a new connection",
    )
    .with_code("connection_limit")
    .with_retry_after(Some(Duration::from_secs(1)))
    .into_response()
}

/// What a request whose handler panicked gets (the accept loop catches the panic around each
/// request, so the connection survives): a 500 in the route's API's error shape, counted.
fn panicked(gw: &Shared, api: Api) -> Response {
    gw.metrics.panics.fetch_add(1, Relaxed);
    gw.metrics.record_status(500);
    ApiError::internal("internal error while handling the request").into_response_for(api)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method not allowed on this endpoint",
    )
}

/// `GET /v1/models`: every model with a route of its own.
async fn models(State(gw): State<Arc<Shared>>) -> Response {
    let data: Vec<serde_json::Value> = gw
        .config
        .models
        .iter()
        .filter(|m| m.name != crate::config::ANY_MODEL)
        .map(|m| {
            serde_json::json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": m.candidates.first().map_or("", |c| c.provider.as_str()),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

/// Liveness: the process is serving HTTP.
async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness: accepting new work (not draining for shutdown).
async fn ready(State(gw): State<Arc<Shared>>) -> Response {
    if gw.draining.is_cancelled() {
        let body = serde_json::json!({ "status": "draining" });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    axum::Json(serde_json::json!({ "status": "ready" })).into_response()
}

/// Prometheus text exposition.
async fn metrics(State(gw): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        prometheus::render(&gw),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_turns_503_once_draining_begins() {
        let shared = Arc::new(Shared::new(GatewayConfig::default()).unwrap());
        assert_eq!(ready(State(shared.clone())).await.status(), StatusCode::OK);
        shared.draining.cancel();
        assert_eq!(
            ready(State(shared)).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_counted_500() {
        let shared = Arc::new(Shared::new(GatewayConfig::default()).unwrap());
        let app = axum::Router::new()
            .route("/boom", get(boom))
            .route("/v1/messages", get(boom));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/boom", listener.local_addr().unwrap());
        let messages_url = url.replace("/boom", "/v1/messages");
        let settings = ConnectionSettings::new(None, false);
        let server = tokio::spawn(serve(listener, settings, app, shared.clone()));
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 500);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "server_error");
        }
        // At the Anthropic front door, in Anthropic's shape.
        let response = client.get(&messages_url).send().await.unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "api_error");
        assert_eq!(shared.metrics.panics.load(Relaxed), 3);
        server.abort();
    }
}
