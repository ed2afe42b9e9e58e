//! Errors: [`GatewayError`] for starting the gateway, [`ApiError`] for what a client sees, in
//! the shape of the API the client speaks.

use std::borrow::Cow;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::config::ConfigError;
use crate::front::Api;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// An error with an HTTP status, rendered for the client's API: OpenAI's
/// `{"error":{"message","type","param","code"}}` by default, Anthropic's
/// `{"type":"error","error":{"type","message"}}` at the Messages front door
/// ([`ApiError::into_response_for`]).
///
/// Every failure a client can see is one of these, so clients written against either API parse
/// gateway errors without special cases.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Sent as `retry-after` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct AnthropicEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicBody<'a>,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            kind: kind.into(),
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// 400: the request is malformed or a field is missing or of the wrong type.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404: no route serves this model.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or is not served by this gateway"),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 413: the body is larger than `server.body_limit_bytes`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body exceeds the limit of {limit} bytes"),
        )
        .with_code("payload_too_large")
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "Content-Type must be application/json",
        )
        .with_code("unsupported_media_type")
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Missing or invalid bearer token",
        )
        .with_code("invalid_api_key")
    }

    /// 403: the admin API without a token answers loopback clients only.
    pub fn forbidden(message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    /// 404 for an unknown path or named resource.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 429: upstream (or a local limit) refused for now.
    pub fn rate_limited(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("rate_limit_exceeded")
    }

    /// 502: the upstream failed or answered with something that is not a valid response.
    pub fn bad_gateway(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }

    /// 503: no provider can take the request now.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "upstream_error", message)
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "upstream_error", message).with_code("timeout")
    }

    /// 500: a bug in the gateway (a caught panic).
    pub fn internal(message: &'static str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        // Serialising a struct of strings into a Vec cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// The same error as one SSE event, ending a stream that already started.
    pub fn to_sse_event(&self) -> Bytes {
        self.sse_event_for(Api::OpenAi)
    }

    /// The status an Anthropic client sees: a full queue is Anthropic's 529 (overloaded), which
    /// its clients back off from; everything else keeps its status.
    pub fn anthropic_status(&self) -> StatusCode {
        match self.code {
            Some("queue_full") => StatusCode::from_u16(529).unwrap_or(self.status),
            _ => self.status,
        }
    }

    /// Anthropic's error type for the status an Anthropic client sees.
    pub fn anthropic_type(&self) -> &'static str {
        match self.anthropic_status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The Anthropic JSON body; the field at fault, which Anthropic's shape has no place for,
    /// leads the message as Anthropic's own errors do (`max_tokens: Field required`).
    pub fn to_anthropic_json(&self) -> Vec<u8> {
        let message = match &self.param {
            Some(param) => Cow::Owned(format!("{param}: {}", self.message)),
            None => Cow::Borrowed(&*self.message),
        };
        let envelope = AnthropicEnvelope {
            kind: "error",
            error: AnthropicBody {
                kind: self.anthropic_type(),
                message: &message,
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// The error as one SSE event of the client's API: OpenAI's `data:` line, or Anthropic's
    /// `event: error`.
    pub fn sse_event_for(&self, api: Api) -> Bytes {
        let (name, json): (&[u8], _) = match api {
            Api::OpenAi => (b"", self.to_json()),
            Api::Anthropic => (b"event: error\n", self.to_anthropic_json()),
        };
        let mut event = Vec::with_capacity(name.len() + json.len() + 8);
        event.extend_from_slice(name);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The response for a client of `api`, with `retry-after` when set.
    pub fn into_response_for(self, api: Api) -> Response {
        let (status, body) = match api {
            Api::OpenAi => (self.status, self.to_json()),
            Api::Anthropic => (self.anthropic_status(), self.to_anthropic_json()),
        };
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_millis().div_ceil(1000).max(1) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_for(Api::OpenAi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_openai_shape() {
        let err = ApiError::invalid_request("bad").with_param("messages");
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": null}})
        );
    }

    #[test]
    fn anthropic_shape_types_by_status_and_names_the_field() {
        let err = ApiError::invalid_request("Field required").with_param("max_tokens");
        let v: serde_json::Value = serde_json::from_slice(&err.to_anthropic_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
        );
        let full = ApiError::unavailable("busy").with_code("queue_full");
        assert_eq!(full.anthropic_status().as_u16(), 529);
        assert_eq!(full.anthropic_type(), "overloaded_error");
        assert_eq!(
            ApiError::payload_too_large(1).anthropic_type(),
            "request_too_large"
        );
        assert_eq!(
            ApiError::rate_limited("x").anthropic_type(),
            "rate_limit_error"
        );
        assert_eq!(ApiError::bad_gateway("x").anthropic_type(), "api_error");
        let event = ApiError::bad_gateway("broke").sse_event_for(Api::Anthropic);
        assert!(event.starts_with(b"event: error\ndata: {\"type\":\"error\""));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = ApiError::rate_limited("slow down")
            .with_retry_after(Some(Duration::from_millis(1200)))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
