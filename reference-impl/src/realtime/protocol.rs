//! The messages of `GET /v1/realtime/chat`, both ways, as JSON text.
//!
//! Client to gateway, one per request:
//! `{"type":"chat","id":"r1","body":{..an OpenAI chat completions body..}}`.
//!
//! Gateway to client, each tagged with the request's `id` (requests overlap on a connection):
//! - `{"type":"delta","id":"r1","content":"..."}` for each chunk of generated text;
//! - `{"type":"done","id":"r1","finish_reason":"stop","usage":{..}}` once it is complete;
//! - `{"type":"error","id":"r1","status":429,"error":{"message":..,"type":..,"param":..,"code":..}}`
//!   instead, `error` being OpenAI's error object and `status` the HTTP status the same request
//!   would have had on `POST /v1/chat/completions`. A message that could not be read as a
//!   request at all is answered with `"id":null`.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Longest request id accepted: ids are echoed in every message of their request.
pub(super) const MAX_ID_BYTES: usize = 256;

/// A chat request read from a client's text message.
#[derive(Debug)]
pub(super) struct ChatMessage {
    pub id: String,
    /// The chat completions body, asking for a stream with usage.
    pub body: Bytes,
}

/// A text message as sent; its fields are checked by [`ChatMessage::parse`].
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    id: Option<Value>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

/// The two fields a body must have for a WebSocket request; the rest is the pipeline's.
#[derive(Deserialize)]
struct StreamFields {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl ChatMessage {
    /// Reads a client's text message; a message that is not a chat request gets the text of
    /// the error message that answers it, with the id when one could be read and the
    /// offending field as `param`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            let error = ApiError::invalid_request(format!("the message is not a JSON object: {e}"));
            api_error_text(None, &error)
        })?;
        let invalid = |id: Option<&str>, param: &str, message: &'static str| {
            api_error_text(id, &ApiError::invalid_request(message).with_param(param))
        };
        let id = match envelope.id {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_BYTES => id,
            _ => {
                return Err(invalid(
                    None,
                    "id",
                    "`id` must be a non-empty string of at most 256 bytes",
                ));
            }
        };
        if envelope.kind.as_deref() != Some("chat") {
            return Err(invalid(Some(&id), "type", "`type` must be \"chat\""));
        }
        let Some(body) = envelope.body else {
            return Err(invalid(
                Some(&id),
                "body",
                "`body` must be a chat completions request",
            ));
        };
        match streaming(body) {
            Ok(body) => Ok(Self { id, body }),
            Err(error) => Err(api_error_text(Some(&id), &error)),
        }
    }
}

/// The body as it goes to the pipeline: the client's bytes unchanged when they already ask for
/// a stream with usage (the final message reports it), else re-encoded with those two set.
fn streaming(body: &RawValue) -> Result<Bytes, ApiError> {
    let raw = body.get();
    if let Ok(StreamFields {
        stream: true,
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
    }) = serde_json::from_str::<StreamFields>(raw)
    {
        return Ok(Bytes::copy_from_slice(raw.as_bytes()));
    }
    let mut object: Map<String, Value> = serde_json::from_str(raw).map_err(|_| {
        ApiError::invalid_request("`body` must be a JSON object").with_param("body")
    })?;
    object.insert("stream".to_owned(), Value::Bool(true));
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    match options {
        Value::Object(options) => {
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
        _ => {
            return Err(
                ApiError::invalid_request("`stream_options` must be an object")
                    .with_param("body.stream_options"),
            );
        }
    }
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|e| ApiError::invalid_request(format!("cannot encode `body`: {e}")))
}

/// A message to the client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Outbound<'a> {
    Delta {
        id: &'a str,
        content: &'a str,
    },
    Done {
        id: &'a str,
        finish_reason: Option<&'a str>,
        usage: Option<&'a RawValue>,
    },
    Error {
        id: Option<&'a str>,
        status: u16,
        error: &'a RawValue,
    },
}

impl Outbound<'_> {
    /// The JSON text of the message.
    pub fn text(&self) -> String {
        // A tree of strings, numbers and valid raw JSON always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// OpenAI's error envelope, `{"error":{..}}`, as the pipeline writes it.
#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: &'a RawValue,
}

/// An error message for request `id` from an error response's status and body; a body that is
/// not OpenAI's error envelope becomes a 502 of the gateway's own.
pub(super) fn error_text(id: Option<&str>, status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope<'_>>(body) {
        Ok(envelope) => Outbound::Error {
            id,
            status,
            error: envelope.error,
        }
        .text(),
        Err(_) => api_error_text(
            id,
            &ApiError::bad_gateway(format!("an error answer ({status}) that is not JSON")),
        ),
    }
}

/// An error message for request `id` from one of the gateway's own errors.
pub(super) fn api_error_text(id: Option<&str>, error: &ApiError) -> String {
    let body = error.to_json();
    let envelope: ErrorEnvelope<'_> = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        // `ApiError::to_json` always writes the envelope.
        Err(_) => return String::new(),
    };
    Outbound::Error {
        id,
        status: error.status.as_u16(),
        error: envelope.error,
    }
    .text()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &ChatMessage) -> Value {
        serde_json::from_slice(&message.body).unwrap()
    }

    #[test]
    fn a_streaming_body_passes_as_sent() {
        let sent = r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"z":1}"#;
        let message =
            ChatMessage::parse(&format!(r#"{{"type":"chat","id":"r1","body":{sent}}}"#)).unwrap();
        assert_eq!(message.id, "r1");
        assert_eq!(&message.body[..], sent.as_bytes());
    }

    #[test]
    fn stream_and_usage_are_asked_for_when_missing() {
        let message = ChatMessage::parse(
            r#"{"type":"chat","id":"r2","body":{"model":"m","stream_options":{"x":1}}}"#,
        )
        .unwrap();
        let body = body(&message);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stream_options"]["x"], 1);
    }

    /// The error message that refuses `text`.
    fn refusal(text: &str) -> Value {
        serde_json::from_str(&ChatMessage::parse(text).unwrap_err()).unwrap()
    }

    #[test]
    fn bad_messages_name_the_field() {
        let param = |text: &str| refusal(text)["error"]["param"].clone();
        assert_eq!(param(r#"{"type":"chat","body":{}}"#), "id");
        assert_eq!(param(r#"{"type":"chat","id":7,"body":{}}"#), "id");
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            param(&format!(r#"{{"type":"chat","id":"{long}","body":{{}}}}"#)),
            "id"
        );
        let wrong_type = refusal(r#"{"type":"ping","id":"a","body":{}}"#);
        assert_eq!(wrong_type["id"], "a");
        assert_eq!(wrong_type["error"]["param"], "type");
        assert_eq!(param(r#"{"type":"chat","id":"a"}"#), "body");
        assert_eq!(param(r#"{"type":"chat","id":"a","body":[1]}"#), "body");
        assert_eq!(
            param(r#"{"type":"chat","id":"a","body":{"stream_options":3}}"#),
            "body.stream_options"
        );
        let garbage = refusal("not json");
        assert_eq!(garbage["id"], Value::Null);
        assert_eq!(garbage["status"], 400);
        assert_eq!(garbage["type"], "error");
    }

    #[test]
    fn errors_carry_openai_error_objects() {
        let own = api_error_text(Some("r1"), &ApiError::rate_limited("slow down"));
        let own: Value = serde_json::from_str(&own).unwrap();
        assert_eq!(own["type"], "error");
        assert_eq!(own["id"], "r1");
        assert_eq!(own["status"], 429);
        assert_eq!(own["error"]["type"], "rate_limit_error");
        assert_eq!(own["error"]["code"], "rate_limit_exceeded");
        let relayed = error_text(None, 404, br#"{"error":{"message":"no","type":"t"}}"#);
        let relayed: Value = serde_json::from_str(&relayed).unwrap();
        assert_eq!(relayed["id"], Value::Null);
        assert_eq!(relayed["error"]["message"], "no");
        let broken: Value = serde_json::from_str(&error_text(Some("r"), 500, b"<html>")).unwrap();
        assert_eq!(broken["status"], 502);
    }
}
