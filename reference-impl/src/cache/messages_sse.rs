//! Conversions between an Anthropic `message` body (what the cache stores for the Messages
//! front door) and the event stream a streaming Anthropic client expects: the counterpart of
//! [`super::sse`] for the other API.
//!
//! [`replay`] writes the events of an equivalent stream with the same writers a translated
//! stream uses: `message_start`; per content block `content_block_start`, its deltas
//! (`text_delta`, `input_json_delta` for tool use, `thinking_delta` and `signature_delta`) and
//! `content_block_stop`, with `ping` after the first start; `message_delta` with usage;
//! `message_stop`. [`MessageAssembler`] folds a live stream's events back into a message so a
//! streamed answer can be cached; it keeps text blocks only, so a streamed answer with tool use
//! or thinking is not stored (a whole one is, and replays with all its blocks).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::sse::SseError;
use crate::proxy::translate::AnthropicUsage;
use crate::proxy::translate::to_openai::{
    TEXT_BLOCK, block_delta, block_start, block_stop, message_end, message_start, ping, text_delta,
};

#[derive(Debug, Default, Deserialize, Serialize)]
struct Message<B> {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default = "message_type")]
    kind: String,
    #[serde(default = "assistant")]
    role: String,
    #[serde(default)]
    model: String,
    #[serde(default = "Vec::new")]
    content: Vec<B>,
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

fn to_vec(value: &Value) -> Result<Vec<u8>, SseError> {
    serde_json::to_vec(value).map_err(shape)
}

/// Renders a cached `message` body as the events of an equivalent stream.
pub fn replay(message: &[u8]) -> Result<Vec<Bytes>, SseError> {
    let message: Message<Value> = serde_json::from_slice(message).map_err(shape)?;
    let mut start = BytesMut::with_capacity(256);
    message_start(
        &mut start,
        &message.id,
        &message.model,
        message.usage.input_tokens,
    );
    let mut events = vec![start.freeze()];
    for (index, block) in message.content.iter().enumerate() {
        let mut out = BytesMut::with_capacity(256);
        write_block(&mut out, index, block)?;
        events.push(out.freeze());
    }
    let mut end = BytesMut::with_capacity(256);
    if message.content.is_empty() {
        ping(&mut end);
    }
    message_end(&mut end, message.stop_reason.as_deref(), message.usage);
    events.push(end.freeze());
    Ok(events)
}

/// One content block as a start (the first one followed by `ping`), the deltas that rebuild
/// it, and a stop. Blocks without a delta form (redacted thinking, server tool results) start
/// whole.
fn write_block(out: &mut BytesMut, index: usize, block: &Value) -> Result<(), SseError> {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let field = |name: &str| block.get(name).cloned().unwrap_or(Value::Null);
    let block_start = |out: &mut BytesMut, index: usize, opening: &[u8]| {
        block_start(out, index, opening);
        if index == 0 {
            ping(out);
        }
    };
    match kind {
        "text" => {
            block_start(out, index, TEXT_BLOCK);
            text_delta(
                out,
                index,
                block.get("text").and_then(Value::as_str).unwrap_or(""),
            );
        }
        "tool_use" | "server_tool_use" => {
            let opening =
                json!({"type": kind, "id": field("id"), "name": field("name"), "input": {}});
            block_start(out, index, &to_vec(&opening)?);
            let input = serde_json::to_string(&field("input")).map_err(shape)?;
            let delta = json!({"type": "input_json_delta", "partial_json": input});
            block_delta(out, index, &to_vec(&delta)?);
        }
        "thinking" => {
            block_start(out, index, b"{\"type\":\"thinking\",\"thinking\":\"\"}");
            let delta = json!({"type": "thinking_delta", "thinking": field("thinking")});
            block_delta(out, index, &to_vec(&delta)?);
            if let Some(signature) = block.get("signature") {
                let delta = json!({"type": "signature_delta", "signature": signature});
                block_delta(out, index, &to_vec(&delta)?);
            }
        }
        "" => return Err(shape("a content block without a type")),
        _ => block_start(out, index, &to_vec(block)?),
    }
    block_stop(out, index);
    Ok(())
}

/// One event's data, by its `type` (which Anthropic repeats inside every event's data).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: Message<TextBlock>,
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
    message: Option<Message<TextBlock>>,
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
        assert!(replay(br#"{"content":[{"text":"untyped"}]}"#).is_err());
    }

    #[test]
    fn tool_use_and_thinking_blocks_replay_as_their_deltas() {
        let message = r#"{"id":"m","model":"c","content":[
            {"type":"thinking","thinking":"hmm","signature":"sig"},
            {"type":"text","text":"Let me look."},
            {"type":"tool_use","id":"t1","name":"get","input":{"q":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":9}}"#;
        let events: Vec<serde_json::Value> = data(&replay(message.as_bytes()).expect("replay"))
            .iter()
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        let starts: Vec<(u64, &str)> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| {
                let index = e["index"].as_u64().expect("index");
                (index, e["content_block"]["type"].as_str().expect("type"))
            })
            .collect();
        assert_eq!(starts, [(0, "thinking"), (1, "text"), (2, "tool_use")]);
        let deltas: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| &e["delta"])
            .collect();
        assert_eq!(deltas[0]["thinking"], "hmm");
        assert_eq!(deltas[1]["signature"], "sig");
        assert_eq!(deltas[2]["text"], "Let me look.");
        assert_eq!(deltas[3]["partial_json"], r#"{"q":1}"#);
        let end = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .expect("end");
        assert_eq!(end["delta"]["stop_reason"], "tool_use");
    }
}
