//! `POST /v1/chat/completions`: the whole request path in one place, top to bottom.
//!
//! read -> admit (limiter) -> lookup (cache, coalescing) -> enqueue (queue) ->
//! route (router, breaker) -> call (pool, fallback) -> record.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::provider::Provider;
use crate::proxy::{self, AttemptError, Reply, StreamEnd};
use crate::request::ChatRequest;
use crate::router::Target;
use crate::server::Shared;

/// Response header: microseconds the gateway spent outside upstream I/O.
pub const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-gateway-overhead-us");
/// Response header: the provider that produced the response (`none` if no provider was called).
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-gateway-provider");

/// A failed request and the provider that was tried last, if any.
struct Failure {
    error: ApiError,
    provider: Option<Arc<Provider>>,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            provider: None,
        }
    }
}

/// The handler: runs [`serve`], then stamps the overhead and provider headers and records.
pub async fn chat_completions(State(gw): State<Arc<Shared>>, request: Request) -> Response {
    let mut clock = Clock::start();
    gw.metrics.in_flight.fetch_add(1, Relaxed);
    let (mut response, provider) = match serve(&gw, request, &mut clock).await {
        Ok((response, provider)) => (response, Some(provider)),
        Err(failure) => (failure.error.into_response(), failure.provider),
    };
    let overhead = clock.overhead().as_micros() as u64;
    let headers = response.headers_mut();
    headers.insert(OVERHEAD_HEADER, HeaderValue::from(overhead));
    headers.insert(
        PROVIDER_HEADER,
        provider.map_or(HeaderValue::from_static("none"), |p| p.header_value.clone()),
    );
    gw.metrics.overhead_us.record(overhead);
    gw.metrics.record_status(response.status().as_u16());
    if !is_stream(&response) {
        gw.metrics
            .latency_us
            .record(clock.started().elapsed().as_micros() as u64);
    }
    gw.metrics.in_flight.fetch_sub(1, Relaxed);
    response
}

async fn serve(
    gw: &Arc<Shared>,
    request: Request,
    clock: &mut Clock,
) -> Result<(Response, Arc<Provider>), Failure> {
    let limit = gw.config.server.body_limit_bytes;
    let (headers, chat) = read(request, limit).await?;

    let plan = gw
        .router
        .plan(&chat.body.model, |_| true)
        .ok_or_else(|| ApiError::model_not_found(&chat.body.model))?;
    if plan.is_empty() {
        return Err(ApiError::unavailable("no provider for this model is available").into());
    }

    let forward = forwarded(&headers, &gw.config.server.forward_header_prefixes);
    let (reply, provider) = call(gw, &chat, &plan, &forward, clock).await?;
    Ok((respond(gw, reply, clock.started()), provider))
}

/// Checks the content type and size limit and parses the body.
async fn read(request: Request, limit: usize) -> Result<(HeaderMap, ChatRequest), ApiError> {
    let (parts, body) = request.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::invalid_request(format!("cannot read request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((parts.headers, ChatRequest::parse(body)?))
}

/// Request headers passed to the upstream (per-request control headers of the mocks).
fn forwarded(headers: &HeaderMap, prefixes: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    if prefixes.is_empty() {
        return out;
    }
    for (name, value) in headers {
        if prefixes.iter().any(|p| name.as_str().starts_with(p.as_str())) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Tries the ranked candidates until one answers, within `routing.max_attempts` and
/// `routing.deadline_ms`, honouring each provider's `retry-after`.
async fn call(
    gw: &Shared,
    chat: &ChatRequest,
    plan: &[Target],
    forward: &HeaderMap,
    clock: &mut Clock,
) -> Result<(Reply, Arc<Provider>), Failure> {
    let routing = gw.router.config();
    let deadline = clock.started() + routing.deadline();
    // Candidates that cannot express this request; they are not asked again.
    let mut unsupported = vec![false; plan.len()];
    let mut last: Option<(AttemptError, &Arc<Provider>)> = None;
    for attempt in 0..routing.max_attempts as usize {
        let index = attempt % plan.len();
        if unsupported[index] {
            if unsupported.iter().all(|&u| u) {
                break;
            }
            continue;
        }
        let target = &plan[index];
        let provider = &target.provider;
        let pause = pause_before(attempt, plan.len(), provider, gw);
        if Instant::now() + pause >= deadline {
            break;
        }
        if !pause.is_zero() {
            clock.upstream(tokio::time::sleep(pause)).await;
        }
        if attempt > 0 {
            gw.metrics.retries.fetch_add(1, Relaxed);
        }
        let budget = routing
            .attempt_timeout()
            .min(deadline.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let model = target.model(&chat.body.model);
        let result = tokio::time::timeout(budget, proxy::attempt(provider, model, chat, forward, clock))
            .await
            .unwrap_or(Err(AttemptError::Timeout));
        match result {
            Ok(reply) => {
                gw.router.record(provider, Ok(began.elapsed()));
                return Ok((reply, provider.clone()));
            }
            Err(error) => {
                tracing::debug!(provider = provider.name(), attempt, outcome = error.label(), "upstream attempt failed");
                if error.is_provider_failure() {
                    gw.router.record(provider, Err(error.retry_after()));
                }
                if !error.is_retryable() {
                    return Err(Failure {
                        error: error.into_api_error(provider.name()),
                        provider: Some(provider.clone()),
                    });
                }
                if matches!(error, AttemptError::Unsupported(_)) {
                    unsupported[index] = true;
                }
                last = Some((error, provider));
            }
        }
    }
    Err(match last {
        Some((error, provider)) => Failure {
            error: error.into_api_error(provider.name()),
            provider: Some(provider.clone()),
        },
        None => ApiError::gateway_timeout("the request deadline passed before an upstream could be tried").into(),
    })
}

/// How long to wait before this attempt: the provider's `retry-after` cooldown, and when the
/// candidates are exhausted and a provider is tried again, an exponential backoff.
fn pause_before(attempt: usize, candidates: usize, provider: &Provider, gw: &Shared) -> Duration {
    let cooldown = provider
        .health
        .view(Instant::now(), gw.router.smoothing())
        .cooldown
        .unwrap_or_default();
    let round = attempt / candidates;
    if round == 0 {
        return cooldown;
    }
    let backoff = gw.router.config().backoff_ms.saturating_mul(1 << (round - 1).min(16));
    cooldown.max(Duration::from_millis(backoff))
}

/// Turns a reply into the client response; streams record their latency when they end.
fn respond(gw: &Arc<Shared>, reply: Reply, started: Instant) -> Response {
    match reply {
        Reply::Complete { body, .. } => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response(),
        Reply::Stream(stream) => {
            gw.metrics.open_streams.fetch_add(1, Relaxed);
            let recorder = gw.clone();
            let stream = stream
                .with_shutdown(gw.streams_stop.clone())
                .on_end(move |end| {
                    let m = &recorder.metrics;
                    m.open_streams.fetch_sub(1, Relaxed);
                    m.latency_us.record(started.elapsed().as_micros() as u64);
                    if end == StreamEnd::Broken {
                        m.streams_broken.fetch_add(1, Relaxed);
                    }
                });
            let mut response = Response::new(Body::from_stream(stream));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

fn is_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
