//! wiremock builders for functional tests of a gateway.
//!
//! They answer with the same encoders as the native server, so for the same request (and the same
//! token count and pinned timestamp) both send identical bytes. wiremock sends a stream as one
//! body, without pacing: use the native server where timing matters.
//!
//! ```no_run
//! # async fn demo() {
//! use mock_providers::wiremock::Reply;
//! let server = ::wiremock::MockServer::start().await;
//! Reply::openai().tokens(8).mock().expect(1).mount(&server).await;
//! Reply::anthropic().status(529).mock().mount(&server).await;
//! # }
//! ```

use std::time::Duration;

use ::wiremock::matchers::{method, path};
use ::wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::request::ChatRequest;
use crate::wire::{ApiError, Completion, Provider, StreamEnd};

/// What a mounted mock answers to every chat request it matches.
#[derive(Debug, Clone)]
pub struct Reply {
    provider: Provider,
    tokens: usize,
    created: u64,
    delay: Duration,
    status: Option<u16>,
    retry_after: Duration,
}

impl Reply {
    /// A successful OpenAI chat completion (streamed when the request asks for it).
    pub fn openai() -> Self {
        Self::new(Provider::OpenAi)
    }

    /// A successful Anthropic message (streamed when the request asks for it).
    pub fn anthropic() -> Self {
        Self::new(Provider::Anthropic)
    }

    fn new(provider: Provider) -> Self {
        Self {
            provider,
            tokens: 16,
            created: 1_700_000_000,
            delay: Duration::ZERO,
            status: None,
            retry_after: Duration::from_secs(1),
        }
    }

    /// Output length (default 16, capped by the request's `max_tokens`).
    pub fn tokens(mut self, tokens: usize) -> Self {
        self.tokens = tokens;
        self
    }

    /// The `created` timestamp of answers (default 1700000000).
    pub fn created(mut self, created: u64) -> Self {
        self.created = created;
        self
    }

    /// Wait this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answer with this error status (429, 500, 503, 529) and the provider's error body.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Answer 429 with `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
    pub fn rate_limited(mut self, retry_after: Duration) -> Self {
        self.status = Some(429);
        self.retry_after = retry_after;
        self
    }

    /// A `Mock` for `POST` on the provider's chat path that answers with this reply.
    pub fn mock(self) -> Mock {
        Mock::given(method("POST"))
            .and(path(self.provider.chat_path()))
            .respond_with(self)
    }

    fn error(&self, e: &ApiError) -> ResponseTemplate {
        ResponseTemplate::new(e.status).set_body_raw(e.body().to_vec(), "application/json")
    }
}

impl Respond for Reply {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let template = match (
            self.status,
            ChatRequest::parse(self.provider, &request.body),
        ) {
            (_, Err(e)) => self.error(&e),
            (Some(429), Ok(_)) => {
                let ms = self.retry_after.as_millis() as u64;
                self.error(&ApiError::for_status(self.provider, 429))
                    .insert_header("retry-after", ms.div_ceil(1000).to_string())
                    .insert_header("retry-after-ms", ms.to_string())
            }
            (Some(status), Ok(_)) => self.error(&ApiError::for_status(self.provider, status)),
            (None, Ok(req)) => {
                let completion = Completion::new(&req, self.tokens, self.created);
                if req.stream {
                    let body = self
                        .provider
                        .stream_script(&completion, req.include_usage, StreamEnd::Complete)
                        .into_bytes();
                    ResponseTemplate::new(200)
                        .set_body_raw(body.to_vec(), "text/event-stream; charset=utf-8")
                } else {
                    ResponseTemplate::new(200)
                        .set_body_raw(self.provider.body(&completion).to_vec(), "application/json")
                }
            }
        };
        template.set_delay(self.delay)
    }
}
