//! Anthropic messages on the wire: `message` bodies and the typed event stream.

use bytes::Bytes;

use crate::wire::{ApiError, Completion, Finish, Provider, Script, StreamEnd, json_string};

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
    }
}

/// The non-streaming `message` body.
pub fn message_body(c: &Completion) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{}","type":"message","role":"assistant","model":{},"content":[{{"type":"text","text":{}}}],"stop_reason":"{}","stop_sequence":null,"usage":{{"input_tokens":{},"output_tokens":{}}}}}"#,
        c.id,
        json_string(&c.model),
        json_string(&c.text()),
        stop_reason(c.finish),
        c.prompt_tokens,
        c.completion_tokens(),
    ))
}

/// A body that starts like a message and breaks off mid-JSON.
pub fn malformed_body(c: &Completion) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{}","type":"message","content":[{{"type":"text","text":"#,
        c.id
    ))
}

fn event(s: &mut Script, name: &str, data: &str) {
    s.push("event: ");
    s.push(name);
    s.push("\ndata: ");
    s.push(data);
    s.push("\n\n");
}

/// The SSE stream: `message_start`, `content_block_start` and `ping` as the first piece (sent with
/// the headers), a `content_block_delta` per token, then `content_block_stop`, `message_delta` with
/// usage and `message_stop` riding with the last token. Errors arrive as `event: error`.
pub fn stream_script(c: &Completion, end: StreamEnd) -> Script {
    let mut s = Script::default();
    event(
        &mut s,
        "message_start",
        &format!(
            r#"{{"type":"message_start","message":{{"id":"{}","type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{},"output_tokens":1}}}}}}"#,
            c.id,
            json_string(&c.model),
            c.prompt_tokens
        ),
    );
    event(
        &mut s,
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    event(&mut s, "ping", r#"{"type": "ping"}"#);
    s.cut();
    // Written piecewise straight into the script's buffer: this runs once per token.
    s.push_tokens(c, end, |s, token| {
        s.push("event: content_block_delta\ndata: ");
        s.push(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#);
        if let Some(token) = token {
            s.push("\"");
            s.push(token);
            s.push("\"}}");
        }
        s.push("\n\n");
    });
    match end {
        StreamEnd::Complete | StreamEnd::Malformed => {
            event(
                &mut s,
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            );
            event(
                &mut s,
                "message_delta",
                &format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"{}","stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
                    stop_reason(c.finish),
                    c.completion_tokens()
                ),
            );
            event(&mut s, "message_stop", r#"{"type":"message_stop"}"#);
        }
        StreamEnd::ErrorAfter(_) => {
            s.cut();
            let err = ApiError::for_status(Provider::Anthropic, 529).body();
            event(
                &mut s,
                "error",
                std::str::from_utf8(&err).unwrap_or_default(),
            );
        }
        StreamEnd::CutAfter(_) => {}
    }
    s
}
