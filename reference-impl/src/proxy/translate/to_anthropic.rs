//! An OpenAI client in front of an Anthropic upstream: the chat request becomes a Messages
//! request, and the message, its stream events and its errors come back as OpenAI's.
//!
//! Stream chunks are written from pre-serialized prefixes: per text delta only the text is
//! JSON-escaped, so translating a token costs one small copy, not a serde tree.

use std::borrow::Cow;
use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{
    AnthropicUsage, ContentOut, MessageOut, StreamError, TextPart, Usage, anthropic_error,
    finish_reason, unsupported, write_json,
};
use crate::error::ApiError;
use crate::request::{ChatBody, Content, Part, Role};

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// Builds the `POST /v1/messages` body for an OpenAI chat request.
///
/// System and developer messages become `system`; text parts map one to one. Tool messages
/// and non-text parts have no faithful translation here and are rejected with 400.
pub fn request(body: &ChatBody, model: &str, default_max_tokens: u32) -> Result<Bytes, ApiError> {
    let mut system: Option<String> = None;
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, message) in body.messages.iter().enumerate() {
        let role = match message.role {
            Role::System | Role::Developer => {
                let text = text_of(message.content.as_ref(), i)?;
                match &mut system {
                    Some(s) => {
                        s.push_str("\n\n");
                        s.push_str(&text);
                    }
                    None => system = Some(text.into_owned()),
                }
                continue;
            }
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool | Role::Function => {
                return Err(unsupported(
                    format!("messages[{i}].role"),
                    "tool and function messages are not translated for Anthropic providers",
                ));
            }
        };
        let content = match &message.content {
            Some(Content::Text(text)) => ContentOut::Text(text),
            Some(Content::Parts(parts)) => ContentOut::Parts(
                parts
                    .iter()
                    .map(|part| match part {
                        Part::Text { text } => Ok(TextPart::new(text)),
                        Part::Other => Err(unsupported(
                            format!("messages[{i}].content"),
                            "only text content parts are translated for Anthropic providers",
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => {
                return Err(ApiError::invalid_request("message content is required")
                    .with_param(format!("messages[{i}].content")));
            }
        };
        messages.push(MessageOut { role, content });
    }
    let out = MessagesRequest {
        model,
        max_tokens: body
            .max_completion_tokens
            .or(body.max_tokens)
            .unwrap_or(default_max_tokens),
        messages,
        system,
        temperature: body.temperature,
        top_p: body.top_p,
        stop_sequences: match &body.stop {
            Some(crate::request::Stop::One(s)) => vec![s.as_str()],
            Some(crate::request::Stop::Many(v)) => v.iter().map(String::as_str).collect(),
            None => Vec::new(),
        },
        stream: body.stream,
    };
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| ApiError::invalid_request(format!("cannot encode request: {e}")))
}

fn text_of(content: Option<&Content>, i: usize) -> Result<Cow<'_, str>, ApiError> {
    match content {
        Some(Content::Text(text)) => Ok(Cow::Borrowed(text)),
        Some(Content::Parts(parts)) => {
            let mut joined = String::new();
            for part in parts {
                match part {
                    Part::Text { text } => joined.push_str(text),
                    Part::Other => {
                        return Err(unsupported(
                            format!("messages[{i}].content"),
                            "only text content parts are translated for Anthropic providers",
                        ));
                    }
                }
            }
            Ok(Cow::Owned(joined))
        }
        None => Ok(Cow::Borrowed("")),
    }
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Vec<Block<'a>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// Translates a whole Anthropic message into an OpenAI `chat.completion` body.
pub fn response(body: &[u8], created: u64) -> Result<(Bytes, Usage), serde_json::Error> {
    let message: Message<'_> = serde_json::from_slice(body)?;
    let text: Cow<'_, str> = match message.content.as_slice() {
        [only] if only.kind == "text" => only.text.clone().unwrap_or_default(),
        blocks => Cow::Owned(
            blocks
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect(),
        ),
    };
    let usage = Usage::new(message.usage.input_tokens, message.usage.output_tokens);
    let completion = Completion {
        id: &message.id,
        object: "chat.completion",
        created,
        model: &message.model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: &text,
            },
            logprobs: None,
            finish_reason: message.stop_reason.as_deref().map(finish_reason),
        }],
        usage,
    };
    Ok((Bytes::from(serde_json::to_vec(&completion)?), usage))
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow)]
    delta: Delta<'a>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageDelta<'a> {
    #[serde(borrow)]
    delta: StopDelta<'a>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct StopDelta<'a> {
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// Turns Anthropic stream events into OpenAI `chat.completion.chunk` events.
#[derive(Debug)]
pub struct StreamTranslator {
    include_usage: bool,
    created: u64,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":` once `message_start` was seen.
    prefix: Option<Vec<u8>>,
    input_tokens: u64,
    output_tokens: u64,
    finish_reason: Option<&'static str>,
    finished: bool,
}

impl StreamTranslator {
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self {
            include_usage,
            created,
            prefix: None,
            input_tokens: 0,
            output_tokens: 0,
            finish_reason: None,
            finished: false,
        }
    }

    /// `message_stop` was translated: the OpenAI stream is complete.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Output tokens reported so far.
    pub fn usage(&self) -> Usage {
        Usage::new(self.input_tokens, self.output_tokens)
    }

    /// Translates one event, appending zero or more OpenAI events to `out`.
    pub fn event(
        &mut self,
        name: &str,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        let malformed = |source| StreamError::Malformed {
            event: name.to_owned(),
            source,
        };
        match name {
            "message_start" => {
                let start: MessageStart<'_> = serde_json::from_slice(data).map_err(malformed)?;
                self.input_tokens = start.message.usage.input_tokens;
                self.output_tokens = start.message.usage.output_tokens;
                let mut prefix = Vec::with_capacity(128);
                prefix.extend_from_slice(b"data: {\"id\":");
                write_json(&mut prefix, &start.message.id);
                let _ = write!(
                    prefix,
                    ",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":",
                    self.created
                );
                write_json(&mut prefix, &start.message.model);
                prefix.extend_from_slice(b",\"choices\":");
                self.prefix = Some(prefix);
                self.chunk(out, br#"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]"#, None);
            }
            "content_block_delta" => {
                let delta: BlockDelta<'_> = serde_json::from_slice(data).map_err(malformed)?;
                if let ("text_delta", Some(text)) = (&*delta.delta.kind, delta.delta.text) {
                    let prefix = self.prefix(name)?;
                    out.put_slice(prefix);
                    out.put_slice(br#"[{"index":0,"delta":{"content":"#);
                    write_json(&mut (&mut *out).writer(), &text);
                    out.put_slice(b"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
                }
            }
            "message_delta" => {
                let delta: MessageDelta<'_> = serde_json::from_slice(data).map_err(malformed)?;
                if let Some(usage) = delta.usage {
                    self.output_tokens = usage.output_tokens;
                    if usage.input_tokens > 0 {
                        self.input_tokens = usage.input_tokens;
                    }
                }
                self.finish_reason = delta.delta.stop_reason.as_deref().map(finish_reason);
            }
            "message_stop" => {
                self.prefix(name)?;
                let reason = self.finish_reason.unwrap_or("stop");
                let mut choices = Vec::with_capacity(96);
                let _ = write!(
                    choices,
                    r#"[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{reason}"}}]"#
                );
                self.chunk(out, &choices, None);
                if self.include_usage {
                    let usage = self.usage();
                    self.chunk(out, b"[]", Some(usage));
                }
                out.put_slice(b"data: [DONE]\n\n");
                self.finished = true;
            }
            "error" => {
                return Err(StreamError::Upstream(anthropic_error(
                    StatusCode::BAD_GATEWAY,
                    data,
                )));
            }
            _ => {} // ping, content_block_start, content_block_stop, and future event types
        }
        Ok(())
    }

    fn prefix(&self, event: &str) -> Result<&[u8], StreamError> {
        self.prefix
            .as_deref()
            .ok_or_else(|| StreamError::NotStarted(event.to_owned()))
    }

    fn chunk(&self, out: &mut BytesMut, choices: &[u8], usage: Option<Usage>) {
        let Some(prefix) = &self.prefix else { return };
        out.put_slice(prefix);
        out.put_slice(choices);
        if let Some(usage) = usage {
            out.put_slice(b",\"usage\":");
            write_json(&mut (&mut *out).writer(), &usage);
        }
        out.put_slice(b"}\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ChatRequest;

    #[test]
    fn request_moves_system_and_maps_fields() {
        let raw = br#"{"model":"gpt","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":7,"stop":"x","stream":true,"temperature":0.5}"#;
        let chat = ChatRequest::parse(Bytes::from_static(raw)).unwrap();
        let out = request(&chat.body, "claude", 100).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"claude","max_tokens":7,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"system":"be brief","temperature":0.5,"stop_sequences":["x"],"stream":true}"#
        );
    }

    #[test]
    fn request_rejects_tool_messages_naming_the_field() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#;
        let chat = ChatRequest::parse(Bytes::from_static(raw)).unwrap();
        let err = request(&chat.body, "c", 1).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].role"));
    }

    #[test]
    fn response_maps_text_stop_reason_and_usage() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}"#;
        let (out, usage) = response(body, 42).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"msg_1","object":"chat.completion","created":42,"model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#
        );
        assert_eq!(usage.total_tokens, 8);
    }

    #[test]
    fn stream_translates_events_in_order() {
        let mut t = StreamTranslator::new(true, 7);
        let mut out = BytesMut::new();
        let events: [(&str, &str); 7] = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":4,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\""}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for (name, data) in events {
            t.event(name, data.as_bytes(), &mut out).unwrap();
        }
        let head = r#"data: {"id":"msg_1","object":"chat.completion.chunk","created":7,"model":"claude","choices":"#;
        let expected = format!(
            "{head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n\
             {head}[{{\"index\":0,\"delta\":{{\"content\":\"Hi \\\"there\\\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n\
             {head}[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n\
             {head}[],\"usage\":{{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}}}\n\n\
             data: [DONE]\n\n"
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        assert!(t.finished());
        for line in std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("data: {"))
        {
            serde_json::from_str::<serde_json::Value>(&line[6..]).unwrap();
        }
    }

    #[test]
    fn stream_error_event_becomes_an_api_error() {
        let mut t = StreamTranslator::new(false, 0);
        let err = t
            .event(
                "error",
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &mut BytesMut::new(),
            )
            .unwrap_err();
        match err {
            StreamError::Upstream(e) => {
                assert_eq!(e.kind, "overloaded_error");
                assert_eq!(e.message, "Overloaded");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
