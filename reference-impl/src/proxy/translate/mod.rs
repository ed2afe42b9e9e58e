//! Translation between the two APIs the gateway speaks, one module per direction:
//! [`to_anthropic`] serves an OpenAI client from an Anthropic upstream, [`to_openai`] an
//! Anthropic client from an OpenAI upstream. Each translates the request out and the answer,
//! whole or streamed, back. What both need (token usage, the stop-reason vocabulary, Anthropic
//! error bodies) is here, once.
//!
//! A client and an upstream of the same API need no translation: their bytes pass through.

pub mod to_anthropic;
pub mod to_openai;

use std::borrow::Cow;
use std::io::Write;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Anthropic API version sent with every request to an Anthropic upstream.
pub const VERSION: &str = "2023-06-01";

/// Token usage as OpenAI reports it; the gateway's own count whatever the APIs involved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
        }
    }
}

/// Token usage as Anthropic reports it (`message.usage`, `message_delta.usage`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

impl From<AnthropicUsage> for Usage {
    fn from(usage: AnthropicUsage) -> Self {
        Self::new(usage.input_tokens, usage.output_tokens)
    }
}

/// A request message as either API takes it: a role and its text, whole or in parts.
#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: ContentOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(&'a str),
    Parts(Vec<TextPart<'a>>),
}

/// `{"type":"text","text":...}`: an OpenAI content part and an Anthropic content block alike.
#[derive(Serialize)]
struct TextPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> TextPart<'a> {
    fn new(text: &'a str) -> Self {
        TextPart { kind: "text", text }
    }
}

/// Maps an Anthropic `stop_reason` to an OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

/// Maps an OpenAI `finish_reason` to an Anthropic `stop_reason` (the inverse of
/// [`finish_reason`]; OpenAI does not tell a stop sequence from a natural end, so both are
/// `end_turn`).
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// Reads an Anthropic error body (`{"type":"error","error":{"type","message"}}`), keeping the
/// upstream's own type and message.
pub fn anthropic_error(status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorEnvelope<'_>>(body) {
        Ok(e) => ApiError::new(
            status,
            e.error.kind.into_owned(),
            e.error.message.into_owned(),
        ),
        Err(_) => ApiError::new(
            status,
            "upstream_error",
            format!("upstream answered {status} with a body that is not an Anthropic error"),
        ),
    }
}

/// Why a stream event could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("malformed `{event}` event from upstream: {source}")]
    Malformed {
        event: String,
        source: serde_json::Error,
    },
    #[error("upstream stream error: {0}")]
    Upstream(ApiError),
    #[error("upstream sent `{0}` before the start of the message")]
    NotStarted(String),
}

/// A request field this translation cannot carry: the next candidate (of the client's own API)
/// may serve the request.
fn unsupported(param: String, message: &'static str) -> ApiError {
    ApiError::invalid_request(message).with_param(param)
}

/// Serialises a value that cannot fail to serialise (strings, plain structs).
fn write_json<W: Write, T: Serialize + ?Sized>(out: &mut W, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_finish_reasons_map_back_and_forth() {
        for stop in ["end_turn", "max_tokens", "tool_use", "refusal"] {
            assert_eq!(stop_reason(finish_reason(stop)), stop);
        }
        for finish in ["stop", "length", "tool_calls", "content_filter"] {
            assert_eq!(finish_reason(stop_reason(finish)), finish);
        }
    }
}
