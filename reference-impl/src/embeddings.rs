//! `POST /v1/embeddings`: checked for `model` and `input`, then sent unchanged to the model's
//! OpenAI-compatible candidates in routing order.
//!
//! A candidate that cannot be reached, times out, or answers 429/5xx is skipped for the next
//! one and counts against its reliability and circuit breaker as a chat attempt would; an open
//! breaker skips the candidate. Embeddings are cheap and not streamed, so there is no cache,
//! queue or retry pause on this path.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::limits::{MAX_UPSTREAM_BODY_BYTES, MAX_UPSTREAM_ERROR_BODY_BYTES};
use crate::pipeline::{OVERHEAD_HEADER, PROVIDER_HEADER, forwarded, read_json};
use crate::pool;
use crate::provider::Provider;
use crate::proxy::{self, Answer, AttemptError};
use crate::router::Attempt;
use crate::server::Shared;

/// The fields the gateway needs; the rest of the body goes upstream untouched.
#[derive(Deserialize)]
struct EmbeddingsBody {
    model: String,
    #[serde(rename = "input")]
    _input: IgnoredAny,
}

/// The least an embeddings answer must have to be passed on.
#[derive(Deserialize)]
struct EmbeddingsCheck {
    #[serde(rename = "data")]
    _data: Vec<IgnoredAny>,
}

/// The handler: serves the request, then stamps the overhead and provider headers.
pub async fn embeddings(State(gw): State<Arc<Shared>>, request: Request) -> Response {
    let mut clock = Clock::start();
    let _in_flight = gw.metrics.in_flight.hold();
    let (mut response, provider) = match serve(&gw, request, &mut clock).await {
        Ok((response, provider)) => (response, provider),
        Err(error) => (error.into_response(), HeaderValue::from_static("none")),
    };
    let overhead = clock.overhead().as_micros() as u64;
    let headers = response.headers_mut();
    headers.insert(OVERHEAD_HEADER, HeaderValue::from(overhead));
    headers.insert(PROVIDER_HEADER, provider);
    gw.metrics.overhead_us.record(overhead);
    gw.metrics.record_status(response.status().as_u16());
    gw.metrics
        .latency_us
        .record(clock.started().elapsed().as_micros() as u64);
    response
}

async fn serve(
    gw: &Shared,
    request: Request,
    clock: &mut Clock,
) -> Result<(Response, HeaderValue), ApiError> {
    let (headers, raw) = read_json(request, gw.config.server.body_limit_bytes).await?;
    let body: EmbeddingsBody = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid embeddings request: {e}")))?;
    let plan = gw
        .router
        .plan(&body.model)
        .ok_or_else(|| ApiError::model_not_found(&body.model))?;
    let forward = forwarded(&headers, &gw.config.server.forward_header_prefixes);
    let routing = gw.router.config();
    let deadline = clock.started() + routing.deadline();
    let mut last: Option<(AttemptError, &Provider)> = None;
    let candidates = plan
        .iter()
        .filter_map(|t| Some((t, t.provider.embeddings.as_ref()?)))
        .take(routing.max_attempts as usize);
    for (target, url) in candidates {
        let provider = &*target.provider;
        let Ok(breaker) = provider.breaker.allow() else {
            continue;
        };
        let model = target.model(&body.model);
        let payload = match model == body.model {
            true => raw.clone(),
            false => proxy::with_model(&raw, model)?,
        };
        let budget = routing
            .attempt_timeout()
            .min(deadline.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let sent = tokio::time::timeout(budget, send(provider, url, payload, &forward));
        match clock
            .upstream(sent)
            .await
            .unwrap_or(Err(AttemptError::Timeout))
        {
            Ok(answer) => {
                breaker.success();
                gw.router
                    .record(provider, Attempt::Answered(began.elapsed()));
                let response = (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    answer,
                )
                    .into_response();
                return Ok((response, provider.header_value.clone()));
            }
            Err(error) => {
                gw.router.record_failure(provider, breaker, &error);
                if !error.is_retryable() {
                    return Err(error.into_api_error(provider.name()));
                }
                last = Some((error, provider));
            }
        }
    }
    Err(match last {
        Some((error, provider)) => error.into_api_error(provider.name()),
        None => ApiError::unavailable(format!(
            "no OpenAI-compatible provider of model `{}` can take embeddings now",
            body.model
        )),
    })
}

/// One upstream embeddings call.
async fn send(
    provider: &Provider,
    url: &Uri,
    payload: Bytes,
    forward: &HeaderMap,
) -> Result<Bytes, AttemptError> {
    let response = provider
        .client
        .post(url, provider.json_headers(forward), payload)
        .await
        .map_err(|e| AttemptError::Connect(proxy::error_chain(&e)))?;
    match proxy::classify(&response) {
        Answer::Result => {}
        Answer::Refused => {
            let status = response.status();
            let body = pool::read_body(response, MAX_UPSTREAM_ERROR_BODY_BYTES).await?;
            return Err(AttemptError::Rejected(proxy::openai_error(status, &body)));
        }
        Answer::Failed(error) => {
            let _ = pool::read_body(response, MAX_UPSTREAM_ERROR_BODY_BYTES).await;
            return Err(error);
        }
    }
    let body = pool::read_body(response, MAX_UPSTREAM_BODY_BYTES).await?;
    serde_json::from_slice::<EmbeddingsCheck>(&body)
        .map_err(|e| AttemptError::BadPayload(e.to_string()))?;
    Ok(body)
}
