//! `GET /v1/realtime/chat`: chat completions streamed over a WebSocket.
//!
//! A client opens one connection and sends many requests on it, overlapping, each tagged with
//! an id of its choosing; every message back carries the id of its request ([`protocol`] has
//! the messages). Each request runs the very pipeline of `POST /v1/chat/completions` (limiter,
//! cache, router, queue, breaker, fallback, metrics) with the headers of the upgrade request
//! (key, priority, cache control); only the carriage of its answer differs ([`exchange`]).
//!
//! Everything a connection can make the gateway hold is bounded: a message by
//! `server.body_limit_bytes` (a larger body is refused with 413, a larger message closes the
//! connection with 1009), requests under way by `websocket.max_in_flight`, messages waiting to
//! be written by `websocket.outbound_queue` (a slow reader slows its streams down to its own
//! pace, see [`exchange`]). The gateway pings every `websocket.ping_interval_ms` and closes a
//! connection that sends nothing for `websocket.pong_timeout_ms` after a ping; it answers the
//! client's pings. A connection counts in `gateway_active_websockets` and keeps its slot of
//! `server.max_connections` until it closes.

mod exchange;
mod protocol;
mod session;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig as Protocol};

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::limits;
use crate::server::{ConnectionHold, Shared};

/// Room for a request message's envelope (`type`, `id`) around a body of the largest size.
const ENVELOPE_BYTES: usize = 1024;

/// Ceiling of `websocket.max_in_flight`.
const MAX_IN_FLIGHT: u64 = 10_000;

/// Ceiling of `websocket.outbound_queue`.
const MAX_OUTBOUND_QUEUE: u64 = 65_536;

/// `[websocket]`: the bounds and keep-alive of `GET /v1/realtime/chat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// A ping is sent this long after the last one was answered.
    pub ping_interval_ms: u64,
    /// A connection that sends nothing (a pong in particular) for this long after a ping is
    /// closed (1008).
    pub pong_timeout_ms: u64,
    /// Requests under way on one connection, at most; one more is refused with an error
    /// message (429, `too_many_in_flight`).
    pub max_in_flight: usize,
    /// Messages waiting to be written to one connection, at most. A client that reads slower
    /// than its answers come fills it, and its streams then wait for it.
    pub outbound_queue: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 15_000,
            pong_timeout_ms: 10_000,
            max_in_flight: 32,
            outbound_queue: 64,
        }
    }
}

impl WebSocketConfig {
    /// Every field at least 1 and at most its ceiling.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("websocket.ping_interval_ms", self.ping_interval_ms),
            ("websocket.pong_timeout_ms", self.pong_timeout_ms),
        ] {
            at_least_one(field, value)?;
            limits::duration_at_most(field, value)?;
        }
        for (field, value, max) in [
            (
                "websocket.max_in_flight",
                self.max_in_flight as u64,
                MAX_IN_FLIGHT,
            ),
            (
                "websocket.outbound_queue",
                self.outbound_queue as u64,
                MAX_OUTBOUND_QUEUE,
            ),
        ] {
            at_least_one(field, value)?;
            limits::at_most(field, value, max)?;
        }
        Ok(())
    }
}

fn at_least_one(field: &str, value: u64) -> Result<(), ConfigError> {
    match value {
        0 => Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "must be at least 1".to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `GET /v1/realtime/chat`: checks the upgrade request (RFC 6455 over HTTP/1.1), answers 101
/// and serves the connection on a task of its own.
pub(crate) async fn upgrade(State(gw): State<Arc<Shared>>, mut request: Request) -> Response {
    let accept = match handshake(&gw, &request) {
        Ok(accept) => accept,
        Err(error) => return error.into_response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let hold = request.extensions().get::<ConnectionHold>().cloned();
    let headers = Arc::new(passed_on(request.headers()));
    let limit = gw.config.server.body_limit_bytes + ENVELOPE_BYTES;
    let config = Protocol::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("websocket upgrade failed: {e}");
                return;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        session::serve(socket, gw, headers, hold).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `sec-websocket-accept` of a valid upgrade request, or why it is not one.
fn handshake(gw: &Shared, request: &Request) -> Result<HeaderValue, ApiError> {
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if request.version() != Version::HTTP_11
        || !has_token(header::CONNECTION, "upgrade")
        || !has_token(header::UPGRADE, "websocket")
    {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "invalid_request_error",
            "this endpoint is a WebSocket: send an HTTP/1.1 upgrade request \
             (connection: upgrade, upgrade: websocket)",
        )
        .with_code("upgrade_required"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(http::HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(
            ApiError::invalid_request("sec-websocket-version must be 13")
                .with_param("sec-websocket-version"),
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::invalid_request("sec-websocket-key is missing")
            .with_param("sec-websocket-key"));
    };
    if gw.draining.is_cancelled() {
        return Err(
            ApiError::unavailable("the gateway is shutting down").with_code("shutting_down")
        );
    }
    // Base64 of a SHA-1: always a valid header value.
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| ApiError::internal("cannot encode sec-websocket-accept"))
}

/// The upgrade request's headers that every request of the connection carries: all but those
/// of the upgrade itself and of a body.
fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::TRANSFER_ENCODING,
        header::HOST,
    ] {
        kept.remove(name);
    }
    let websocket: Vec<_> = kept
        .keys()
        .filter(|name| name.as_str().starts_with("sec-websocket-"))
        .cloned()
        .collect();
    for name in websocket {
        kept.remove(name);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_named() {
        assert!(WebSocketConfig::default().validate().is_ok());
        let zero = WebSocketConfig {
            outbound_queue: 0,
            ..WebSocketConfig::default()
        };
        let error = zero.validate().unwrap_err().to_string();
        assert!(error.contains("websocket.outbound_queue"), "{error}");
        let huge = WebSocketConfig {
            max_in_flight: 1 << 20,
            ..WebSocketConfig::default()
        };
        let error = huge.validate().unwrap_err().to_string();
        assert!(error.contains("websocket.max_in_flight"), "{error}");
    }

    #[test]
    fn the_upgrade_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("sec-websocket-version", "13"),
            ("authorization", "Bearer k"),
            ("x-priority", "high"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let kept = passed_on(&headers);
        let names: Vec<&str> = kept.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(kept.contains_key("authorization") && kept.contains_key("x-priority"));
    }
}
