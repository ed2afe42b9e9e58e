//! JSON Lines of OpenAI chat request bodies, one request a line, as logged by a gateway or an
//! application: `{"model": .., "messages": [..], "max_tokens": .., "temperature": ..}`.
//!
//! `messages[].content` is a string or an array of `{"type": "text", "text": ..}` parts
//! (joined with newlines); other part types (images, audio) are refused rather than dropped,
//! since the load would no longer be the recorded one. Roles are `system` (or `developer`),
//! `user` and `assistant`, and a row needs a user message. `max_completion_tokens` or else
//! `max_tokens` becomes the prompt's `max_tokens` ([`DEFAULT_MAX_TOKENS`] if neither is
//! there); `temperature` is kept. `model` and `stream` are set by the run, and every other
//! field (tools, `n`, ...) is ignored. Blank lines are skipped.

use serde::Deserialize;
use serde_json::Value;

use super::{Bad, DEFAULT_MAX_TOKENS, serde_why};
use crate::workload::{Message, Prompt, Role};

/// The fields of a request body that shape the load.
#[derive(Deserialize)]
struct Body {
    messages: Vec<RawMessage>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
}

#[derive(Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

pub(super) fn parse(text: &str) -> Result<Vec<Prompt>, Bad> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let bad = |why| Bad {
                line: index + 1,
                why,
            };
            let body: Body = serde_json::from_str(line).map_err(|e| bad(serde_why(&e)))?;
            prompt(body).map_err(bad)
        })
        .collect()
}

fn prompt(body: Body) -> Result<Prompt, String> {
    let messages = body
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, raw)| message(raw).map_err(|why| format!("messages[{index}]: {why}")))
        .collect::<Result<Vec<Message>, String>>()?;
    if !messages.iter().any(|m| m.role == Role::User) {
        return Err("no message with role `user`".to_owned());
    }
    let max_tokens = match body.max_completion_tokens.or(body.max_tokens) {
        Some(0) => return Err("max_tokens must be at least 1".to_owned()),
        Some(tokens) => tokens,
        None => DEFAULT_MAX_TOKENS,
    };
    Ok(Prompt {
        messages,
        max_tokens,
        temperature: body.temperature,
    })
}

fn message(raw: RawMessage) -> Result<Message, String> {
    let role = match raw.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(format!(
                "role `{other}` is not supported (system, developer, user or assistant)"
            ));
        }
    };
    let content = match raw.content {
        Value::String(text) => text,
        Value::Array(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| text_part(part).map_err(|why| format!("content[{index}]: {why}")))
            .collect::<Result<Vec<String>, String>>()?
            .join("\n"),
        _ => return Err("content must be a string or an array of text parts".to_owned()),
    };
    Ok(Message { role, content })
}

fn text_part(part: Value) -> Result<String, String> {
    let Value::Object(mut part) = part else {
        return Err("a content part must be an object".to_owned());
    };
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.remove("text") {
            Some(Value::String(text)) => Ok(text),
            _ => Err("a text part needs a string `text`".to_owned()),
        },
        Some(other) => Err(format!("part type `{other}` is not supported (text only)")),
        None => Err("a content part needs a `type`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(line: &str) -> String {
        parse(line).map(|_| ()).expect_err(line).why
    }

    #[test]
    fn reads_string_and_part_content_and_the_answer_length() {
        let rows = parse(concat!(
            r#"{"model":"x","stream":true,"messages":[{"role":"developer","content":"Be brief."},"#,
            r#"{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"#,
            r#""max_tokens":50,"max_completion_tokens":70,"temperature":0.2,"tools":[]}"#
        ))
        .expect("valid");
        assert_eq!(
            rows,
            vec![Prompt {
                messages: vec![
                    Message::new(Role::System, "Be brief."),
                    Message::new(Role::User, "a\nb"),
                ],
                max_tokens: 70,
                temperature: Some(0.2),
            }]
        );
    }

    #[test]
    fn says_what_is_wrong_with_a_row() {
        let user = r#"{"role":"user","content":"hi"}"#;
        let cases = [
            (
                r#"{"messages":[]}"#.to_owned(),
                "no message with role `user`",
            ),
            (
                format!(r#"{{"messages":[{user},{{"role":"tool","content":"x"}}]}}"#),
                "messages[1]: role `tool` is not supported (system, developer, user or assistant)",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#.to_owned(),
                "messages[0]: content[0]: part type `image_url` is not supported (text only)",
            ),
            (
                r#"{"messages":[{"role":"user"}]}"#.to_owned(),
                "messages[0]: content must be a string or an array of text parts",
            ),
            (
                format!(r#"{{"messages":[{user}],"max_tokens":0}}"#),
                "max_tokens must be at least 1",
            ),
            (
                r#"{"prompt":"hi"}"#.to_owned(),
                "missing field `messages` (column 15)",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(why(&line), expected, "{line}");
        }
        assert!(why("{\"messages\": [").contains("EOF while parsing"));
    }
}
