//! What both wire formats share: the provider, the error model and the completion being sent.

use std::borrow::Cow;

use bytes::Bytes;

use crate::request::ChatRequest;

/// Which provider's wire format a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

/// An error as the provider would send it: status plus the fields of its JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub provider: Provider,
    pub status: u16,
    /// OpenAI `error.type` / Anthropic `error.type`.
    pub kind: &'static str,
    pub message: Cow<'static, str>,
    /// OpenAI only: the offending parameter.
    pub param: Option<&'static str>,
    /// OpenAI only: a machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn invalid_request(
        provider: Provider,
        message: impl Into<Cow<'static, str>>,
        param: Option<&'static str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            provider,
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            param,
            code,
        }
    }

    pub(crate) fn invalid_json(provider: Provider) -> Self {
        let message = match provider {
            Provider::OpenAi => {
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your \
                 HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
            }
            Provider::Anthropic => {
                "There was an error parsing the body of your request: it is not valid JSON."
            }
        };
        Self::invalid_request(provider, message, None, None)
    }

    /// The error a provider sends with an injected status (429, 500, 503 or 529).
    pub fn for_status(provider: Provider, status: u16) -> Self {
        let (kind, message, code): (&'static str, &'static str, Option<&'static str>) =
            match (provider, status) {
                (Provider::OpenAi, 429) => (
                    "requests",
                    "Rate limit reached for requests. Please try again later.",
                    Some("rate_limit_exceeded"),
                ),
                (Provider::OpenAi, 503) => (
                    "server_error",
                    "The engine is currently overloaded, please try again later.",
                    None,
                ),
                (Provider::OpenAi, 529) => (
                    "server_error",
                    "The server is overloaded, please try again later.",
                    None,
                ),
                (Provider::OpenAi, _) => (
                    "server_error",
                    "The server had an error while processing your request. Sorry about that!",
                    None,
                ),
                (Provider::Anthropic, 429) => (
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit.",
                    None,
                ),
                (Provider::Anthropic, 503) => ("api_error", "Service unavailable", None),
                (Provider::Anthropic, 529) => ("overloaded_error", "Overloaded", None),
                (Provider::Anthropic, _) => ("api_error", "Internal server error", None),
            };
        Self {
            provider,
            status,
            kind,
            message: Cow::Borrowed(message),
            param: None,
            code,
        }
    }

    /// The JSON body, byte for byte as the provider formats it.
    pub fn body(&self) -> Bytes {
        let message = json_string(&self.message);
        let body = match self.provider {
            Provider::OpenAi => format!(
                r#"{{"error":{{"message":{message},"type":"{}","param":{},"code":{}}}}}"#,
                self.kind,
                opt_json(self.param),
                opt_json(self.code)
            ),
            Provider::Anthropic => format!(
                r#"{{"type":"error","error":{{"type":"{}","message":{message}}}}}"#,
                self.kind
            ),
        };
        Bytes::from(body)
    }
}

fn opt_json(v: Option<&str>) -> Cow<'static, str> {
    v.map_or(Cow::Borrowed("null"), |s| Cow::Owned(json_string(s)))
}

/// `s` as a JSON string literal, quotes included.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Why a completion stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended on its own (`stop` / `end_turn`).
    Stop,
    /// `max_tokens` cut it short (`length` / `max_tokens`).
    Length,
}

/// The answer to one request, before it is encoded for a provider.
///
/// Everything in it is a function of the request, the token count and the timestamp, so the native
/// server and the wiremock builders produce the same bytes for the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub tokens: Vec<&'static str>,
    pub prompt_tokens: u64,
    pub finish: Finish,
}

impl Completion {
    /// The completion of `request` with `wanted` tokens, capped by the request's `max_tokens`.
    pub fn new(request: &ChatRequest, wanted: usize, created: u64) -> Self {
        let wanted = wanted.max(1);
        let (count, finish) = match request.max_tokens {
            Some(max) if (max as usize) < wanted => (max as usize, Finish::Length),
            _ => (wanted, Finish::Stop),
        };
        let start = request.fingerprint as usize;
        let tokens = (0..count)
            .map(|i| VOCABULARY[(start.wrapping_add(i * 7)) % VOCABULARY.len()])
            .collect();
        let id = match request.provider {
            Provider::OpenAi => format!("chatcmpl-mock{:016x}", request.fingerprint),
            Provider::Anthropic => format!("msg_mock{:016x}", request.fingerprint),
        };
        Self {
            id,
            created,
            model: request.model.clone(),
            tokens,
            prompt_tokens: request.prompt_tokens,
            finish,
        }
    }

    /// The whole generated text.
    pub fn text(&self) -> String {
        self.tokens.concat()
    }

    pub fn completion_tokens(&self) -> u64 {
        self.tokens.len() as u64
    }
}

/// Output tokens. Plain words with a leading space: nothing in them needs JSON escaping, so encoders
/// can splice them into pre-built chunks.
const VOCABULARY: [&str; 32] = [
    " the",
    " gateway",
    " routes",
    " each",
    " request",
    " to",
    " a",
    " provider",
    " and",
    " streams",
    " tokens",
    " back",
    " while",
    " caching",
    " answers",
    " that",
    " repeat",
    " under",
    " load",
    " latency",
    " stays",
    " low",
    " when",
    " limits",
    " hold",
    " so",
    " every",
    " client",
    " gets",
    " its",
    " reply",
    ".",
];

/// A response body cut into the pieces that go out at separate times.
///
/// Built once per request into one buffer; sending a piece is a `Bytes::slice` (a reference-count
/// bump), so pacing a stream allocates nothing per token.
#[derive(Debug, Clone, Default)]
pub struct Script {
    buf: Vec<u8>,
    /// End offset of each piece in `buf`, ascending.
    cuts: Vec<usize>,
}

impl Script {
    /// Writes the content tokens that `end` lets through, one piece each (the last piece stays
    /// open for the closing events). `write` gets the token, or `None` where `end` asks for a
    /// malformed chunk instead.
    pub(crate) fn push_tokens(
        &mut self,
        c: &Completion,
        end: StreamEnd,
        mut write: impl FnMut(&mut Self, Option<&str>),
    ) {
        let sent = match end {
            StreamEnd::Complete | StreamEnd::Malformed => c.tokens.len(),
            StreamEnd::ErrorAfter(n) | StreamEnd::CutAfter(n) => n.min(c.tokens.len()),
        };
        let broken = (end == StreamEnd::Malformed).then_some(c.tokens.len() / 2);
        for (i, token) in c.tokens[..sent].iter().enumerate() {
            write(self, (broken != Some(i)).then_some(*token));
            if i + 1 < sent {
                self.cut();
            }
        }
    }

    pub(crate) fn push(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Ends the current piece; it will be sent on its own tick.
    pub(crate) fn cut(&mut self) {
        self.cuts.push(self.buf.len());
    }

    /// The whole body as one buffer (what a non-streaming client or wiremock sends).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }

    /// The body and the end offset of each piece.
    pub fn into_parts(mut self) -> (Bytes, Vec<usize>) {
        if self.cuts.last() != Some(&self.buf.len()) {
            self.cut();
        }
        (Bytes::from(self.buf), self.cuts)
    }
}

/// How a stream ends after its content tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Finish reason, usage and the provider's closing events.
    Complete,
    /// The provider's in-stream error event after this many tokens.
    ErrorAfter(usize),
    /// Nothing after this many tokens: the server drops the connection.
    CutAfter(usize),
    /// Like `Complete`, but the middle content chunk is not valid JSON.
    Malformed,
}

impl ApiError {
    /// The 401 a provider sends for a missing (`missing`) or wrong API key.
    pub fn unauthorized(provider: Provider, missing: bool) -> Self {
        let (kind, message, code) = match (provider, missing) {
            (Provider::OpenAi, true) => (
                "invalid_request_error",
                "You didn't provide an API key.",
                Some("invalid_api_key"),
            ),
            (Provider::OpenAi, false) => (
                "invalid_request_error",
                "Incorrect API key provided.",
                Some("invalid_api_key"),
            ),
            (Provider::Anthropic, _) => ("authentication_error", "invalid x-api-key", None),
        };
        Self {
            provider,
            status: 401,
            kind,
            message: Cow::Borrowed(message),
            param: None,
            code,
        }
    }

    /// What the providers answer for a path they do not serve.
    pub fn not_found() -> Self {
        Self {
            status: 404,
            ..Self::invalid_request(
                Provider::OpenAi,
                "Unknown request URL.",
                None,
                Some("unknown_url"),
            )
        }
    }
}

impl Provider {
    /// The non-streaming success body.
    pub fn body(self, c: &Completion) -> Bytes {
        match self {
            Self::OpenAi => crate::openai::completion_body(c),
            Self::Anthropic => crate::anthropic::message_body(c),
        }
    }

    /// A non-streaming body that is not valid JSON.
    pub fn malformed_body(self, c: &Completion) -> Bytes {
        match self {
            Self::OpenAi => crate::openai::malformed_body(c),
            Self::Anthropic => crate::anthropic::malformed_body(c),
        }
    }

    /// The SSE stream; `include_usage` only matters for OpenAI (Anthropic streams always carry usage).
    pub fn stream_script(self, c: &Completion, include_usage: bool, end: StreamEnd) -> Script {
        match self {
            Self::OpenAi => crate::openai::stream_script(c, include_usage, end),
            Self::Anthropic => crate::anthropic::stream_script(c, end),
        }
    }

    /// The path of this provider's chat route.
    pub fn chat_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
        }
    }
}
