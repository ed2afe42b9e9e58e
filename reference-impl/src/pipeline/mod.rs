//! `POST /v1/chat/completions` and `POST /v1/messages`: the whole request path in one place,
//! top to bottom, the same for both front doors.
//!
//! read -> admit (limiter) -> lookup (cache, coalescing) -> route (router) ->
//! enqueue + call (queue, breaker, pool, fallback) -> record.
//!
//! Each stage is one call in `serve`, implemented in the submodule of the same name, and is
//! handed the request's `Context`; a stage whose component is not configured is a no-op. The
//! front door's `Api` decides how the body is read, how the upstream is spoken to
//! (`proxy`), and the shape of the answer and of errors; every stage in between is the same.

mod admit;
mod call;
mod lookup;
mod read;
mod record;

pub(crate) use self::read::{forwarded, read_json};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use self::admit::{Caller, admit};
use self::call::call;
use self::lookup::{Cached, lookup};
use self::read::read;
use self::record::record;
use crate::cache::FlightError;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::front::{Api, Inbound};
use crate::limiter::Decision;
use crate::queue::Priority;
use crate::server::Shared;

/// Response header: microseconds the gateway spent outside upstream I/O and queue waits.
pub(crate) const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-gateway-overhead-us");
/// Response header: the provider that produced the response (`cache` for cached and
/// coalesced answers, `none` if no provider was involved).
pub(crate) const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-gateway-provider");
/// Response header: `hit`, `miss`, `coalesced` or `bypass` when the cache is enabled.
pub(crate) const CACHE_HEADER: HeaderName = HeaderName::from_static("x-cache");

/// Headers decided along the way and put on the response, whatever it turns out to be.
#[derive(Default)]
struct Stamp {
    provider: Option<HeaderValue>,
    cache: Option<&'static str>,
    rate_limit: Option<Decision>,
}

/// One request on its way through the stages after `read`: what they read of it, and what
/// they leave for the response. The clock and the stamp are borrowed from the handler, so an
/// error answer is measured and stamped as a success is.
struct Context<'a> {
    headers: HeaderMap,
    inbound: Inbound,
    caller: Caller,
    /// The overhead clock, started when the request arrived.
    clock: &'a mut Clock,
    stamp: &'a mut Stamp,
}

impl Context<'_> {
    /// The request's priority in a provider's queue: `x-priority`, else its caller's tier's.
    fn priority(&self) -> Priority {
        self.headers
            .get("x-priority")
            .and_then(|v| v.to_str().ok())
            .and_then(Priority::from_header)
            .unwrap_or(Priority::from(self.caller.tier))
    }
}

/// `POST /v1/chat/completions`, the OpenAI front door.
pub async fn chat_completions(State(gw): State<Arc<Shared>>, request: Request) -> Response {
    handle(gw, Api::OpenAi, request).await
}

/// `POST /v1/messages`, the Anthropic front door.
pub async fn messages(State(gw): State<Arc<Shared>>, request: Request) -> Response {
    handle(gw, Api::Anthropic, request).await
}

/// The handler of both front doors: runs [`serve`], then stamps the headers and records the
/// request. The accept loop calls it directly for a `POST` to a front door.
pub(crate) async fn handle(gw: Arc<Shared>, api: Api, request: Request) -> Response {
    let mut clock = Clock::start();
    let _in_flight = gw.metrics.in_flight.hold();
    let mut stamp = Stamp::default();
    let mut response = serve(&gw, api, request, &mut clock, &mut stamp)
        .await
        .unwrap_or_else(|error| error.into_response_for(api));
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
    response
}

async fn serve(
    gw: &Arc<Shared>,
    api: Api,
    request: Request,
    clock: &mut Clock,
    stamp: &mut Stamp,
) -> Result<Response, ApiError> {
    let (headers, inbound) = read(request, gw.config.server.body_limit_bytes, api).await?;
    busy(gw.config.inject.busy_us);
    let model = inbound.model();
    if !gw.router.serves(model) {
        return Err(ApiError::model_not_found(model));
    }
    let caller = Caller::identify(gw, &headers);
    let mut cx = Context {
        headers,
        inbound,
        caller,
        clock,
        stamp,
    };

    admit(gw, &mut cx).await?;

    let leader = match lookup(gw, &mut cx).await? {
        Cached::Answered(response) => return Ok(response),
        Cached::Miss(leader) => leader,
    };

    let model = cx.inbound.model();
    let plan = gw
        .router
        .plan(model)
        .ok_or_else(|| ApiError::model_not_found(model))?;

    let called = match call(gw, &mut cx, &plan).await {
        Ok(called) => {
            panic_if_injected(gw);
            called
        }
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

    Ok(record(gw, &cx, called, leader))
}

/// `[inject] panic_one_in`: panics on every Nth chat request, with everything the request
/// holds still held.
fn panic_if_injected(gw: &Shared) {
    let every = gw.config.inject.panic_one_in;
    if every > 0
        && gw
            .injected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % every
            == every - 1
    {
        panic!("[inject] panic_one_in = {every}");
    }
}

/// `[inject] busy_us`: spins the CPU for that long on this worker thread, as a slower code
/// path would (a sleep would free the thread and cost no throughput).
fn busy(micros: u64) {
    if micros == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
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
