//! Parsing of incoming chat requests into what the mock needs to answer them.
//!
//! Validation mirrors the real APIs closely enough that a gateway's error handling can be tested
//! against it: the same status, error type, `param` and `code` for the common mistakes.

use serde_json::{Map, Value};

use crate::wire::{ApiError, Provider};

/// What the mock needs from a chat request, for either provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub provider: Provider,
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`; Anthropic streams always carry usage.
    pub include_usage: bool,
    /// `max_tokens` (or OpenAI's `max_completion_tokens`).
    pub max_tokens: Option<u64>,
    /// Estimated from the prompt's length: about four characters a token, as tokenizers average on English.
    pub prompt_tokens: u64,
    /// FNV-1a of the raw body: the same request always yields the same id and text.
    pub fingerprint: u64,
}

impl ChatRequest {
    /// Parses a chat request in `provider`'s format.
    pub fn parse(provider: Provider, body: &[u8]) -> Result<Self, ApiError> {
        match provider {
            Provider::OpenAi => Self::openai(body),
            Provider::Anthropic => Self::anthropic(body),
        }
    }

    /// Parses an OpenAI `POST /v1/chat/completions` body.
    pub fn openai(body: &[u8]) -> Result<Self, ApiError> {
        let obj = parse_object(body, Provider::OpenAi)?;
        let model = match obj.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_) | Value::Null) | None => {
                return Err(ApiError::invalid_request(
                    Provider::OpenAi,
                    "you must provide a model parameter",
                    None,
                    None,
                ));
            }
            Some(other) => return Err(wrong_type(Provider::OpenAi, "model", "a string", other)),
        };
        let messages = match obj.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => {
                return Err(ApiError::invalid_request(
                    Provider::OpenAi,
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                    Some("messages"),
                    Some("empty_array"),
                ));
            }
            None | Some(Value::Null) => return Err(missing(Provider::OpenAi, "messages")),
            Some(other) => return Err(wrong_type(Provider::OpenAi, "messages", "an array", other)),
        };
        let stream = optional_bool(&obj, "stream", Provider::OpenAi)?;
        let include_usage = match obj.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => optional_bool(o, "include_usage", Provider::OpenAi)?,
            Some(other) => {
                return Err(wrong_type(
                    Provider::OpenAi,
                    "stream_options",
                    "an object",
                    other,
                ));
            }
        };
        let max_tokens = match optional_count(&obj, "max_completion_tokens", Provider::OpenAi)? {
            Some(n) => Some(n),
            None => optional_count(&obj, "max_tokens", Provider::OpenAi)?,
        };
        Ok(Self {
            provider: Provider::OpenAi,
            model,
            stream,
            include_usage,
            max_tokens,
            prompt_tokens: estimate_tokens(messages),
            fingerprint: fnv1a(body),
        })
    }

    /// Parses an Anthropic `POST /v1/messages` body.
    pub fn anthropic(body: &[u8]) -> Result<Self, ApiError> {
        let p = Provider::Anthropic;
        let obj = parse_object(body, p)?;
        let model = match obj.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            None | Some(Value::Null) => return Err(missing(p, "model")),
            Some(other) => return Err(wrong_type(p, "model", "a string", other)),
        };
        let messages = match obj.get("messages") {
            Some(Value::Array(m)) => m,
            None | Some(Value::Null) => return Err(missing(p, "messages")),
            Some(other) => return Err(wrong_type(p, "messages", "an array", other)),
        };
        let max_tokens =
            optional_count(&obj, "max_tokens", p)?.ok_or_else(|| missing(p, "max_tokens"))?;
        let system = obj
            .get("system")
            .map_or(0, |s| estimate_tokens(std::slice::from_ref(s)));
        Ok(Self {
            provider: p,
            model,
            stream: optional_bool(&obj, "stream", p)?,
            include_usage: true,
            max_tokens: Some(max_tokens),
            prompt_tokens: estimate_tokens(messages) + system,
            fingerprint: fnv1a(body),
        })
    }
}

fn parse_object(body: &[u8], provider: Provider) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(ApiError::invalid_request(
            provider,
            "The request body must be a JSON object.",
            None,
            None,
        )),
        Err(_) => Err(ApiError::invalid_json(provider)),
    }
}

fn missing(provider: Provider, field: &'static str) -> ApiError {
    match provider {
        Provider::OpenAi => ApiError::invalid_request(
            provider,
            format!("Missing required parameter: '{field}'."),
            Some(field),
            Some("missing_required_parameter"),
        ),
        Provider::Anthropic => {
            ApiError::invalid_request(provider, format!("{field}: Field required"), None, None)
        }
    }
}

fn wrong_type(provider: Provider, field: &'static str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    match provider {
        Provider::OpenAi => ApiError::invalid_request(
            provider,
            format!("Invalid type for '{field}': expected {expected}, but got {got} instead."),
            Some(field),
            Some("invalid_type"),
        ),
        Provider::Anthropic => ApiError::invalid_request(
            provider,
            format!("{field}: Input should be {expected}, not {got}"),
            None,
            None,
        ),
    }
}

fn optional_bool(
    obj: &Map<String, Value>,
    field: &'static str,
    provider: Provider,
) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong_type(provider, field, "a boolean", other)),
    }
}

fn optional_count(
    obj: &Map<String, Value>,
    field: &'static str,
    provider: Provider,
) -> Result<Option<u64>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v > 0 => Ok(Some(v)),
            _ => Err(ApiError::invalid_request(
                provider,
                format!("Invalid '{field}': expected an integer greater than or equal to 1."),
                Some(field),
                Some("invalid_value"),
            )),
        },
        Some(other) => Err(wrong_type(provider, field, "an integer", other)),
    }
}

/// About four characters a token over every string in the prompt, at least one token a message.
fn estimate_tokens(messages: &[Value]) -> u64 {
    fn chars(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(chars).sum(),
            Value::Object(o) => o
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "content" | "text"))
                .map(|(_, v)| chars(v))
                .sum(),
            _ => 0,
        }
    }
    messages
        .iter()
        .map(|m| (chars(m) as u64).div_ceil(4).max(1))
        .sum()
}

/// 64-bit FNV-1a: stable across runs and platforms, unlike `std`'s hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_request_fields_are_read() {
        let body =
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello to the world"}],
            "stream":true,"stream_options":{"include_usage":true},"max_tokens":7}"#;
        let r = ChatRequest::openai(body).expect("valid");
        assert_eq!(
            (r.model.as_str(), r.stream, r.include_usage, r.max_tokens),
            ("gpt-4o", true, true, Some(7))
        );
        assert_eq!(r.prompt_tokens, 6);
    }

    #[test]
    fn openai_errors_match_the_real_api() {
        let e = ChatRequest::openai(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(
            (e.status, e.param, e.code),
            (400, Some("messages"), Some("missing_required_parameter"))
        );
        let e = ChatRequest::openai(br#"{"model":"m","messages":"hi"}"#).unwrap_err();
        assert_eq!(e.code, Some("invalid_type"));
        assert!(
            e.message.contains("expected an array, but got a string"),
            "{}",
            e.message
        );
        let e = ChatRequest::openai(b"{not json").unwrap_err();
        assert!(
            e.message.starts_with("We could not parse the JSON body"),
            "{}",
            e.message
        );
        let e =
            ChatRequest::openai(br#"{"model":"m","messages":[{}],"max_tokens":-1}"#).unwrap_err();
        assert_eq!(e.param, Some("max_tokens"));
    }

    #[test]
    fn anthropic_requires_max_tokens() {
        let e = ChatRequest::anthropic(br#"{"model":"claude","messages":[]}"#).unwrap_err();
        assert_eq!(e.message, "max_tokens: Field required");
        let r = ChatRequest::anthropic(
            br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .expect("valid");
        assert_eq!(r.max_tokens, Some(5));
    }
}
