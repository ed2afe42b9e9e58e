//! The streaming response body: upstream SSE in, the client's API's SSE out, whole events only.
//!
//! A stream ends one of three ways, and the client can always tell which: the upstream's
//! own end (`data: [DONE]`, or Anthropic's `message_stop`), an error event of the client's API
//! (OpenAI's `data: {"error":..}`, Anthropic's `event: error`) when the upstream broke or the
//! gateway is shutting down, or nothing at all when the client went away (dropping this
//! stream drops the upstream response, which closes the upstream connection at once).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::AttemptError;
use super::sse::{self, SseFramer};
use super::translate::{AnthropicUsage, StreamError, Usage, to_anthropic, to_openai};
use crate::error::ApiError;
use crate::front::Api;
use crate::metrics::GaugeGuard;
use crate::pool::BodyStream;

/// How upstream events become client events.
#[derive(Debug)]
pub enum Mode {
    /// The upstream speaks the client's API: events are checked and forwarded as the same bytes.
    PassThrough {
        api: Api,
        state: PassThrough,
        /// From the final usage chunk (OpenAI, when the client asked for one), or from
        /// `message_start` and `message_delta` (Anthropic).
        usage: Option<Usage>,
    },
    /// Anthropic upstream, OpenAI client: events are translated.
    ToChat(Box<to_anthropic::StreamTranslator>),
    /// OpenAI upstream, Anthropic client: events are translated.
    ToMessages(Box<to_openai::StreamTranslator>),
}

impl Mode {
    /// The client and the upstream speak `api`.
    pub fn pass_through(api: Api) -> Self {
        Self::PassThrough {
            api,
            state: PassThrough::Open,
            usage: None,
        }
    }

    /// An OpenAI client, an Anthropic upstream.
    pub fn to_chat(include_usage: bool, created: u64) -> Self {
        Self::ToChat(Box::new(to_anthropic::StreamTranslator::new(
            include_usage,
            created,
        )))
    }

    /// An Anthropic client, an OpenAI upstream.
    pub fn to_messages() -> Self {
        Self::ToMessages(Box::default())
    }

    /// The API of the client's events, and so of the error events the gateway writes.
    fn api(&self) -> Api {
        match self {
            Self::PassThrough { api, .. } => *api,
            Self::ToChat(_) => Api::OpenAi,
            Self::ToMessages(_) => Api::Anthropic,
        }
    }

    /// How the stream ends if the upstream closes now; `None` while it is still open.
    fn ended(&self) -> Option<StreamEnd> {
        match self {
            Self::PassThrough { state, .. } => match state {
                PassThrough::Open => None,
                PassThrough::Done => Some(StreamEnd::Complete),
                PassThrough::Failed => Some(StreamEnd::Broken),
            },
            Self::ToChat(t) => t.finished().then_some(StreamEnd::Complete),
            Self::ToMessages(t) => t.finished().then_some(StreamEnd::Complete),
        }
    }

    /// Token usage, once the upstream reported it.
    fn usage(&self) -> Option<Usage> {
        match self {
            Self::PassThrough { usage, .. } => *usage,
            Self::ToChat(t) => t.finished().then(|| t.usage()),
            Self::ToMessages(t) => t.finished().then(|| t.usage()),
        }
    }

    /// Checks or translates a block of whole events into what the client receives.
    fn convert(&mut self, block: Bytes) -> Result<Bytes, Fault> {
        match self {
            Self::PassThrough {
                api: Api::OpenAi,
                state,
                usage,
            } => {
                for event in sse::events(&block) {
                    if *state != PassThrough::Open {
                        return Err(Fault::Invalid("event after the end of the stream".into()));
                    }
                    if &*event.data == b"[DONE]" {
                        *state = PassThrough::Done;
                    } else if event.data.starts_with(b"{\"error\"") {
                        // The upstream ended the stream with its own (OpenAI-shaped) error event.
                        *state = PassThrough::Failed;
                    } else if !is_object(&event.data) {
                        // A cheap structural check (no full parse on the hot path): catches
                        // truncated and non-JSON events.
                        return Err(Fault::Invalid("event data is not a JSON object".into()));
                    } else if contains(&event.data, b"\"usage\":{") {
                        // Only the final chunk of an `include_usage` stream: parse just that one.
                        *usage = serde_json::from_slice::<UsageChunk>(&event.data)
                            .map_err(|e| Fault::Invalid(format!("invalid usage chunk: {e}")))?
                            .usage;
                    }
                }
                Ok(block)
            }
            Self::PassThrough {
                api: Api::Anthropic,
                state,
                usage,
            } => {
                for event in sse::events(&block) {
                    if *state != PassThrough::Open {
                        return Err(Fault::Invalid("event after the end of the stream".into()));
                    }
                    if !is_object(&event.data) {
                        return Err(Fault::Invalid("event data is not a JSON object".into()));
                    }
                    let invalid = |e: serde_json::Error| {
                        Fault::Invalid(format!("invalid `{}` event: {e}", event.name.unwrap_or("")))
                    };
                    // Only the events that carry usage are parsed; deltas pass on the check above.
                    match event.name {
                        Some("message_start") => {
                            let start: MessageStart =
                                serde_json::from_slice(&event.data).map_err(invalid)?;
                            *usage = Some(start.message.usage.into());
                        }
                        Some("message_delta") => {
                            let delta: MessageDelta =
                                serde_json::from_slice(&event.data).map_err(invalid)?;
                            if let (Some(so_far), Some(reported)) = (usage.as_mut(), delta.usage) {
                                let input = match reported.input_tokens {
                                    0 => so_far.prompt_tokens,
                                    input => input,
                                };
                                *so_far = Usage::new(input, reported.output_tokens);
                            }
                        }
                        Some("message_stop") => *state = PassThrough::Done,
                        // The upstream's own (Anthropic-shaped) error event, passed on.
                        Some("error") => *state = PassThrough::Failed,
                        _ if usage.is_none() => {
                            return Err(Fault::Invalid(
                                "the stream did not begin with `message_start`".into(),
                            ));
                        }
                        _ => {}
                    }
                }
                Ok(block)
            }
            Self::ToChat(translator) => {
                let mut out = BytesMut::with_capacity(block.len());
                for event in sse::events(&block) {
                    let name = event.name.unwrap_or("message");
                    translator
                        .event(name, &event.data, &mut out)
                        .map_err(Fault::from)?;
                }
                Ok(out.freeze())
            }
            Self::ToMessages(translator) => {
                let mut out = BytesMut::with_capacity(block.len() * 2);
                for event in sse::events(&block) {
                    translator
                        .event(&event.data, &mut out)
                        .map_err(Fault::from)?;
                }
                Ok(out.freeze())
            }
        }
    }
}

fn is_object(data: &[u8]) -> bool {
    data.starts_with(b"{") && data.ends_with(b"}")
}

#[derive(serde::Deserialize)]
struct MessageStart {
    message: StartedMessage,
}

#[derive(serde::Deserialize)]
struct StartedMessage {
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(serde::Deserialize)]
struct MessageDelta {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(serde::Deserialize)]
struct UsageChunk {
    usage: Option<Usage>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Sees every chunk a stream sends and how it ended: the pipeline's "record" step for
/// streams (metrics, cache fill, token charging), kept out of the proxy.
pub trait StreamObserver: Send {
    /// Called with each block of whole events as it is handed to the client.
    fn on_chunk(&mut self, chunk: &Bytes);
    /// Called once, when the stream completes, breaks or is dropped.
    fn on_end(self: Box<Self>, end: StreamEnd, usage: Option<Usage>);
}

/// Why a block of upstream events could not be passed on.
#[derive(Debug)]
enum Fault {
    /// Not a valid event stream.
    Invalid(String),
    /// A well-formed error event from an upstream whose events are translated.
    Upstream(ApiError),
}

impl From<StreamError> for Fault {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Upstream(error) => Self::Upstream(error),
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(reason) => f.write_str(reason),
            Self::Upstream(error) => write!(f, "upstream error event: {}", error.message),
        }
    }
}

/// Where a passed-through stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    Open,
    /// `data: [DONE]` or `message_stop` was forwarded.
    Done,
    /// The upstream's own error event was forwarded.
    Failed,
}

/// How a stream ended, reported once when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished the stream properly.
    Complete,
    /// The stream was ended with an error event.
    Broken,
    /// The client went away first.
    ClientGone,
}

/// The SSE body of one streaming request, in the client's API.
pub struct ChatStream {
    upstream: BodyStream,
    framer: SseFramer,
    mode: Mode,
    /// Converted bytes waiting to be sent (the first event, held while the router decides).
    pending: Option<Bytes>,
    end: Option<StreamEnd>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    observer: Option<Box<dyn StreamObserver>>,
    /// The provider's upstream request in flight, counted off when the stream is dropped.
    _in_flight: GaugeGuard,
}

impl ChatStream {
    pub(super) fn new(upstream: BodyStream, mode: Mode, in_flight: GaugeGuard) -> Self {
        Self {
            upstream,
            framer: SseFramer::default(),
            mode,
            pending: None,
            end: None,
            shutdown: None,
            observer: None,
            _in_flight: in_flight,
        }
    }

    /// Ends the stream with an error event when `token` is cancelled (gateway shutdown).
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(Box::pin(token.cancelled_owned()));
        self
    }

    /// Reports every chunk and the end of the stream to `observer`.
    pub fn observe(mut self, observer: Box<dyn StreamObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Waits for the first client-visible event so that a stream that fails at once can
    /// still fall back to another provider before the client has seen a byte.
    pub(super) async fn first_event(&mut self) -> Result<(), AttemptError> {
        loop {
            match futures::StreamExt::next(&mut self.upstream).await {
                Some(Ok(chunk)) => {
                    let framed = self.framer.push(chunk);
                    let framed = framed.map_err(|e| AttemptError::BadPayload(e.to_string()))?;
                    let Some(block) = framed else {
                        continue;
                    };
                    let out = self
                        .mode
                        .convert(block)
                        .map_err(|fault| AttemptError::BadPayload(fault.to_string()))?;
                    if self.mode.ended() == Some(StreamEnd::Broken) {
                        return Err(AttemptError::BadPayload(
                            "stream began with an error event".into(),
                        ));
                    }
                    if !out.is_empty() {
                        self.pending = Some(out);
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(AttemptError::Connect(e.to_string())),
                None => {
                    return Err(AttemptError::BadPayload(
                        "stream ended before its first event".into(),
                    ));
                }
            }
        }
    }

    fn finish(&mut self, end: StreamEnd) {
        self.end = Some(end);
        if let Some(observer) = self.observer.take() {
            observer.on_end(end, self.mode.usage());
        }
    }

    fn emit(&mut self, out: Bytes) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        if let Some(observer) = &mut self.observer {
            observer.on_chunk(&out);
        }
        Poll::Ready(Some(Ok(out)))
    }

    fn fail(&mut self, message: String) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        self.finish(StreamEnd::Broken);
        let event = ApiError::bad_gateway(message).sse_event_for(self.mode.api());
        Poll::Ready(Some(Ok(event)))
    }
}

impl Stream for ChatStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(out) = this.pending.take() {
            return this.emit(out);
        }
        if this.end.is_some() {
            return Poll::Ready(None);
        }
        if let Some(shutdown) = &mut this.shutdown
            && shutdown.as_mut().poll(cx).is_ready()
        {
            this.finish(StreamEnd::Broken);
            let error = ApiError::unavailable("gateway is shutting down");
            return Poll::Ready(Some(Ok(error.sse_event_for(this.mode.api()))));
        }
        loop {
            match ready!(Pin::new(&mut this.upstream).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    let block = match this.framer.push(chunk) {
                        Ok(Some(block)) => block,
                        Ok(None) => continue,
                        Err(e) => return this.fail(format!("upstream sent an invalid event: {e}")),
                    };
                    match this.mode.convert(block) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return this.emit(out),
                        Err(Fault::Invalid(e)) => {
                            return this.fail(format!("upstream sent an invalid event: {e}"));
                        }
                        Err(Fault::Upstream(error)) => {
                            // The upstream's own error, translated: keep its type and message.
                            this.finish(StreamEnd::Broken);
                            return Poll::Ready(Some(Ok(error.sse_event_for(this.mode.api()))));
                        }
                    }
                }
                Some(Err(e)) => {
                    return this.fail(format!("upstream connection failed mid-stream: {e}"));
                }
                None => match this.mode.ended() {
                    Some(end) if !this.framer.has_partial() => {
                        this.finish(end);
                        return Poll::Ready(None);
                    }
                    _ => {
                        return this
                            .fail("upstream ended the stream before it was complete".into());
                    }
                },
            }
        }
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        if self.end.is_none() {
            let end = self.mode.ended().unwrap_or(StreamEnd::ClientGone);
            self.finish(end);
        }
    }
}
