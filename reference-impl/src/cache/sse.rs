//! Conversions between an OpenAI `chat.completion` body (what the cache stores) and the
//! `chat.completion.chunk` SSE stream a streaming client expects.
//!
//! [`replay`] turns a cached completion into a well-formed stream: a role chunk, one content
//! chunk per choice, a finish chunk, the usage chunk when the client asked for
//! `stream_options.include_usage`, and `data: [DONE]`. [`CompletionAssembler`] goes the other
//! way, folding the chunks of a live stream into a completion so a streamed answer can be cached.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

/// The stream terminator.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Why a body could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("not a chat completion: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a chat completion: {0}")]
    Shape(&'static str),
    #[error("not an Anthropic message: {0}")]
    Message(String),
}

/// Renders a cached `chat.completion` body as the SSE events of an equivalent stream.
pub fn replay(completion: &[u8], include_usage: bool) -> Result<Vec<Bytes>, SseError> {
    let completion: Value = serde_json::from_slice(completion)?;
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .ok_or(SseError::Shape("missing choices"))?;
    let mut header = Map::new();
    for field in ["id", "created", "model", "system_fingerprint"] {
        if let Some(value) = completion.get(field) {
            header.insert(field.to_owned(), value.clone());
        }
    }
    header.insert("object".to_owned(), json!("chat.completion.chunk"));
    let chunk = |choices: Value| {
        let mut chunk = header.clone();
        chunk.insert("choices".to_owned(), choices);
        chunk
    };

    let mut events = Vec::with_capacity(3 * choices.len() + 2);
    for (position, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(position));
        let message = choice.get("message").and_then(Value::as_object);
        let role = message
            .and_then(|m| m.get("role"))
            .cloned()
            .unwrap_or(json!("assistant"));
        events.push(event(&chunk(json!([
            {"index": index, "delta": {"role": role, "content": ""}, "finish_reason": null}
        ])))?);
        let mut delta = Map::new();
        for (field, value) in message.into_iter().flatten() {
            match field.as_str() {
                "role" => {}
                "tool_calls" => {
                    delta.insert(field.clone(), indexed_tool_calls(value));
                }
                _ if !value.is_null() => {
                    delta.insert(field.clone(), value.clone());
                }
                _ => {}
            }
        }
        if !delta.is_empty() {
            events.push(event(&chunk(json!([
                {"index": index, "delta": delta, "finish_reason": null}
            ])))?);
        }
        let finish_reason = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        events.push(event(&chunk(json!([
            {"index": index, "delta": {}, "finish_reason": finish_reason}
        ])))?);
    }
    if include_usage && let Some(usage) = completion.get("usage") {
        let mut last = chunk(json!([]));
        last.insert("usage".to_owned(), usage.clone());
        events.push(event(&last)?);
    }
    events.push(Bytes::from_static(DONE));
    Ok(events)
}

/// Stream deltas carry an `index` on each tool call; completions do not.
fn indexed_tool_calls(calls: &Value) -> Value {
    let Some(calls) = calls.as_array() else {
        return calls.clone();
    };
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            let mut call = call.clone();
            if let Some(object) = call.as_object_mut() {
                object.insert("index".to_owned(), json!(index));
            }
            call
        })
        .collect()
}

/// One `data: {json}\n\n` event.
pub fn event(payload: &Map<String, Value>) -> Result<Bytes, SseError> {
    let mut buffer = BytesMut::with_capacity(256).writer();
    buffer.get_mut().put_slice(b"data: ");
    serde_json::to_writer(&mut buffer, payload)?;
    buffer.get_mut().put_slice(b"\n\n");
    Ok(buffer.into_inner().freeze())
}

/// Folds the `chat.completion.chunk` payloads of one stream into a `chat.completion` body.
#[derive(Debug, Default)]
pub struct CompletionAssembler {
    header: Map<String, Value>,
    choices: Vec<AssembledChoice>,
    usage: Option<Value>,
}

#[derive(Debug, Default)]
struct AssembledChoice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Option<Value>,
}

impl CompletionAssembler {
    /// Adds one event's `data:` payload (`[DONE]` is ignored).
    pub fn push(&mut self, data: &str) -> Result<(), SseError> {
        if data.trim() == "[DONE]" {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)?;
        let chunk = chunk
            .as_object()
            .ok_or(SseError::Shape("chunk is not an object"))?;
        for field in ["id", "created", "model", "system_fingerprint"] {
            if let Some(value) = chunk.get(field) {
                self.header.entry(field).or_insert_with(|| value.clone());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| !usage.is_null()) {
            self.usage = Some(usage.clone());
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let index = usize::try_from(index).map_err(|_| SseError::Shape("choice index"))?;
            if index >= self.choices.len() {
                self.choices
                    .resize_with(index + 1, AssembledChoice::default);
            }
            let target = &mut self.choices[index];
            if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                target.finish_reason = Some(reason.clone());
            }
            if let Some(delta) = choice.get("delta") {
                target.apply(delta);
            }
        }
        Ok(())
    }

    /// The assembled `chat.completion` body.
    pub fn finish(self) -> Result<Bytes, SseError> {
        let mut completion = self.header;
        completion.insert("object".to_owned(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(index, choice)| choice.into_json(index))
            .collect();
        completion.insert("choices".to_owned(), Value::Array(choices));
        if let Some(usage) = self.usage {
            completion.insert("usage".to_owned(), usage);
        }
        Ok(serde_json::to_vec(&completion)?.into())
    }
}

impl AssembledChoice {
    fn apply(&mut self, delta: &Value) {
        if let Some(role) = delta.get("role").filter(|r| !r.is_null()) {
            self.role = Some(role.clone());
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.content.get_or_insert_default().push_str(text);
        }
        if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
            self.refusal.get_or_insert_default().push_str(text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.apply_tool_call(call);
        }
    }

    /// Tool calls arrive as fragments by index: the first carries id, type and name, later ones
    /// append to `function.arguments`.
    fn apply_tool_call(&mut self, fragment: &Value) {
        let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if index >= self.tool_calls.len() {
            self.tool_calls.resize_with(index + 1, Map::new);
        }
        let call = &mut self.tool_calls[index];
        for field in ["id", "type"] {
            if let Some(value) = fragment.get(field) {
                call.insert(field.to_owned(), value.clone());
            }
        }
        let Some(function) = fragment.get("function") else {
            return;
        };
        let target = call
            .entry("function")
            .or_insert_with(|| json!({"name": "", "arguments": ""}));
        for field in ["name", "arguments"] {
            if let Some(piece) = function.get(field).and_then(Value::as_str)
                && let Some(Value::String(existing)) = target.get_mut(field)
            {
                existing.push_str(piece);
            }
        }
    }

    fn into_json(self, index: usize) -> Value {
        let mut message = Map::new();
        message.insert("role".to_owned(), self.role.unwrap_or(json!("assistant")));
        message.insert(
            "content".to_owned(),
            self.content.map_or(Value::Null, Value::String),
        );
        if let Some(refusal) = self.refusal {
            message.insert("refusal".to_owned(), Value::String(refusal));
        }
        if !self.tool_calls.is_empty() {
            let calls = self.tool_calls.into_iter().map(Value::Object).collect();
            message.insert("tool_calls".to_owned(), Value::Array(calls));
        }
        json!({
            "index": index,
            "message": message,
            "finish_reason": self.finish_reason.unwrap_or(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

    fn data(event: &Bytes) -> &str {
        std::str::from_utf8(event)
            .expect("utf8")
            .strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one data event")
    }

    #[test]
    fn replay_is_a_well_formed_stream() {
        let events = replay(COMPLETION.as_bytes(), true).expect("replay");
        assert_eq!(events.len(), 5);
        assert_eq!(events.last().map(|e| &e[..]), Some(DONE));
        let chunks: Vec<Value> = events[..4]
            .iter()
            .map(|e| serde_json::from_str(data(e)).expect("chunk json"))
            .collect();
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "chatcmpl-1");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello there");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["choices"], json!([]));
        assert_eq!(chunks[3]["usage"]["total_tokens"], 5);

        let without_usage = replay(COMPLETION.as_bytes(), false).expect("replay");
        assert_eq!(without_usage.len(), 4);
    }

    #[test]
    fn assembling_a_replay_gives_back_the_completion() {
        let mut assembler = CompletionAssembler::default();
        for event in replay(COMPLETION.as_bytes(), true).expect("replay") {
            assembler.push(data(&event)).expect("push");
        }
        let assembled: Value =
            serde_json::from_slice(&assembler.finish().expect("finish")).expect("json");
        let original: Value = serde_json::from_str(COMPLETION).expect("json");
        assert_eq!(assembled, original);
    }

    #[test]
    fn tool_call_fragments_are_joined() {
        let mut assembler = CompletionAssembler::default();
        let chunks = [
            r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}"#,
        ];
        for chunk in chunks {
            assembler.push(chunk).expect("push");
        }
        let completion: Value =
            serde_json::from_slice(&assembler.finish().expect("finish")).expect("json");
        let call = &completion["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["function"]["name"], "get");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(replay(b"not json", false).is_err());
        assert!(replay(b"{\"choices\":7}", false).is_err());
        assert!(CompletionAssembler::default().push("{").is_err());
    }
}
