//! Errors: [`GatewayError`] for starting the gateway, [`ApiError`] for what a client sees.

use std::borrow::Cow;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::config::ConfigError;

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

/// An OpenAI-style error: `{"error":{"message","type","param","code"}}` with an HTTP status.
///
/// Every failure a client can see is one of these, so clients written against OpenAI parse
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
        let json = self.to_json();
        let mut event = Vec::with_capacity(json.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
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
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_json(),
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
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = ApiError::rate_limited("slow down")
            .with_retry_after(Some(Duration::from_millis(1200)))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
