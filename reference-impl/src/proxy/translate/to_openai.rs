//! An Anthropic client in front of an OpenAI-compatible upstream: the Messages request becomes
//! a chat completion request, and the completion, its chunks and its errors come back as an
//! Anthropic message, its event stream and Anthropic errors.
//!
//! The event writers here (`message_start`, `block_start`, `text_delta`, ...) are also
//! how the cache replays a stored message to a streaming Anthropic client, so both streams have
//! one shape.

use std::borrow::Cow;
use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{
    AnthropicUsage, ContentOut, MessageOut, StreamError, TextPart, Usage, stop_reason, unsupported,
    write_json,
};
use crate::error::ApiError;
use crate::messages::{Block, Content, MessagesBody, Role};
use crate::proxy::openai_error;

#[derive(Serialize)]
struct ChatOut<'a> {
    model: &'a str,
    messages: Vec<MessageOut<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// Asked for on every stream: the final `message_delta` carries the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsOut>,
}

#[derive(Serialize)]
struct StreamOptionsOut {
    include_usage: bool,
}

/// Builds the `POST /v1/chat/completions` body for an Anthropic Messages request.
///
/// `system` becomes the first message; text blocks map one to one onto text parts. Tools,
/// thinking and non-text blocks have no faithful translation here: the request is refused for
/// this candidate ([`crate::proxy::AttemptError::Unsupported`]), and an Anthropic candidate may
/// serve it. Fields with no OpenAI counterpart that do not change the answer's shape (`top_k`,
/// `metadata`) are not sent.
pub(crate) fn request(body: &MessagesBody, model: &str) -> Result<Bytes, ApiError> {
    if !body.tools.is_empty() {
        return Err(unsupported(
            "tools".into(),
            "tools are not translated for OpenAI-compatible providers",
        ));
    }
    if body.thinking.is_some() {
        return Err(unsupported(
            "thinking".into(),
            "extended thinking is not translated for OpenAI-compatible providers",
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len() + 1);
    if let Some(system) = &body.system {
        messages.push(MessageOut {
            role: "system",
            content: content(system, || "system".to_owned())?,
        });
    }
    for (i, message) in body.messages.iter().enumerate() {
        messages.push(MessageOut {
            role: match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: content(&message.content, || format!("messages[{i}].content"))?,
        });
    }
    let out = ChatOut {
        model,
        messages,
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        stop: &body.stop_sequences,
        stream: body.stream,
        stream_options: body.stream.then_some(StreamOptionsOut {
            include_usage: true,
        }),
    };
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| ApiError::invalid_request(format!("cannot encode request: {e}")))
}

/// `param` names the field, built only when it is refused.
fn content(content: &Content, param: impl Fn() -> String) -> Result<ContentOut<'_>, ApiError> {
    match content {
        Content::Text(text) => Ok(ContentOut::Text(text)),
        Content::Blocks(blocks) => blocks
            .iter()
            .map(|block| match block {
                Block::Text { text } => Ok(TextPart::new(text)),
                Block::Other => Err(unsupported(
                    param(),
                    "only text blocks are translated for OpenAI-compatible providers",
                )),
            })
            .collect::<Result<_, _>>()
            .map(ContentOut::Parts),
    }
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: ChoiceMessage<'a>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceMessage<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<TextPart<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: AnthropicUsage,
}

/// Translates a whole OpenAI `chat.completion` into an Anthropic `message` body (the first
/// choice: a Messages request asks for one).
pub fn response(body: &[u8]) -> Result<(Bytes, Usage), serde_json::Error> {
    let completion: Completion<'_> = serde_json::from_slice(body)?;
    let first = completion.choices.first();
    let text = first.and_then(|c| c.message.content.as_deref());
    let usage = completion.usage.unwrap_or_default();
    let message = Message {
        id: &completion.id,
        kind: "message",
        role: "assistant",
        model: &completion.model,
        content: text.map(TextPart::new).into_iter().collect(),
        stop_reason: first
            .and_then(|c| c.finish_reason.as_deref())
            .map(stop_reason),
        stop_sequence: None,
        usage: AnthropicUsage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        },
    };
    Ok((Bytes::from(serde_json::to_vec(&message)?), usage))
}

/// `message_start`: how every Anthropic stream this gateway writes begins (input tokens are 0
/// when the upstream reports them only at the end).
pub(crate) fn message_start(out: &mut BytesMut, id: &str, model: &str, input_tokens: u64) {
    out.put_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":");
    write_json(&mut (&mut *out).writer(), id);
    out.put_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    write_json(&mut (&mut *out).writer(), model);
    let _ = write!(
        (&mut *out).writer(),
        ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{input_tokens},\"output_tokens\":0}}}}}}\n\n"
    );
}

/// The (empty) text block a translated answer is written into.
pub(crate) const TEXT_BLOCK: &[u8] = b"{\"type\":\"text\",\"text\":\"\"}";

/// `content_block_start` of block `index`, whose opening state is the JSON `block`.
pub(crate) fn block_start(out: &mut BytesMut, index: usize, block: &[u8]) {
    let _ = write!(
        (&mut *out).writer(),
        "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":"
    );
    out.put_slice(block);
    out.put_slice(b"}\n\n");
}

/// `ping`, sent once after the first block starts, as Anthropic does.
pub(crate) fn ping(out: &mut BytesMut) {
    out.put_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
}

/// One `content_block_delta` with a `text_delta`: the per-token event, written without a serde
/// tree.
pub(crate) fn text_delta(out: &mut BytesMut, index: usize, text: &str) {
    let _ = write!(
        (&mut *out).writer(),
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":"
    );
    write_json(&mut (&mut *out).writer(), text);
    out.put_slice(b"}}\n\n");
}

/// One `content_block_delta` of block `index` carrying the JSON `delta`.
pub(crate) fn block_delta(out: &mut BytesMut, index: usize, delta: &[u8]) {
    let _ = write!(
        (&mut *out).writer(),
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":"
    );
    out.put_slice(delta);
    out.put_slice(b"}\n\n");
}

/// `content_block_stop` of block `index`.
pub(crate) fn block_stop(out: &mut BytesMut, index: usize) {
    let _ = write!(
        (&mut *out).writer(),
        "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\n"
    );
}

/// `message_delta` with the stop reason and usage, then `message_stop`.
pub(crate) fn message_end(out: &mut BytesMut, stop_reason: Option<&str>, usage: AnthropicUsage) {
    out.put_slice(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
    );
    write_json(&mut (&mut *out).writer(), &stop_reason);
    out.put_slice(b",\"stop_sequence\":null},\"usage\":");
    write_json(&mut (&mut *out).writer(), &usage);
    out.put_slice(b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// Turns OpenAI `chat.completion.chunk` events into Anthropic stream events.
#[derive(Debug, Default)]
pub struct StreamTranslator {
    started: bool,
    usage: Usage,
    stop_reason: Option<&'static str>,
    finished: bool,
}

impl StreamTranslator {
    /// `[DONE]` was translated: the Anthropic stream is complete.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Usage as the upstream's final usage chunk reported it.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Translates one event's `data`, appending zero or more Anthropic events to `out`.
    pub fn event(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), StreamError> {
        if data == b"[DONE]" {
            if !self.started {
                return Err(StreamError::NotStarted("[DONE]".into()));
            }
            let usage = AnthropicUsage {
                input_tokens: self.usage.prompt_tokens,
                output_tokens: self.usage.completion_tokens,
            };
            block_stop(out, 0);
            message_end(out, Some(self.stop_reason.unwrap_or("end_turn")), usage);
            self.finished = true;
            return Ok(());
        }
        if data.starts_with(b"{\"error\"") {
            return Err(StreamError::Upstream(openai_error(
                StatusCode::BAD_GATEWAY,
                data,
            )));
        }
        let chunk: Chunk<'_> =
            serde_json::from_slice(data).map_err(|source| StreamError::Malformed {
                event: "chat.completion.chunk".into(),
                source,
            })?;
        if !self.started {
            message_start(out, &chunk.id, &chunk.model, 0);
            block_start(out, 0, TEXT_BLOCK);
            ping(out);
            self.started = true;
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref())
                && !text.is_empty()
            {
                text_delta(out, 0, text);
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.stop_reason = Some(stop_reason(reason));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::MessagesRequest;

    #[test]
    fn request_moves_system_first_and_maps_fields() {
        let raw = br#"{"model":"claude","max_tokens":7,"system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stop_sequences":["x"],"stream":true,"temperature":0.5,"top_k":4}"#;
        let messages = MessagesRequest::parse(Bytes::from_static(raw)).unwrap();
        let out = request(&messages.body, "gpt").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"gpt","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":7,"temperature":0.5,"stop":["x"],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn request_refuses_tools_and_images_naming_the_field() {
        let raw = br#"{"model":"c","max_tokens":1,"messages":[{"role":"user","content":"a"}],"tools":[{"name":"t"}]}"#;
        let messages = MessagesRequest::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(
            request(&messages.body, "g").unwrap_err().param.as_deref(),
            Some("tools")
        );
        let raw = br#"{"model":"c","max_tokens":1,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"image","source":{}}]}]}"#;
        let messages = MessagesRequest::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(
            request(&messages.body, "g").unwrap_err().param.as_deref(),
            Some("messages[1].content")
        );
    }

    #[test]
    fn response_maps_text_finish_reason_and_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        let (out, usage) = response(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"chatcmpl-1","type":"message","role":"assistant","model":"gpt","content":[{"type":"text","text":"Hello"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}"#
        );
        assert_eq!(usage.total_tokens, 8);
    }

    #[test]
    fn stream_translates_chunks_into_the_event_sequence() {
        let mut t = StreamTranslator::default();
        let mut out = BytesMut::new();
        for data in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"content":"Hi \"there\""},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#,
            "[DONE]",
        ] {
            t.event(data.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"c1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n\
             event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
             event: ping\ndata: {\"type\": \"ping\"}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"there\\\"\"}}\n\n\
             event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
             event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}\n\n\
             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        assert!(t.finished());
        assert_eq!(t.usage().total_tokens, 6);
    }

    #[test]
    fn stream_error_event_becomes_an_api_error() {
        let mut t = StreamTranslator::default();
        let err = t
            .event(
                br#"{"error":{"message":"boom","type":"server_error"}}"#,
                &mut BytesMut::new(),
            )
            .unwrap_err();
        assert!(matches!(err, StreamError::Upstream(e) if e.message == "boom"));
        assert!(
            t.event(b"{\"id\":", &mut BytesMut::new())
                .is_err_and(|e| matches!(e, StreamError::Malformed { .. }))
        );
    }
}
