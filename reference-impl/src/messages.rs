//! The Anthropic Messages request (`POST /v1/messages`) as the gateway understands it.
//!
//! As with [`crate::request`], only the fields the gateway acts on are typed; unknown fields
//! are accepted and reach Anthropic upstreams untouched, because the original bytes are sent.
//! The typed fields are also what the translation for OpenAI upstreams can carry.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;
use crate::request::{check_model, check_object, parse_body, string_or_list};

/// A parsed and validated `POST /v1/messages` body, with the raw bytes it came from.
#[derive(Debug)]
pub struct MessagesRequest {
    pub body: MessagesBody,
    /// The body as received, forwarded as is to Anthropic upstreams.
    pub raw: Bytes,
}

/// The typed fields of a Messages request.
#[derive(Debug, Deserialize)]
pub struct MessagesBody {
    pub model: String,
    /// Required by the Messages API, so required here too: a request that an Anthropic
    /// upstream would refuse is refused before it is routed.
    pub max_tokens: u32,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub system: Option<Content>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    /// Tool definitions: passed to Anthropic upstreams, not translated for OpenAI ones.
    #[serde(default)]
    pub tools: Vec<IgnoredAny>,
    /// Extended thinking: passed to Anthropic upstreams, not translated for OpenAI ones.
    #[serde(default)]
    pub thinking: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Content,
}

/// Message or system content: a plain string or an array of typed blocks.
#[derive(Debug)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of content blocks",
            Content::Text,
            Content::Blocks,
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// Images, documents, tool use and results, thinking: valid for Anthropic upstreams, not
    /// translated for OpenAI ones.
    #[serde(other)]
    Other,
}

impl MessagesRequest {
    /// Parses and validates a body; errors name the offending field as `param` (rendered in
    /// the Anthropic error's message).
    pub fn parse(raw: Bytes) -> Result<Self, ApiError> {
        check_object(&raw)?;
        let body: MessagesBody = parse_body(&raw)?;
        check_model(&body.model)?;
        if body.max_tokens == 0 {
            return Err(ApiError::invalid_request("`max_tokens` must be at least 1")
                .with_param("max_tokens"));
        }
        if body.messages.is_empty() {
            return Err(
                ApiError::invalid_request("`messages` must contain at least one message")
                    .with_param("messages"),
            );
        }
        Ok(Self { body, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<MessagesRequest, ApiError> {
        MessagesRequest::parse(Bytes::copy_from_slice(json.as_bytes()))
    }

    #[test]
    fn accepts_strings_blocks_system_and_unknown_fields() {
        let r = parse(
            r#"{"model":"c","max_tokens":5,"system":[{"type":"text","text":"be brief"}],
                "messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{}}]}],
                "stream":true,"top_k":3,"metadata":{"user_id":"u"}}"#,
        )
        .unwrap();
        assert!(r.body.stream);
        assert!(matches!(r.body.system, Some(Content::Blocks(_))));
        let Content::Blocks(blocks) = &r.body.messages[0].content else {
            panic!("blocks")
        };
        assert!(matches!(blocks[1], Block::Other));
    }

    #[test]
    fn names_the_missing_or_wrong_field() {
        let e = parse(r#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#).unwrap_err();
        assert!(e.message.contains("missing field `max_tokens`"), "{e}");
        let e =
            parse(r#"{"model":"c","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#)
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse(r#"{"model":"c","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = parse(r#"{"model":"","max_tokens":1,"messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse(r#"{"model":"c","max_tokens":1,"messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(
            parse("[1]")
                .unwrap_err()
                .message
                .starts_with("Invalid JSON")
        );
    }
}
