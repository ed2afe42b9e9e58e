//! OpenAI chat completions on the wire: `chat.completion` bodies and `chat.completion.chunk` streams.

use bytes::Bytes;

use crate::wire::{ApiError, Completion, Finish, Provider, Script, StreamEnd, json_string};

const FINGERPRINT: &str = "fp_mock";

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

fn usage(c: &Completion) -> String {
    let (p, n) = (c.prompt_tokens, c.completion_tokens());
    format!(
        r#"{{"prompt_tokens":{p},"completion_tokens":{n},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        p + n
    )
}

/// The non-streaming `chat.completion` body.
pub fn completion_body(c: &Completion) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{}","object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":{},"refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"{}"}}],"usage":{},"service_tier":"default","system_fingerprint":"{FINGERPRINT}"}}"#,
        c.id,
        c.created,
        json_string(&c.model),
        json_string(&c.text()),
        finish_reason(c.finish),
        usage(c),
    ))
}

/// A body that starts like a completion and breaks off mid-JSON.
pub fn malformed_body(c: &Completion) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{}","object":"chat.completion","choices":[{{"index":0,"message":{{"content":"#,
        c.id
    ))
}

/// The SSE stream: a role chunk, one chunk per token, the finish chunk, the usage chunk when asked
/// for, and `data: [DONE]`. The role chunk is its own piece (sent with the headers); each token is a
/// piece; the closing chunks ride with the last token.
pub fn stream_script(c: &Completion, include_usage: bool, end: StreamEnd) -> Script {
    let head = format!(
        r#"data: {{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"system_fingerprint":"{FINGERPRINT}","choices":"#,
        c.id,
        c.created,
        json_string(&c.model)
    );
    let tail = if include_usage {
        r#","usage":null}"#
    } else {
        "}"
    };
    let mut s = Script::default();
    // Written piecewise straight into the script's buffer: this runs once per token.
    let chunk = |s: &mut Script, delta: &[&str], finish: Option<Finish>| {
        s.push(&head);
        s.push(r#"[{"index":0,"delta":"#);
        for part in delta {
            s.push(part);
        }
        s.push(r#","logprobs":null,"finish_reason":"#);
        match finish {
            Some(f) => {
                s.push("\"");
                s.push(finish_reason(f));
                s.push("\"");
            }
            None => s.push("null"),
        }
        s.push("}]");
        s.push(tail);
        s.push("\n\n");
    };
    chunk(
        &mut s,
        &[r#"{"role":"assistant","content":"","refusal":null}"#],
        None,
    );
    s.cut();
    s.push_tokens(c, end, |s, token| match token {
        Some(token) => chunk(s, &[r#"{"content":""#, token, r#""}"#], None),
        None => s.push(&format!(
            "{head}[{{\"index\":0,\"delta\":{{\"content\":\n\n"
        )),
    });
    match end {
        StreamEnd::Complete | StreamEnd::Malformed => {
            chunk(&mut s, &["{}"], Some(c.finish));
            if include_usage {
                s.push(&format!("{}[],\"usage\":{}}}\n\n", head, usage(c)));
            }
            s.push("data: [DONE]\n\n");
        }
        StreamEnd::ErrorAfter(_) => {
            s.cut();
            let err = ApiError::for_status(Provider::OpenAi, 500).body();
            s.push("data: ");
            s.push(std::str::from_utf8(&err).unwrap_or_default());
            s.push("\n\n");
        }
        StreamEnd::CutAfter(_) => {}
    }
    s
}
