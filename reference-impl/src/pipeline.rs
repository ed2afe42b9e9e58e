//! `POST /v1/chat/completions`: the whole request path in one place, top to bottom.
//!
//! read -> admit (limiter) -> lookup (cache, coalescing) -> route (router) ->
//! enqueue + call (queue, breaker, pool, fallback) -> record.
//!
//! Each stage is one call in [`serve`]; a stage whose component is not configured is a no-op.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::cache::sse::CompletionAssembler;
use crate::cache::{Cacheability, FlightError, FollowError, Leader, Lookup};
use crate::clock::Clock;
use crate::error::ApiError;
use crate::limiter::{Decision, KeyId, Scope, Tier};
use crate::provider::Provider;
use crate::proxy::{self, AttemptError, Reply, StreamEnd, StreamObserver, Usage};
use crate::queue::{Priority, QueueError, QueuePermit};
use crate::request::ChatRequest;
use crate::router::Target;
use crate::server::Shared;

/// Response header: microseconds the gateway spent outside upstream I/O and queue waits.
pub const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-gateway-overhead-us");
/// Response header: the provider that produced the response (`cache` for cached and
/// coalesced answers, `none` if no provider was involved).
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-gateway-provider");
/// Response header: `hit`, `miss`, `coalesced` or `bypass` when the cache is enabled.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-cache");

/// Headers decided along the way and put on the response, whatever it turns out to be.
#[derive(Default)]
struct Stamp {
    provider: Option<HeaderValue>,
    cache: Option<&'static str>,
    rate_limit: Option<Decision>,
}

/// The handler: runs [`serve`], then stamps the headers and records the request.
pub async fn chat_completions(State(gw): State<Arc<Shared>>, request: Request) -> Response {
    let mut clock = Clock::start();
    gw.metrics.in_flight.fetch_add(1, Relaxed);
    let mut stamp = Stamp::default();
    let mut response = serve(&gw, request, &mut clock, &mut stamp)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    let overhead = clock.overhead().as_micros() as u64;
    let headers = response.headers_mut();
    headers.insert(OVERHEAD_HEADER, HeaderValue::from(overhead));
    headers.insert(
        PROVIDER_HEADER,
        stamp.provider.unwrap_or(HeaderValue::from_static("none")),
    );
    if let Some(status) = stamp.cache {
        headers.insert(CACHE_HEADER, HeaderValue::from_static(status));
    }
    if let Some(decision) = stamp.rate_limit {
        decision.write_headers(headers);
    }
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
    stamp: &mut Stamp,
) -> Result<Response, ApiError> {
    let (headers, chat) = read(request, gw.config.server.body_limit_bytes).await?;
    let caller = Caller::identify(gw, &headers);

    admit(gw, &caller, &chat, stamp).await?;

    let leader = match lookup(gw, &headers, &chat, clock, stamp).await? {
        Cached::Answered(response) => return Ok(response),
        Cached::Miss(leader) => leader,
    };

    let plan = gw
        .router
        .plan(&chat.body.model)
        .ok_or_else(|| ApiError::model_not_found(&chat.body.model))?;

    let forward = forwarded(&headers, &gw.config.server.forward_header_prefixes);
    let priority = headers
        .get("x-priority")
        .and_then(|v| v.to_str().ok())
        .and_then(Priority::from_header)
        .unwrap_or(Priority::from(caller.tier));
    let called = call(gw, &chat, &plan, &forward, priority, clock, stamp).await;
    let called = match called {
        Ok(called) => called,
        Err(error) => {
            if let Some(leader) = leader {
                leader.fail(FlightError {
                    status: error.status.as_u16(),
                    message: error.message.to_string(),
                });
            }
            return Err(error);
        }
    };

    Ok(record(gw, called, leader, caller, clock.started()))
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

/// Who is calling: the hashed API key (only when something keys on it) and its tier.
#[derive(Clone, Copy)]
struct Caller {
    key: Option<KeyId>,
    tier: Tier,
}

impl Caller {
    fn identify(gw: &Shared, headers: &HeaderMap) -> Self {
        // Hashing the key costs a SHA-256; skip it when neither limits nor tiers use it.
        if gw.limiter.is_none() && gw.tiers.is_empty() {
            return Self {
                key: None,
                tier: gw.config.default_tier,
            };
        }
        let api_key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        let key = KeyId::from_api_key(api_key);
        let tier = gw
            .tiers
            .get(&key)
            .copied()
            .unwrap_or(gw.config.default_tier);
        Self {
            key: Some(key),
            tier,
        }
    }
}

/// Admit: the caller's tier and the model must be within their rate limits.
async fn admit(
    gw: &Shared,
    caller: &Caller,
    chat: &ChatRequest,
    stamp: &mut Stamp,
) -> Result<(), ApiError> {
    let (Some(limiter), Some(key)) = (&gw.limiter, &caller.key) else {
        return Ok(());
    };
    let decision = limiter.check(key, caller.tier, &chat.body.model).await;
    stamp.rate_limit = Some(decision);
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Denied {
            scope, retry_after, ..
        } => Err(ApiError::rate_limited(format!(
            "rate limit exceeded: {} quota of the {} tier",
            match scope {
                Scope::Key => "request",
                Scope::Model => "model",
                Scope::Tokens => "token",
            },
            caller.tier.as_str()
        ))
        .with_retry_after(Some(retry_after))),
    }
}

/// What the cache made of a request.
enum Cached {
    /// Answered from the cache or by an identical request in flight.
    Answered(Response),
    /// Go upstream; as the leader of a flight when the request is cacheable.
    Miss(Option<Leader>),
}

/// Lookup: a cached answer, or a seat on an identical request already under way.
async fn lookup(
    gw: &Shared,
    headers: &HeaderMap,
    chat: &ChatRequest,
    clock: &mut Clock,
    stamp: &mut Stamp,
) -> Result<Cached, ApiError> {
    let Some(cache) = &gw.cache else {
        return Ok(Cached::Miss(None));
    };
    let request = match cache.classify(&chat.raw, headers) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(_) => {
            stamp.cache = Some("bypass");
            return Ok(Cached::Miss(None));
        }
    };
    loop {
        let follower = match cache.lookup(&request).await {
            Lookup::Lead(leader) => {
                stamp.cache = Some("miss");
                return Ok(Cached::Miss(Some(leader)));
            }
            Lookup::Hit(hit) => {
                stamp.cache = Some("hit");
                stamp.provider = Some(HeaderValue::from_static("cache"));
                return Ok(Cached::Answered(if chat.body.stream {
                    let events = hit.sse(chat.include_usage()).map_err(|e| {
                        ApiError::bad_gateway(format!("cached answer is unusable: {e}"))
                    })?;
                    sse_response(Body::from_stream(futures::stream::iter(
                        events.into_iter().map(Ok::<_, std::convert::Infallible>),
                    )))
                } else {
                    json_response(hit.body)
                }));
            }
            Lookup::Follow(follower) => follower,
        };
        // Waiting on the leader is waiting on its upstream.
        let answer = if chat.body.stream {
            let mut events = Box::pin(follower.into_stream(chat.include_usage()));
            match clock.upstream(events.next()).await {
                Some(Err(FollowError::Retry)) => continue,
                Some(Err(FollowError::Failed(e))) => Err(e),
                first => {
                    let rest = events.map(|item| {
                        Ok::<_, std::convert::Infallible>(item.unwrap_or_else(|e| {
                            ApiError::bad_gateway(e.to_string()).to_sse_event()
                        }))
                    });
                    let first = first.into_iter().map(|item| Ok(item.unwrap_or_default()));
                    Ok(sse_response(Body::from_stream(
                        futures::stream::iter(first).chain(rest),
                    )))
                }
            }
        } else {
            match clock.upstream(follower.wait()).await {
                Err(FollowError::Retry) => continue,
                Err(FollowError::Failed(e)) => Err(e),
                Ok(body) => Ok(json_response(body)),
            }
        };
        stamp.cache = Some("coalesced");
        stamp.provider = Some(HeaderValue::from_static("cache"));
        return answer.map(Cached::Answered).map_err(|e| {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
            ApiError::new(status, "upstream_error", e.message)
        });
    }
}

/// Request headers passed to the upstream (per-request control headers of the mocks).
fn forwarded(headers: &HeaderMap, prefixes: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    if prefixes.is_empty() {
        return out;
    }
    for (name, value) in headers {
        if prefixes
            .iter()
            .any(|p| name.as_str().starts_with(p.as_str()))
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// A successful upstream call: the reply and the queue slot it holds.
struct Called {
    reply: Reply,
    permit: Option<QueuePermit>,
}

/// Why a candidate is not tried again for this request.
#[derive(Clone, Copy)]
enum Skip {
    /// It cannot express the request.
    Unsupported,
    /// Its circuit is open for this long.
    Open(Duration),
}

/// Enqueue + call: tries the ranked candidates until one answers, within
/// `routing.max_attempts` and `routing.deadline_ms`, honouring each provider's circuit
/// breaker, queue and `retry-after`.
async fn call(
    gw: &Shared,
    chat: &ChatRequest,
    plan: &[Target],
    forward: &HeaderMap,
    priority: Priority,
    clock: &mut Clock,
    stamp: &mut Stamp,
) -> Result<Called, ApiError> {
    let routing = gw.router.config();
    let deadline = clock.started() + routing.deadline();
    let mut skipped: Vec<Option<Skip>> = vec![None; plan.len()];
    let mut last: Option<(AttemptError, &Arc<Provider>)> = None;
    let (mut attempts, mut turn) = (0, 0);
    while attempts < routing.max_attempts as usize && skipped.iter().any(Option::is_none) {
        let index = turn % plan.len();
        let round = turn / plan.len();
        turn += 1;
        if skipped[index].is_some() {
            continue;
        }
        let target = &plan[index];
        let provider = &target.provider;
        let breaker = match provider.breaker.allow() {
            Ok(permit) => permit,
            Err(open) => {
                skipped[index] = Some(Skip::Open(open.retry_after));
                continue;
            }
        };
        let pause = pause_before(round, provider, gw);
        if Instant::now() + pause >= deadline {
            break;
        }
        if !pause.is_zero() {
            clock.upstream(tokio::time::sleep(pause)).await;
        }
        let permit = match &provider.queue {
            Some(queue) => Some(
                clock
                    .queued(queue.acquire(priority))
                    .await
                    .map_err(queue_error)?,
            ),
            None => None,
        };
        if attempts > 0 {
            gw.metrics.retries.fetch_add(1, Relaxed);
        }
        attempts += 1;
        stamp.provider = Some(provider.header_value.clone());
        let budget = routing
            .attempt_timeout()
            .min(deadline.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let model = target.model(&chat.body.model);
        let attempt = proxy::attempt(provider, model, chat, forward, clock);
        match tokio::time::timeout(budget, attempt)
            .await
            .unwrap_or(Err(AttemptError::Timeout))
        {
            Ok(reply) => {
                breaker.success();
                gw.router.record(provider, Ok(began.elapsed()));
                return Ok(Called { reply, permit });
            }
            Err(error) => {
                tracing::debug!(
                    provider = provider.name(),
                    attempts,
                    outcome = error.label(),
                    "upstream attempt failed"
                );
                if error.is_provider_failure() {
                    gw.router.record(provider, Err(error.retry_after()));
                }
                // Rate limiting is the provider's normal back-pressure, handled by the
                // cooldown; only outages open the circuit.
                if error.is_provider_failure() && error.label() != "rate_limited" {
                    breaker.failure();
                }
                if !error.is_retryable() {
                    return Err(error.into_api_error(provider.name()));
                }
                if matches!(error, AttemptError::Unsupported(_)) {
                    skipped[index] = Some(Skip::Unsupported);
                }
                last = Some((error, provider));
            }
        }
    }
    if let Some((error, provider)) = last {
        return Err(error.into_api_error(provider.name()));
    }
    let open = skipped.iter().filter_map(|s| match s {
        Some(Skip::Open(after)) => Some(*after),
        _ => None,
    });
    match open.min() {
        Some(retry_after) => Err(ApiError::unavailable(
            "every provider for this model is failing (circuit open)",
        )
        .with_code("circuit_open")
        .with_retry_after(Some(retry_after))),
        None => Err(ApiError::gateway_timeout(
            "the request deadline passed before an upstream could be tried",
        )),
    }
}

fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::Full { retry_after } => {
            ApiError::unavailable("too many requests are waiting for this provider")
                .with_code("queue_full")
                .with_retry_after(Some(retry_after))
        }
        QueueError::Timeout { waited } => {
            ApiError::gateway_timeout(format!("waited {} ms for a free slot", waited.as_millis()))
        }
    }
}

/// How long to wait before an attempt: the provider's `retry-after` cooldown, and when every
/// candidate was tried and a provider is tried again, an exponential backoff.
fn pause_before(round: usize, provider: &Provider, gw: &Shared) -> Duration {
    let cooldown = provider
        .health
        .view(Instant::now(), gw.router.smoothing())
        .cooldown
        .unwrap_or_default();
    if round == 0 {
        return cooldown;
    }
    let backoff = gw
        .router
        .config()
        .backoff_ms
        .saturating_mul(1 << (round - 1).min(16));
    cooldown.max(Duration::from_millis(backoff))
}

/// Record: fill the cache, charge tokens and take the response's measurements. Streams do
/// this when they end, through [`StreamRecord`].
fn record(
    gw: &Arc<Shared>,
    called: Called,
    leader: Option<Leader>,
    caller: Caller,
    started: Instant,
) -> Response {
    let Called { reply, permit } = called;
    match reply {
        Reply::Complete { body, usage } => {
            drop(permit);
            if let Some(leader) = leader {
                leader.complete(body.clone());
            }
            charge_tokens(gw, caller, usage);
            json_response(body)
        }
        Reply::Stream(stream) => {
            gw.metrics.open_streams.fetch_add(1, Relaxed);
            let observer = StreamRecord {
                gw: gw.clone(),
                started,
                caller,
                fill: leader.map(|leader| (leader, CompletionAssembler::default())),
                _permit: permit,
            };
            let stream = stream
                .with_shutdown(gw.streams_stop.clone())
                .observe(Box::new(observer));
            sse_response(Body::from_stream(stream))
        }
    }
}

/// Charges the response's tokens to the caller's budget, when the tier has one.
fn charge_tokens(gw: &Shared, caller: Caller, usage: Option<Usage>) {
    let (Some(limiter), Some(key), Some(usage)) = (&gw.limiter, caller.key, usage) else {
        return;
    };
    let tiers = &gw.config.limiter.tiers;
    let limit = match caller.tier {
        Tier::Free => &tiers.free,
        Tier::Pro => &tiers.pro,
        Tier::Enterprise => &tiers.enterprise,
    };
    if limit.tokens_per_minute.is_some() {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter
                .charge_tokens(&key, caller.tier, usage.total_tokens)
                .await;
        });
    }
}

/// The record step of one stream: metrics, cache fill from the chunks sent, token charge;
/// holds the queue slot until the stream ends.
struct StreamRecord {
    gw: Arc<Shared>,
    started: Instant,
    caller: Caller,
    /// The flight this stream leads and the completion assembled from its chunks.
    fill: Option<(Leader, CompletionAssembler)>,
    _permit: Option<QueuePermit>,
}

impl StreamObserver for StreamRecord {
    fn on_chunk(&mut self, chunk: &Bytes) {
        let Some((leader, assembler)) = &mut self.fill else {
            return;
        };
        leader.send_chunk(chunk.clone());
        let assembled = proxy::sse::events(chunk).try_for_each(|event| {
            let data = std::str::from_utf8(&event.data).map_err(|_| ())?;
            assembler.push(data).map_err(|_| ())
        });
        if assembled.is_err() {
            // Followers still get the chunks; only storing the answer is given up.
            self.fill = None;
        }
    }

    fn on_end(self: Box<Self>, end: StreamEnd, usage: Option<Usage>) {
        let m = &self.gw.metrics;
        m.open_streams.fetch_sub(1, Relaxed);
        m.latency_us
            .record(self.started.elapsed().as_micros() as u64);
        if end == StreamEnd::Broken {
            m.streams_broken.fetch_add(1, Relaxed);
        }
        if let Some((leader, assembler)) = self.fill {
            match (end, assembler.finish()) {
                (StreamEnd::Complete, Ok(body)) => leader.complete(body),
                (StreamEnd::Complete, Err(e)) => leader.fail(FlightError {
                    status: 502,
                    message: format!("cannot assemble the streamed answer: {e}"),
                }),
                (StreamEnd::Broken, _) => leader.fail(FlightError {
                    status: 502,
                    message: "the upstream stream broke".to_owned(),
                }),
                (StreamEnd::ClientGone, _) => drop(leader),
            }
        }
        charge_tokens(&self.gw, self.caller, usage);
    }
}

fn json_response(body: Bytes) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn is_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
