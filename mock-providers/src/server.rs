//! The native mock server: axum on hyper, built to stay out of the way of the system it measures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::RequiredKey;
use crate::embeddings::embed;
use crate::fault::Fault;
use crate::limits::{self, LimitError};
use crate::profile::{Distribution, Profile};
use crate::request::ChatRequest;
use crate::stats::{Outcome, Route, Stats, StatsSnapshot};
use crate::stream::{Paced, Pacing};
use crate::tls::{self, Tls};
use crate::wire::{ApiError, Completion, Provider, StreamEnd};
use crate::{MockError, ProfileError};

/// How to start a [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen; the default, `127.0.0.1:0`, picks a free loopback port.
    pub bind: SocketAddr,
    pub profile: Profile,
    /// Pins the `created` timestamp of every answer (for byte-exact tests); `None` uses the clock.
    pub created: Option<u64>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with a self-signed certificate made at start
    /// for `127.0.0.1`, `::1` and `localhost`; see [`MockServer::certificate_pem`].
    pub tls: bool,
    /// Where to write the certificate PEM when `tls` is on; `None` writes
    /// `mock-providers-<port>.pem` in the system temp directory. The file is left in place at
    /// shutdown (it holds no secret) and replaced by the next server on that path.
    pub cert_out: Option<PathBuf>,
    /// When set, every provider route requires this key (`Authorization: Bearer KEY`; `x-api-key`
    /// too on `/v1/messages`) and answers a missing or wrong one with the provider's 401. `/mock/*`
    /// routes never need it.
    pub api_key: Option<String>,
}

impl MockConfig {
    pub fn new(profile: Profile) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            profile,
            created: None,
            tls: false,
            cert_out: None,
            api_key: None,
        }
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        Self::new(Profile::fast())
    }
}

/// State shared by every handler.
#[derive(Debug)]
struct Shared {
    profile: ArcSwap<Profile>,
    initial: Profile,
    stats: Arc<Stats>,
    /// Request sequence number: with the profile seed it seeds each request's RNG.
    seq: AtomicU64,
    created: Option<u64>,
    shutdown: CancellationToken,
    api_key: Option<RequiredKey>,
}

impl Shared {
    /// The provider's 401 (already counted) when a key is required and `headers` do not carry
    /// it; `None` lets the request through.
    fn refusal(&self, headers: &HeaderMap, route: Route, provider: Provider) -> Option<Response> {
        let key = self.api_key.as_ref()?;
        let refused = key.check(headers, provider).err()?;
        self.stats.record(route, Outcome::Unauthorized);
        Some(error_response(&refused))
    }

    fn created(&self) -> u64 {
        self.created.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    fn request_rng(&self, seed: u64) -> SmallRng {
        // splitmix64 of the sequence number, so neighbouring requests get unrelated streams.
        let mut z = self
            .seq
            .fetch_add(1, Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        SmallRng::seed_from_u64(seed ^ z ^ (z >> 31))
    }
}

/// A running mock. Dropping it shuts the server down.
#[derive(Debug)]
pub struct MockServer {
    url: String,
    addr: SocketAddr,
    /// PEM and file of the self-signed certificate, when serving HTTPS.
    certificate: Option<(String, PathBuf)>,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// A listener with room for 4096 connects the server has not accepted yet (the kernel caps it
/// at `net.core.somaxconn`). Tokio's `TcpListener::bind` asks for 128: a load test that opens
/// more connections at once than that would have the SYNs past it dropped and retried a second
/// later, and read that second as the provider's latency.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl MockServer {
    /// Binds, starts serving in the background and returns once the port accepts connections.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        config.profile.validate()?;
        let api_key = config
            .api_key
            .as_deref()
            .map(RequiredKey::new)
            .transpose()?;
        let tls = config.tls.then(Tls::self_signed).transpose()?;
        let listener = listen(config.bind).map_err(|source| MockError::Bind {
            addr: config.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = Arc::new(Shared {
            profile: ArcSwap::from_pointee(config.profile.clone()),
            initial: config.profile,
            stats: Arc::default(),
            seq: AtomicU64::new(0),
            created: config.created,
            shutdown: CancellationToken::new(),
            api_key,
        });
        let app = router(Arc::clone(&shared));
        let Some(tls) = tls else {
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!("TCP_NODELAY: {e}");
                }
            });
            let stop = shared.shutdown.clone().cancelled_owned();
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!("mock server stopped: {e}");
                }
            });
            return Ok(Self {
                url: format!("http://{addr}"),
                addr,
                certificate: None,
                shared,
                task: Some(task),
            });
        };
        let path = config
            .cert_out
            .unwrap_or_else(|| tls::default_certificate_path(addr.port()));
        let path = tls::write_certificate(path, tls.pem.clone()).await?;
        let task = tokio::spawn(tls::serve(
            listener,
            tls.acceptor,
            app,
            shared.shutdown.clone(),
        ));
        Ok(Self {
            url: format!("https://{addr}"),
            addr,
            certificate: Some((tls.pem, path)),
            shared,
            task: Some(task),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`, or `https://...` when serving TLS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The self-signed certificate in PEM when serving TLS: add it to a client's trusted roots.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// The file the certificate PEM was written to when serving TLS.
    pub fn certificate_path(&self) -> Option<&Path> {
        self.certificate.as_ref().map(|(_, path)| path.as_path())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters by route and outcome (the JSON of `GET /mock/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    pub fn profile(&self) -> Profile {
        Profile::clone(&self.shared.profile.load())
    }

    /// Replaces the profile for requests that arrive from now on (like `PUT /mock/config`).
    pub fn set_profile(&self, profile: Profile) -> Result<(), ProfileError> {
        profile.validate()?;
        self.shared.profile.store(Arc::new(profile));
        Ok(())
    }

    /// Zeroes the counters and restores the starting profile (like `POST /mock/reset`).
    pub fn reset(&self) {
        self.shared.stats.reset();
        self.shared
            .profile
            .store(Arc::new(self.shared.initial.clone()));
    }

    /// Stops accepting, lets answers in progress finish, and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            Provider::OpenAi.chat_path(),
            post(|s, h, b| chat(s, h, b, Provider::OpenAi)),
        )
        .route(
            Provider::Anthropic.chat_path(),
            post(|s, h, b| chat(s, h, b, Provider::Anthropic)),
        )
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .route("/mock/config", get(get_config).put(put_config))
        .route(
            "/mock/stats",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.stats.snapshot()) }),
        )
        .route(
            "/mock/reset",
            post(|State(s): State<Arc<Shared>>| async move {
                s.stats.reset();
                s.profile.store(Arc::new(s.initial.clone()));
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(|| async { error_response(&ApiError::not_found()) })
        .with_state(shared)
}

/// Per-request overrides of the profile, read from `x-mock-*` headers.
#[derive(Debug, Default)]
struct Overrides {
    ttft: Option<Duration>,
    itl: Option<Distribution>,
    tokens: Option<usize>,
    fault: Option<Fault>,
}

impl Overrides {
    /// Reads the control headers; every value goes through [`crate::limits`], so an out-of-range
    /// one is a 400 naming the header, never a panic or an unbounded allocation.
    fn from_headers(headers: &HeaderMap, provider: Provider) -> Result<Self, ApiError> {
        fn read<T>(
            headers: &HeaderMap,
            name: &'static str,
            provider: Provider,
            parse: fn(&str) -> Result<T, LimitError>,
        ) -> Result<Option<T>, ApiError> {
            let Some(value) = headers.get(name) else {
                return Ok(None);
            };
            value
                .to_str()
                .map_err(|_| LimitError::NotANumber)
                .and_then(parse)
                .map(Some)
                .map_err(|e| {
                    ApiError::invalid_request(
                        provider,
                        format!("invalid {name} header: {e}"),
                        Some(name),
                        Some("invalid_value"),
                    )
                })
        }
        let fault = match headers
            .get("x-mock-fault")
            .map(|v| v.to_str().unwrap_or("\u{fffd}").parse::<Fault>())
        {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                return Err(ApiError::invalid_request(
                    provider,
                    e.to_string(),
                    Some("x-mock-fault"),
                    Some("invalid_value"),
                ));
            }
        };
        Ok(Self {
            ttft: read(headers, "x-mock-ttft-ms", provider, limits::parse_millis)?
                .map(limits::duration),
            itl: read(headers, "x-mock-itl-ms", provider, limits::parse_millis)?
                .map(Distribution::constant),
            tokens: read(headers, "x-mock-tokens", provider, limits::parse_tokens)?,
            fault,
        })
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    provider: Provider,
) -> Response {
    let route = match provider {
        Provider::OpenAi => Route::ChatCompletions,
        Provider::Anthropic => Route::Messages,
    };
    if let Some(refused) = shared.refusal(&headers, route, provider) {
        return refused;
    }
    let stats = &shared.stats;
    let parsed = body
        .map_err(|e| ApiError::invalid_request(provider, e.body_text(), None, None))
        .and_then(|b| {
            Ok((
                ChatRequest::parse(provider, &b)?,
                Overrides::from_headers(&headers, provider)?,
            ))
        });
    let (request, overrides) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            stats.record(route, Outcome::BadRequest);
            return error_response(&e);
        }
    };
    let profile = shared.profile.load();
    let mut rng = shared.request_rng(profile.seed);
    let tokens = overrides
        .tokens
        .unwrap_or_else(|| limits::tokens_from_sample(profile.output_tokens.sample(&mut rng)));
    let completion = Completion::new(&request, tokens, shared.created());
    let fault = overrides
        .fault
        .or_else(|| profile.draw_fault(&mut rng, completion.tokens.len()));
    let mut pacing = Pacing {
        ttft: overrides
            .ttft
            .unwrap_or_else(|| limits::duration(profile.ttft_ms.sample(&mut rng))),
        itl: overrides.itl.unwrap_or(profile.itl_ms),
        rng,
    };
    let end = match fault {
        None => StreamEnd::Complete,
        Some(Fault::Status(status)) => {
            stats.record(route, Outcome::for_status(status));
            return rejection(provider, status, profile.retry_after_ms);
        }
        Some(Fault::Timeout) => {
            stats.record(route, Outcome::Timeout);
            let _in_flight = stats.start(route);
            shared.shutdown.cancelled().await;
            return error_response(&ApiError::for_status(provider, 503));
        }
        Some(Fault::DisconnectAfter(n)) => StreamEnd::CutAfter(n),
        Some(Fault::ErrorAfter(n)) => StreamEnd::ErrorAfter(n),
        Some(Fault::Malformed) => StreamEnd::Malformed,
    };
    stats.record(
        route,
        match end {
            StreamEnd::Complete => Outcome::Ok,
            StreamEnd::CutAfter(_) => Outcome::Disconnect,
            StreamEnd::ErrorAfter(_) => Outcome::ErrorEvent,
            StreamEnd::Malformed => Outcome::Malformed,
        },
    );
    let mut in_flight = stats.start(route);
    if request.stream {
        let script = provider.stream_script(&completion, request.include_usage, end);
        let abort = matches!(end, StreamEnd::CutAfter(_));
        let body = Body::from_stream(Paced::new(script.into_parts(), pacing, abort, in_flight));
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            )],
            body,
        )
            .into_response();
    }
    let generation = pacing.total(completion.tokens.len());
    if !generation.is_zero() {
        // A zero sleep still goes through the timer wheel: skip it on the peak-rate path.
        tokio::time::sleep(generation).await;
    }
    let response = match end {
        StreamEnd::Complete => json_response(StatusCode::OK, provider.body(&completion)),
        StreamEnd::Malformed => json_response(StatusCode::OK, provider.malformed_body(&completion)),
        StreamEnd::ErrorAfter(_) => error_response(&ApiError::for_status(provider, 500)),
        StreamEnd::CutAfter(_) => {
            // Half a body, then a dropped connection.
            let body = provider.body(&completion);
            let half = body.len() / 2;
            let pacing = Pacing {
                ttft: Duration::ZERO,
                itl: Distribution::constant(0.0),
                rng: pacing.rng,
            };
            let paced = Paced::new((body.slice(..half), vec![half]), pacing, true, in_flight);
            return json_body(StatusCode::OK, Body::from_stream(paced));
        }
    };
    in_flight.finish();
    response
}

fn json_body(status: StatusCode, body: Body) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    json_body(status, Body::from(body))
}

fn error_response(e: &ApiError) -> Response {
    json_response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.body(),
    )
}

/// An injected error status; 429s carry `retry-after` (seconds, rounded up) and `retry-after-ms`.
fn rejection(provider: Provider, status: u16, retry_after_ms: u64) -> Response {
    let mut response = error_response(&ApiError::for_status(provider, status));
    if status == 429 {
        let h = response.headers_mut();
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_ms.div_ceil(1000)),
        );
        h.insert("retry-after-ms", HeaderValue::from(retry_after_ms));
    }
    response
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = shared.refusal(&headers, Route::Models, Provider::OpenAi) {
        return refused;
    }
    shared.stats.record(Route::Models, Outcome::Ok);
    let profile = shared.profile.load();
    let data: Vec<_> = profile
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "gatebench-mock"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = Provider::OpenAi;
    if let Some(refused) = shared.refusal(&headers, Route::Embeddings, p) {
        return refused;
    }
    let request = body
        .map_err(|e| ApiError::invalid_request(p, e.body_text(), None, None))
        .and_then(|b| {
            serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ApiError::invalid_json(p))
        });
    let parsed = request.and_then(|v| {
        let model = v.get("model").and_then(|m| m.as_str()).map(str::to_owned);
        let model = model.ok_or_else(|| {
            ApiError::invalid_request(
                p,
                "Missing required parameter: 'model'.",
                Some("model"),
                Some("missing_required_parameter"),
            )
        })?;
        let inputs: Vec<String> = match v.get("input") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            // Each input becomes a vector of up to MAX_EMBEDDING_DIMENSIONS floats: without a cap,
            // one 2 MB body of empty strings would ask for gigabytes.
            Some(serde_json::Value::Array(items)) if items.len() > limits::MAX_EMBEDDING_INPUTS => {
                return Err(ApiError::invalid_request(
                    p,
                    format!(
                        "Invalid 'input': at most {} inputs per request.",
                        limits::MAX_EMBEDDING_INPUTS
                    ),
                    Some("input"),
                    Some("invalid_value"),
                ));
            }
            Some(serde_json::Value::Array(items))
                if items.iter().all(serde_json::Value::is_string) =>
            {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            }
            None => {
                return Err(ApiError::invalid_request(
                    p,
                    "Missing required parameter: 'input'.",
                    Some("input"),
                    Some("missing_required_parameter"),
                ));
            }
            Some(_) => {
                return Err(ApiError::invalid_request(
                    p,
                    "Invalid type for 'input': expected a string or an array of strings.",
                    Some("input"),
                    Some("invalid_type"),
                ));
            }
        };
        let dims = v
            .get("dimensions")
            .and_then(serde_json::Value::as_u64)
            .map(|d| d as usize);
        Ok((model, inputs, dims))
    });
    let (model, inputs, dims) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            shared.stats.record(Route::Embeddings, Outcome::BadRequest);
            return error_response(&e);
        }
    };
    shared.stats.record(Route::Embeddings, Outcome::Ok);
    let dims = dims
        .filter(|d| limits::embedding_dimensions(*d).is_ok())
        .unwrap_or(shared.profile.load().embedding_dimensions);
    let tokens: usize = inputs.iter().map(|s| s.len().div_ceil(4).max(1)).sum();
    let data: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed(text, dims)}))
        .collect();
    Json(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
        .into_response()
}

async fn get_config(State(shared): State<Arc<Shared>>) -> Json<Profile> {
    Json(Profile::clone(&shared.profile.load()))
}

async fn put_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let profile = serde_json::from_slice::<Profile>(&body)
        .map_err(|e| ProfileError::Parse(e.to_string()))
        .and_then(|p| p.validate().map(|()| p));
    match profile {
        Ok(p) => {
            shared.profile.store(Arc::new(p));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error_response(&ApiError::invalid_request(
            Provider::OpenAi,
            e.to_string(),
            None,
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three times tokio's default backlog of connects at once, none accepted yet (as when
    /// a load test's users all start together): each waits in the backlog rather than a
    /// second for a dropped SYN's retry.
    #[tokio::test]
    async fn a_burst_of_connects_waits_in_the_backlog() {
        let listener = listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..384).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let done = futures::future::join_all(connects).await;
        let connected = done.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(connected, 384, "is net.core.somaxconn below 4096?");
    }
}
