//! Conversions between an Anthropic `message` body (what the cache stores for the Messages
//! front door) and the event stream a streaming Anthropic client expects: the counterpart of
//! [`super::sse`] for the other API.
//!
//! [`replay`] writes the same events a translated stream does (`message_start`,
//! `content_block_start`, `ping`, one `content_block_delta` per text block, `content_block_stop`,
//! `message_delta` with usage, `message_stop`); [`MessageAssembler`] folds a live stream's events
//! back into a message so a streamed answer can be cached. Only text blocks are kept: an answer
//! with tool use or thinking blocks is not assembled (and so not stored).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::sse::SseError;
use crate::proxy::translate::AnthropicUsage;
use crate::proxy::translate::to_openai::{message_end, message_start, text_delta};

#[derive(Debug, Default, Deserialize, Serialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default = "message_type")]
    kind: String,
    #[serde(default = "assistant")]
    role: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<TextBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant() -> String {
    "assistant".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
struct TextBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

fn shape(error: impl std::fmt::Display) -> SseError {
    SseError::Message(error.to_string())
}

/// Renders a cached `message` body as the events of an equivalent stream.
pub fn replay(message: &[u8]) -> Result<Vec<Bytes>, SseError> {
    let message: Message = serde_json::from_slice(message).map_err(shape)?;
    if message.content.iter().any(|block| block.kind != "text") {
        return Err(shape("only text blocks are replayed"));
    }
    let mut start = BytesMut::with_capacity(512);
    message_start(
        &mut start,
        &message.id,
        &message.model,
        message.usage.input_tokens,
    );
    let mut events = vec![start.freeze()];
    for block in &message.content {
        let mut delta = BytesMut::with_capacity(block.text.len() + 128);
        text_delta(&mut delta, &block.text);
        events.push(delta.freeze());
    }
    let mut end = BytesMut::with_capacity(384);
    message_end(&mut end, message.stop_reason.as_deref(), message.usage);
    events.push(end.freeze());
    Ok(events)
}

/// One event's data, by its `type` (which Anthropic repeats inside every event's data).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: usize,
        content_block: TextBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    MessageDelta {
        delta: StopDelta,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    Error {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct StopDelta {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

/// Folds the events of one Anthropic stream into a `message` body.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    message: Option<Message>,
}

impl MessageAssembler {
    /// Adds one event's `data:` payload.
    pub fn push(&mut self, data: &str) -> Result<(), SseError> {
        let event: Event = serde_json::from_str(data).map_err(shape)?;
        if let Event::MessageStart { message } = event {
            self.message = Some(message);
            return Ok(());
        }
        let message = self
            .message
            .as_mut()
            .ok_or_else(|| shape("an event before `message_start`"))?;
        match event {
            Event::ContentBlockStart {
                index,
                content_block,
            } => {
                if content_block.kind != "text" || index != message.content.len() {
                    return Err(shape("only text blocks, in order, are assembled"));
                }
                message.content.push(content_block);
            }
            Event::ContentBlockDelta { index, delta } => {
                let block = message
                    .content
                    .get_mut(index)
                    .filter(|_| delta.kind == "text_delta")
                    .ok_or_else(|| shape("a delta for no text block"))?;
                block.text.push_str(&delta.text);
            }
            Event::MessageDelta { delta, usage } => {
                message.stop_reason = delta.stop_reason;
                message.stop_sequence = delta.stop_sequence;
                if let Some(usage) = usage {
                    message.usage.output_tokens = usage.output_tokens;
                    if usage.input_tokens > 0 {
                        message.usage.input_tokens = usage.input_tokens;
                    }
                }
            }
            Event::Error {} => return Err(shape("the stream ended with an error")),
            Event::MessageStart { .. } | Event::Other => {}
        }
        Ok(())
    }

    /// The assembled `message` body.
    pub fn finish(self) -> Result<Bytes, SseError> {
        let message = self
            .message
            .ok_or_else(|| shape("the stream had no `message_start`"))?;
        Ok(serde_json::to_vec(&message).map_err(shape)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}"#;

    fn data(events: &[Bytes]) -> Vec<String> {
        events
            .iter()
            .flat_map(|e| {
                std::str::from_utf8(e)
                    .expect("utf8")
                    .split("\n\n")
                    .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn replay_is_the_anthropic_event_sequence() {
        let events = replay(MESSAGE.as_bytes()).expect("replay");
        let types: Vec<String> = data(&events)
            .iter()
            .map(|d| {
                serde_json::from_str::<serde_json::Value>(d).expect("json")["type"]
                    .as_str()
                    .expect("type")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
    }

    #[test]
    fn assembling_a_replay_gives_back_the_message() {
        let mut assembler = MessageAssembler::default();
        for payload in data(&replay(MESSAGE.as_bytes()).expect("replay")) {
            assembler.push(&payload).expect("push");
        }
        let assembled: serde_json::Value =
            serde_json::from_slice(&assembler.finish().expect("finish")).expect("json");
        let original: serde_json::Value = serde_json::from_str(MESSAGE).expect("json");
        assert_eq!(assembled, original);
    }

    #[test]
    fn tool_use_and_garbage_are_errors_not_panics() {
        let mut assembler = MessageAssembler::default();
        assert!(assembler.push(r#"{"type":"ping"}"#).is_err());
        assembler
            .push(r#"{"type":"message_start","message":{"id":"m","model":"c","content":[]}}"#)
            .expect("start");
        assert!(
            assembler
                .push(r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#)
                .is_err()
        );
        assert!(assembler.push("{").is_err());
        assert!(replay(b"not json").is_err());
        assert!(replay(br#"{"content":[{"type":"tool_use"}]}"#).is_err());
    }
}
