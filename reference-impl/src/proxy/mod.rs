//! One upstream attempt: build the provider's request, send it, and turn the answer into a
//! `Reply` in the client's API or a classified `AttemptError` the router can act on.
//!
//! An upstream that speaks the client's API gets the client's body bytes unchanged and its
//! answer passes back unchanged; across APIs both ways are translated ([`translate`]).

pub mod sse;
mod stream;
pub mod translate;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use self::stream::Mode;
pub(crate) use self::stream::{ChatStream, StreamEnd, StreamObserver};
pub(crate) use self::translate::Usage;
use self::translate::{AnthropicUsage, to_anthropic, to_openai};
use crate::clock::Clock;
use crate::config::ProviderKind;
use crate::error::ApiError;
use crate::front::{Api, Inbound};
use crate::limits::{self, MAX_UPSTREAM_BODY_BYTES, MAX_UPSTREAM_ERROR_BODY_BYTES};
use crate::pool::{self, BodyError, BodyStream};
use crate::provider::Provider;

/// The longest `location` an error message quotes; a longer one is left out.
const MAX_QUOTED_LOCATION: usize = 256;

/// A successful upstream answer, already in the client's API.
pub(crate) enum Reply {
    /// A whole `chat.completion` or `message` JSON body.
    Complete { body: Bytes, usage: Option<Usage> },
    /// A stream whose first event has arrived and been checked.
    Stream(ChatStream),
}

/// Why an attempt failed, classified for the fallback decision.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// No connection, or it broke before a response arrived.
    Connect(String),
    /// The attempt ran out of time (set by the caller).
    Timeout,
    /// 429 or 5xx: the provider cannot serve now; another may.
    Unavailable {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// The upstream answered with something that is not a valid response.
    BadPayload(String),
    /// The provider rejected the request itself (4xx other than 429): another provider would
    /// too, so this goes straight back to the client.
    Rejected(ApiError),
    /// This provider cannot express the request (e.g. tool messages for Anthropic); the next
    /// candidate may.
    Unsupported(ApiError),
}

impl From<BodyError> for AttemptError {
    /// A body over its limit is a broken answer; a transport error is a broken connection.
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { .. } => Self::BadPayload(error.to_string()),
            BodyError::Transport(e) => Self::Connect(error_chain(&e)),
        }
    }
}

impl AttemptError {
    /// Counts against the provider's reliability.
    pub fn is_provider_failure(&self) -> bool {
        !matches!(self, Self::Rejected(_) | Self::Unsupported(_))
    }

    /// An outage rather than back-pressure: counts toward opening the circuit breaker.
    /// (429 is the provider's normal back-pressure, handled by the `retry-after` cooldown.)
    pub fn opens_circuit(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout | Self::BadPayload(_) => true,
            Self::Unavailable { status, .. } => *status != StatusCode::TOO_MANY_REQUESTS,
            Self::Rejected(_) | Self::Unsupported(_) => false,
        }
    }

    /// Another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Unavailable { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate_limited"
            }
            Self::Unavailable { .. } => "http_5xx",
            Self::BadPayload(_) => "bad_payload",
            Self::Rejected(_) => "http_4xx",
            Self::Unsupported(_) => "unsupported",
        }
    }

    /// What the client sees when this was the last attempt.
    pub fn into_api_error(self, provider: &str) -> ApiError {
        match self {
            Self::Connect(e) => {
                ApiError::bad_gateway(format!("provider `{provider}` is unreachable: {e}"))
            }
            Self::Timeout => {
                ApiError::gateway_timeout(format!("provider `{provider}` did not answer in time"))
            }
            Self::Unavailable {
                status,
                retry_after,
            } if status == StatusCode::TOO_MANY_REQUESTS => {
                ApiError::rate_limited(format!("provider `{provider}` is rate limiting requests"))
                    .with_retry_after(retry_after)
            }
            Self::Unavailable {
                status,
                retry_after,
            } => ApiError::bad_gateway(format!(
                "provider `{provider}` answered {}",
                status.as_u16()
            ))
            .with_retry_after(retry_after),
            Self::BadPayload(e) => ApiError::bad_gateway(format!(
                "provider `{provider}` sent an invalid response: {e}"
            )),
            Self::Rejected(e) | Self::Unsupported(e) => e,
        }
    }
}

/// What an upstream's status says about its answer, before the body is read.
pub(crate) enum Answer {
    /// 2xx: a result, read and checked by the caller.
    Result,
    /// 4xx other than 429: the provider refused the request itself; its error body is read
    /// and relayed.
    Refused,
    /// Anything else: this attempt failed. The caller reads the (small) body so the connection
    /// returns to the pool, and may try the next candidate.
    Failed(AttemptError),
}

/// Classifies an upstream answer by its status: 429 and 5xx are the provider's
/// unavailability; a redirect (not followed: a provider that redirects is misconfigured, often
/// an `http://` endpoint for an `https://` API) or another 1xx or 3xx is a broken answer,
/// since relayed as it is a client would read no error at all (a 304 carries no body).
pub(crate) fn classify<B>(response: &http::Response<B>) -> Answer {
    let status = response.status();
    if status.is_success() {
        return Answer::Result;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Answer::Failed(AttemptError::Unavailable {
            status,
            retry_after: limits::retry_after(response.headers()),
        });
    }
    if status.is_client_error() {
        return Answer::Refused;
    }
    let redirect = status.is_redirection() && status != StatusCode::NOT_MODIFIED;
    let to = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|location| redirect && location.len() <= MAX_QUOTED_LOCATION)
        .map(|location| format!(" to {location}"))
        .unwrap_or_default();
    let not_followed = if redirect {
        " (redirects are not followed)"
    } else {
        ""
    };
    Answer::Failed(AttemptError::BadPayload(format!(
        "answered {status}{to}, which is neither a result nor an error{not_followed}"
    )))
}

/// Sends `request` to `provider` as model `model`. Network waits go through `clock`.
pub(crate) async fn attempt(
    provider: &Provider,
    model: &str,
    request: &Inbound,
    forward: &HeaderMap,
    clock: &mut Clock,
) -> Result<Reply, AttemptError> {
    let kind = provider.kind();
    let api = request.api();
    let body = match (request, kind) {
        _ if speaks(kind) == api && model == request.model() => request.raw().clone(),
        _ if speaks(kind) == api => {
            with_model(request.raw(), model).map_err(AttemptError::Unsupported)?
        }
        (Inbound::Chat(chat), _) => {
            to_anthropic::request(&chat.body, model, provider.config.default_max_tokens)
                .map_err(AttemptError::Unsupported)?
        }
        (Inbound::Messages(messages), _) => {
            to_openai::request(&messages.body, model).map_err(AttemptError::Unsupported)?
        }
    };
    let mut headers = provider.json_headers(forward);
    if kind == ProviderKind::Anthropic {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(translate::VERSION),
        );
    }
    let pending = provider.client.post(&provider.endpoint, headers, body);
    let in_flight = provider.pool.send();
    let response = clock
        .upstream(pending)
        .await
        .map_err(|e| AttemptError::Connect(error_chain(&e)))?;

    match classify(&response) {
        Answer::Result => {}
        Answer::Refused => {
            let status = response.status();
            let body = clock
                .upstream(pool::read_body(response, MAX_UPSTREAM_ERROR_BODY_BYTES))
                .await
                .map_err(AttemptError::from)?;
            return Err(AttemptError::Rejected(match kind {
                ProviderKind::OpenAi => openai_error(status, &body),
                ProviderKind::Anthropic => translate::anthropic_error(status, &body),
            }));
        }
        Answer::Failed(error) => {
            let _ = clock
                .upstream(pool::read_body(response, MAX_UPSTREAM_ERROR_BODY_BYTES))
                .await;
            return Err(error);
        }
    }

    if request.stream() {
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(AttemptError::BadPayload(
                "expected text/event-stream for a streaming request".into(),
            ));
        }
        let mode = match (api, kind) {
            _ if speaks(kind) == api => Mode::pass_through(api),
            (Api::OpenAi, _) => Mode::to_chat(request.include_usage(), unix_now()),
            (Api::Anthropic, _) => Mode::to_messages(),
        };
        let upstream = BodyStream::new(response.into_body());
        let mut stream = ChatStream::new(upstream, mode, in_flight);
        clock.upstream(stream.first_event()).await?;
        return Ok(Reply::Stream(stream));
    }

    let body = clock
        .upstream(pool::read_body(response, MAX_UPSTREAM_BODY_BYTES))
        .await
        .map_err(AttemptError::from)?;
    let bad_payload = |e: serde_json::Error| AttemptError::BadPayload(e.to_string());
    let (body, usage) = match (api, kind) {
        (Api::OpenAi, ProviderKind::OpenAi) => {
            let checked: CompletionCheck = check_answer(&body)?;
            (body, checked.usage)
        }
        (Api::Anthropic, ProviderKind::Anthropic) => {
            let checked: MessageCheck = check_answer(&body)?;
            (body, Some(checked.usage.into()))
        }
        (Api::OpenAi, ProviderKind::Anthropic) => {
            let (body, usage) = to_anthropic::response(&body, unix_now()).map_err(bad_payload)?;
            (body, Some(usage))
        }
        (Api::Anthropic, ProviderKind::OpenAi) => {
            let (body, usage) = to_openai::response(&body).map_err(bad_payload)?;
            (body, Some(usage))
        }
    };
    Ok(Reply::Complete { body, usage })
}

/// The API an upstream of `kind` speaks.
fn speaks(kind: ProviderKind) -> Api {
    match kind {
        ProviderKind::OpenAi => Api::OpenAi,
        ProviderKind::Anthropic => Api::Anthropic,
    }
}

/// An answer passed on as it is, checked as `T`: as text after one UTF-8 check of the whole
/// body, which costs less than serde_json checking each of its strings on its own.
fn check_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, AttemptError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| AttemptError::BadPayload(format!("the body is not UTF-8: {e}")))?;
    serde_json::from_str(text).map_err(|e| AttemptError::BadPayload(e.to_string()))
}

/// The least an Anthropic `message` body must have to be passed on.
#[derive(Deserialize)]
struct MessageCheck {
    #[serde(rename = "content")]
    _content: IgnoredAny,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// The least a `chat.completion` body must have to be passed on.
#[derive(Deserialize)]
struct CompletionCheck {
    #[serde(rename = "choices")]
    _choices: IgnoredAny,
    #[serde(default)]
    usage: Option<Usage>,
}

/// Re-encodes the body with another model name (only for routes that rename the model).
pub(crate) fn with_model(raw: &[u8], model: &str) -> Result<Bytes, ApiError> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid JSON body: {e}")))?;
    object.insert("model".into(), serde_json::Value::String(model.to_owned()));
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|e| ApiError::invalid_request(format!("cannot encode request: {e}")))
}

#[derive(Deserialize)]
struct OpenAiErrorEnvelope {
    error: OpenAiErrorBody,
}

#[derive(Deserialize)]
struct OpenAiErrorBody {
    message: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    param: Option<String>,
}

/// Keeps an OpenAI-compatible upstream's own error message for the client.
pub(crate) fn openai_error(status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<OpenAiErrorEnvelope>(body) {
        Ok(e) => {
            let err = ApiError::new(
                status,
                e.error
                    .kind
                    .unwrap_or_else(|| "invalid_request_error".into()),
                e.error.message,
            );
            match e.error.param {
                Some(param) => err.with_param(param),
                None => err,
            }
        }
        Err(_) => ApiError::new(
            status,
            "upstream_error",
            format!("upstream answered {status} with a body that is not an OpenAI error"),
        ),
    }
}

/// Client errors say "client error (Connect)"; the cause says why.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_passed_on_is_checked_as_utf8_json_of_its_shape() {
        let completion = br#"{"choices":[{"message":{"content":"h\u00e9"}}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,
            "prompt_tokens_details":{"cached_tokens":0}}}"#;
        let checked: CompletionCheck = check_answer(completion).expect("a completion");
        assert_eq!(checked.usage, Some(Usage::new(3, 2)));
        let broken = |body: &[u8]| match check_answer::<CompletionCheck>(body) {
            Err(AttemptError::BadPayload(why)) => why,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{body:?} passed"),
        };
        assert!(broken(b"{\"choices\":[\"\xff\"]}").contains("not UTF-8"));
        assert!(broken(br#"{"choices":[1,]}"#).contains("line 1"));
        assert!(broken(br#"{"usage":null}"#).contains("missing field `choices`"));
    }

    #[test]
    fn model_is_replaced_and_other_fields_kept() {
        let out = with_model(br#"{"model":"a","messages":[],"seed":3}"#, "b").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "b");
        assert_eq!(v["seed"], 3);
    }

    #[test]
    fn a_redirect_is_a_broken_answer_that_names_where_it_points() {
        let answer = |status: u16, location: Option<&str>| {
            let mut response = http::Response::builder().status(status);
            if let Some(location) = location {
                response = response.header(header::LOCATION, location);
            }
            classify(&response.body(()).unwrap())
        };
        let broken = |answer| match answer {
            Answer::Failed(AttemptError::BadPayload(message)) => message,
            _ => panic!("not a broken answer"),
        };
        let message = broken(answer(301, Some("https://api.test/v1")));
        assert!(
            message.contains("301 Moved Permanently to https://api.test/v1")
                && message.ends_with("(redirects are not followed)"),
            "{message}"
        );
        let long = format!("https://{}", "a".repeat(MAX_QUOTED_LOCATION));
        let message = broken(answer(302, Some(&long)));
        assert!(!message.contains("aaaa"), "{message}");
        // A 304 is a 3xx but not a redirect: no word of following, nor of where it points.
        let message = broken(answer(304, Some("https://api.test/v1")));
        assert!(
            !message.contains("redirect") && !message.contains("api.test"),
            "{message}"
        );
        assert!(matches!(answer(200, None), Answer::Result));
        assert!(matches!(answer(204, None), Answer::Result));
        assert!(matches!(answer(400, None), Answer::Refused));
        for unavailable in [429, 503] {
            assert!(
                matches!(
                    answer(unavailable, None),
                    Answer::Failed(AttemptError::Unavailable { .. })
                ),
                "{unavailable}"
            );
        }
    }
}
