//! The two front doors: which API a client speaks, and its request as received.
//!
//! `POST /v1/chat/completions` speaks OpenAI's chat completions API, `POST /v1/messages`
//! Anthropic's Messages API. Both run the same pipeline; the API decides how the body is read,
//! whether the upstream's bytes pass through or are translated (they pass through when the
//! upstream speaks the client's API), what shape answers and errors take, and which cache
//! namespace the request's key lives in.

use bytes::Bytes;

use crate::error::ApiError;
use crate::messages::MessagesRequest;
use crate::request::ChatRequest;

/// The API a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Api {
    /// OpenAI chat completions.
    #[default]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Api {
    /// The path of this API's front door.
    pub fn path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
        }
    }

    /// The API whose front door is at `path`, if any.
    pub fn at(path: &str) -> Option<Self> {
        [Self::OpenAi, Self::Anthropic]
            .into_iter()
            .find(|api| api.path() == path)
    }
}

/// A validated request at one of the front doors.
#[derive(Debug)]
pub enum Inbound {
    Chat(ChatRequest),
    Messages(MessagesRequest),
}

impl Inbound {
    /// Parses and validates `raw` as a request of `api`.
    pub fn parse(api: Api, raw: Bytes) -> Result<Self, ApiError> {
        match api {
            Api::OpenAi => ChatRequest::parse(raw).map(Self::Chat),
            Api::Anthropic => MessagesRequest::parse(raw).map(Self::Messages),
        }
    }

    pub fn api(&self) -> Api {
        match self {
            Self::Chat(_) => Api::OpenAi,
            Self::Messages(_) => Api::Anthropic,
        }
    }

    pub fn model(&self) -> &str {
        match self {
            Self::Chat(chat) => &chat.body.model,
            Self::Messages(messages) => &messages.body.model,
        }
    }

    pub fn stream(&self) -> bool {
        match self {
            Self::Chat(chat) => chat.body.stream,
            Self::Messages(messages) => messages.body.stream,
        }
    }

    /// The body as received.
    pub fn raw(&self) -> &Bytes {
        match self {
            Self::Chat(chat) => &chat.raw,
            Self::Messages(messages) => &messages.raw,
        }
    }

    /// OpenAI's `stream_options.include_usage`; an Anthropic stream always reports usage.
    pub fn include_usage(&self) -> bool {
        match self {
            Self::Chat(chat) => chat.include_usage(),
            Self::Messages(_) => true,
        }
    }
}
