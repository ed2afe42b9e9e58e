//! The OpenAI chat completion request as the gateway understands it.
//!
//! Only the fields the gateway acts on (routing, streaming, translation) are typed; unknown
//! fields are accepted and, for OpenAI-compatible upstreams, forwarded untouched because the
//! original body bytes are sent, not this struct.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

/// A parsed and validated `POST /v1/chat/completions` body, with the raw bytes it came from.
#[derive(Debug)]
pub struct ChatRequest {
    pub body: ChatBody,
    /// The body as received, forwarded as is to OpenAI-compatible upstreams.
    pub raw: Bytes,
}

/// The typed fields of a chat completion request.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Absent or null for assistant messages that only carry tool calls.
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a plain string or an array of typed parts.
#[derive(Debug)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of content parts",
            Content::Text,
            Content::Parts,
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    /// Images, audio, files: valid for OpenAI upstreams, not translated for Anthropic.
    #[serde(other)]
    Other,
}

/// `stop`: one sequence or several.
#[derive(Debug)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of strings",
            Stop::One,
            Stop::Many,
        )
    }
}

/// Reads a field that is either a JSON string or an array, as `text` or `list` of it.
///
/// What `#[serde(untagged)]` would do, without its cost on every request: an untagged enum
/// first copies the whole value into a buffer of its own, then tries each variant against the
/// copy. Here the value's own type picks the variant, and a wrong type is an error that says
/// what was expected.
pub(crate) fn string_or_list<'de, D, T, R>(
    deserializer: D,
    expecting: &'static str,
    text: fn(String) -> R,
    list: fn(Vec<T>) -> R,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct StringOrList<T, R> {
        expecting: &'static str,
        text: fn(String) -> R,
        list: fn(Vec<T>) -> R,
    }

    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for StringOrList<T, R> {
        type Value = R;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<R, E> {
            Ok((self.text)(value.to_owned()))
        }

        fn visit_string<E: de::Error>(self, value: String) -> Result<R, E> {
            Ok((self.text)(value))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(self.list)
        }
    }

    deserializer.deserialize_any(StringOrList {
        expecting,
        text,
        list,
    })
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

impl ChatRequest {
    /// Parses and validates a body; errors name the offending field as OpenAI's `param`.
    pub fn parse(raw: Bytes) -> Result<Self, ApiError> {
        check_object(&raw)?;
        let body: ChatBody = parse_body(&raw)?;
        check_model(&body.model)?;
        if body.messages.is_empty() {
            return Err(
                ApiError::invalid_request("`messages` must contain at least one message")
                    .with_param("messages"),
            );
        }
        Ok(Self { body, raw })
    }

    pub fn include_usage(&self) -> bool {
        self.body
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// The checks before parsing a request body of either API: a JSON object, not nested deeper
/// than [`MAX_DEPTH`].
pub(crate) fn check_object(raw: &[u8]) -> Result<(), ApiError> {
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "Invalid JSON body: the request body must be a JSON object",
        ));
    }
    if too_deep(raw) {
        return Err(ApiError::invalid_request(format!(
            "Invalid JSON body: arrays and objects are nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// `model` must name something: not empty, and without control characters.
pub(crate) fn check_model(model: &str) -> Result<(), ApiError> {
    if model.is_empty() {
        return Err(ApiError::invalid_request("`model` must not be empty").with_param("model"));
    }
    if model.chars().any(char::is_control) {
        // The name is echoed in errors and logs and may be sent upstream: refuse what
        // could split a header or a log line rather than escape it everywhere.
        return Err(
            ApiError::invalid_request("`model` must not contain control characters")
                .with_param("model"),
        );
    }
    Ok(())
}

/// A request body of either API as `T`.
///
/// Plain serde on the hot path, over the body as text: checked as UTF-8 once, which costs less
/// than serde checking each key and string of the bytes on its own. Only a failed parse pays
/// for the path tracking that names the offending field ([`explain`]).
pub(crate) fn parse_body<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| explain::<T>(raw))
}

/// The error for a body that failed to parse as `T`, with the JSON path of the bad field as
/// `param`.
fn explain<T: DeserializeOwned>(raw: &[u8]) -> ApiError {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let e = match result.map(|_| de.end()) {
        Ok(Ok(())) => return ApiError::invalid_request("Invalid request body"),
        Ok(Err(e)) => return ApiError::invalid_request(format!("Invalid JSON body: {e}")),
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::invalid_request(format!("Invalid JSON body: {inner}"));
    }
    let err = ApiError::invalid_request(format!("Invalid request body: {inner}"));
    if path == "." {
        err
    } else {
        err.with_param(path)
    }
}

/// Deepest nesting of arrays and objects accepted: serde_json's own limit for typed fields.
pub const MAX_DEPTH: usize = 128;

/// Whether arrays and objects in `raw` nest deeper than [`MAX_DEPTH`] outside strings.
///
/// serde_json limits the depth of what it deserializes, but skips unknown fields without a
/// limit, so a deep unknown field would otherwise reach the upstream and every later parser
/// (cache key, translation). A body with few brackets cannot be deep: `memchr2` finds them a
/// vector at a time and stops at the first past `MAX_DEPTH` (a byte-by-byte count cost about
/// twelve instructions a byte, more than parsing a short body), and only bodies with that many
/// brackets pay for the exact scan.
fn too_deep(raw: &[u8]) -> bool {
    if memchr::memchr2_iter(b'[', b'{', raw)
        .nth(MAX_DEPTH)
        .is_none()
    {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(Bytes::copy_from_slice(json.as_bytes()))
    }

    #[test]
    fn accepts_a_minimal_request_and_unknown_fields() {
        let r =
            parse(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}"#).unwrap();
        assert_eq!(r.body.model, "m");
        assert!(!r.body.stream);
    }

    #[test]
    fn content_and_stop_are_a_string_or_an_array() {
        let r = parse(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]},
                {"role":"assistant","content":null}],"stop":"x"}"#,
        )
        .unwrap();
        let contents: Vec<_> = r.body.messages.iter().map(|m| &m.content).collect();
        assert!(matches!(contents[0], Some(Content::Text(t)) if t == "hi"));
        assert!(matches!(
            contents[1],
            Some(Content::Parts(parts))
                if matches!(parts.as_slice(), [Part::Text { text }, Part::Other] if text == "a")
        ));
        assert!(contents[2].is_none());
        assert_eq!(r.body.stop.map(Stop::into_vec), Some(vec!["x".to_owned()]));
        let r =
            parse(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"]}"#)
                .unwrap();
        assert_eq!(
            r.body.stop.map(Stop::into_vec),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_a_json_error() {
        let mut raw = br#"{"model":"m","messages":[{"role":"user","content":"h"#.to_vec();
        raw.extend_from_slice(b"\xff\"}]}");
        let e = ChatRequest::parse(Bytes::from(raw)).unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("Invalid JSON body:"), "{e}");
        assert!(e.message.contains("unicode"), "{e}");
    }

    #[test]
    fn names_the_missing_or_wrong_field() {
        let e = parse(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap_err();
        assert!(e.message.contains("missing field `model`"), "{e}");
        let e = parse(r#"{"model":"m","messages":[{"role":"user","content":1}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        assert!(
            e.message
                .contains("expected a string or an array of content parts"),
            "{e}"
        );
        let e = parse(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
        let e = parse(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stop[0]"));
        let e = parse(r#"{"model":"m","messages":[],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stream"));
        let e = parse(r#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
    }

    #[test]
    fn rejects_invalid_json_and_trailing_garbage() {
        assert!(parse("{").unwrap_err().message.starts_with("Invalid JSON"));
        let e = parse(r#"{"model":"m","messages":[{"role":"user","content":"x"}]} x"#).unwrap_err();
        assert!(e.message.starts_with("Invalid JSON"), "{e}");
    }

    #[test]
    fn nesting_depth_counts_brackets_outside_strings_only() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!too_deep(nest(MAX_DEPTH).as_bytes()));
        assert!(too_deep(nest(MAX_DEPTH + 1).as_bytes()));
        // Many brackets side by side are shallow.
        assert!(!too_deep("[]".repeat(10 * MAX_DEPTH).as_bytes()));
        // Brackets inside strings, escaped quotes included, do not count.
        let quoted = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(2 * MAX_DEPTH));
        assert!(!too_deep(quoted.as_bytes()));
        let e = parse(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{}}}"#,
            nest(10_000)
        ))
        .unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
    }

    #[test]
    fn model_names_with_control_characters_are_refused() {
        for model in [r"a\r\nb", r"a\u0000", r"a\u001b", r"a\u007f", r"a\u0085"] {
            let e = parse(&format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"x"}}]}}"#
            ))
            .unwrap_err();
            assert_eq!(e.param.as_deref(), Some("model"), "{model}");
        }
        assert!(
            parse(r#"{"model":"gpt-4o:mini/ünï","messages":[{"role":"user","content":"x"}]}"#)
                .is_ok()
        );
    }
}
