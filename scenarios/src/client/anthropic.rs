//! Anthropic Messages wire format: the request body the load sends and the parts of responses it
//! reads, parsed with borrowed strings like the OpenAI side.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::workload::{Message, Role};

/// `POST /v1/messages` body. System messages of the prompt become the top-level `system`.
#[derive(Serialize)]
pub(crate) struct MessagesBody<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<&'a Message>,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    pub stream: bool,
}

impl<'a> MessagesBody<'a> {
    pub(crate) fn new(
        model: &'a str,
        messages: &'a [Message],
        max_tokens: u32,
        temperature: Option<f64>,
        stream: bool,
    ) -> MessagesBody<'a> {
        let system: Vec<&str> = messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        MessagesBody {
            model,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: messages.iter().filter(|m| m.role != Role::System).collect(),
            max_tokens,
            temperature,
            stream,
        }
    }
}

/// Token usage as Anthropic reports it: input in `message_start`, output in `message_delta`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(crate) struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// One streamed event's data. Every event names its type in the data too, so the SSE `event:`
/// line is not needed.
#[derive(Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// `message_start`'s message, for its usage.
    pub message: Option<Start>,
    /// `content_block_delta`'s delta (`text_delta` carries `text`), or `message_delta`'s.
    #[serde(borrow)]
    pub delta: Option<Delta<'a>>,
    /// `message_delta`'s usage.
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(crate) struct Start {
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
}

/// A non-streaming `message` response: valid when it has `content`.
#[derive(Deserialize)]
pub(crate) struct Response<'a> {
    #[serde(borrow)]
    pub content: Option<Vec<Block<'a>>>,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(crate) struct Block<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_messages_move_to_the_top_level() {
        let messages = [
            Message::new(Role::System, "be brief"),
            Message::new(Role::User, "hello"),
            Message::new(Role::Assistant, "hi"),
            Message::new(Role::User, "again"),
        ];
        let body = MessagesBody::new("claude", &messages, 64, None, true);
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["system"], "be brief");
        assert_eq!(json["messages"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["messages"][0]["role"], "user");
        assert_eq!(json["messages"][1]["role"], "assistant");
        assert_eq!(json["max_tokens"], 64);
        assert!(json.get("temperature").is_none());
        let bare = MessagesBody::new("claude", &messages[1..2], 8, Some(0.0), false);
        let json = serde_json::to_value(&bare).expect("serializes");
        assert!(json.get("system").is_none());
        assert_eq!(json["temperature"], 0.0);
    }

    #[test]
    fn events_expose_text_and_usage() {
        let start: Event<'_> = serde_json::from_str(
            r#"{"type":"message_start","message":{"id":"m","type":"message","usage":{"input_tokens":12,"output_tokens":1}}}"#,
        )
        .expect("message_start");
        assert_eq!(start.kind, "message_start");
        assert_eq!(
            start
                .message
                .and_then(|m| m.usage)
                .and_then(|u| u.input_tokens),
            Some(12)
        );
        let delta: Event<'_> = serde_json::from_str(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \"x\""}}"#,
        )
        .expect("delta");
        assert_eq!(
            delta.delta.and_then(|d| d.text).as_deref(),
            Some("hi \"x\"")
        );
        let end: Event<'_> = serde_json::from_str(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
        )
        .expect("message_delta");
        assert_eq!(end.usage.and_then(|u| u.output_tokens), Some(7));
    }
}
