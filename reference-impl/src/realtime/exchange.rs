//! One chat request of a WebSocket: through the pipeline of `POST /v1/chat/completions`, its
//! SSE answer turned into `delta` messages and a `done` (or an `error`).
//!
//! Every message goes through the connection's bounded outbound queue, and the next event of
//! the answer is read only once the last message is queued: when the client reads slowly the
//! queue fills, this request stops reading its stream, and the stream stops reading its
//! upstream, so a slow reader holds at most a queue of messages, not the whole answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::protocol::{ChatMessage, Outbound, api_error_text, error_text};
use crate::error::ApiError;
use crate::front::Api;
use crate::limits::MAX_UPSTREAM_ERROR_BODY_BYTES;
use crate::pipeline;
use crate::proxy::sse::{self, SseFramer};
use crate::server::Shared;

/// The client went away: nothing more can be sent.
struct Gone;

/// Runs `chat` through the pipeline with the upgrade request's `headers` and sends what comes
/// back on `out`.
pub(super) async fn exchange(
    gw: Arc<Shared>,
    headers: Arc<HeaderMap>,
    chat: ChatMessage,
    out: mpsc::Sender<Message>,
) {
    let id = chat.id.as_str();
    let response = pipeline::chat_completions(State(gw), request(&headers, chat.body)).await;
    let (parts, body) = response.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let _ = match (parts.status.is_success(), is_sse) {
        (true, true) => relay(id, body, &out).await,
        (true, false) => {
            let error = ApiError::bad_gateway("the answer to a streaming request was not a stream");
            send(&out, api_error_text(Some(id), &error)).await
        }
        (false, _) => {
            // The pipeline's own error bodies are a few hundred bytes.
            let body = axum::body::to_bytes(body, MAX_UPSTREAM_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            send(&out, error_text(Some(id), parts.status.as_u16(), &body)).await
        }
    };
}

/// The request the pipeline sees: `POST /v1/chat/completions` with the upgrade's headers.
fn request(headers: &HeaderMap, body: Bytes) -> Request {
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(Api::OpenAi.path());
    let into = request.headers_mut();
    into.clone_from(headers);
    into.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request
}

/// Relays a chat completions SSE stream as messages until `[DONE]`, an error event or the end.
async fn relay(id: &str, body: Body, out: &mpsc::Sender<Message>) -> Result<(), Gone> {
    let mut stream = body.into_data_stream();
    let mut framer = SseFramer::default();
    let mut answer = Answer::default();
    while let Some(chunk) = stream.next().await {
        let block = match chunk.map(|chunk| framer.push(chunk)) {
            Ok(Ok(Some(block))) => block,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                return fail(out, id, format!("the stream sent an invalid event: {e}")).await;
            }
            Err(e) => return fail(out, id, format!("the stream broke: {e}")).await,
        };
        for event in sse::events(&block) {
            match answer.event(&event.data) {
                Ok(Event::Delta(text)) => {
                    send(out, Outbound::Delta { id, content: &text }.text()).await?;
                }
                Ok(Event::Nothing) => {}
                Ok(Event::Done) => {
                    let done = Outbound::Done {
                        id,
                        finish_reason: answer.finish_reason.as_deref(),
                        usage: answer.usage.as_deref(),
                    };
                    return send(out, done.text()).await;
                }
                Ok(Event::Error) => {
                    // The gateway's (or upstream's) error event ends the stream: the status a
                    // broken stream would have had, had it not started.
                    return send(out, error_text(Some(id), 502, &event.data)).await;
                }
                Err(e) => {
                    return fail(out, id, format!("the stream sent an invalid chunk: {e}")).await;
                }
            }
        }
    }
    fail(
        out,
        id,
        "the stream ended before it was complete".to_owned(),
    )
    .await
}

async fn fail(out: &mpsc::Sender<Message>, id: &str, message: String) -> Result<(), Gone> {
    send(
        out,
        api_error_text(Some(id), &ApiError::bad_gateway(message)),
    )
    .await
}

async fn send(out: &mpsc::Sender<Message>, text: String) -> Result<(), Gone> {
    out.send(Message::text(text)).await.map_err(|_| Gone)
}

/// What one SSE event of the stream means for the client.
enum Event {
    Delta(String),
    Nothing,
    Done,
    Error,
}

/// What is known of the answer so far: how it finished and its usage, for the `done` message.
#[derive(Default)]
struct Answer {
    finish_reason: Option<String>,
    usage: Option<Box<RawValue>>,
}

/// The parts of a `chat.completion.chunk` (or error event) the messages carry.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

impl Answer {
    fn event(&mut self, data: &[u8]) -> Result<Event, serde_json::Error> {
        if data == b"[DONE]" {
            return Ok(Event::Done);
        }
        let chunk: Chunk = serde_json::from_slice(data)?;
        if chunk.error.is_some() {
            return Ok(Event::Error);
        }
        if let Some(usage) = chunk.usage.filter(|u| u.get() != "null") {
            self.usage = Some(usage);
        }
        let mut text = String::new();
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
            if let Some(content) = choice.delta.and_then(|d| d.content) {
                text.push_str(&content);
            }
        }
        Ok(if text.is_empty() {
            Event::Nothing
        } else {
            Event::Delta(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_deltas_and_the_end_keeps_reason_and_usage() {
        let mut answer = Answer::default();
        let role = br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert!(matches!(answer.event(role), Ok(Event::Nothing)));
        let text = br#"{"choices":[{"index":0,"delta":{"content":" hi"}}],"usage":null}"#;
        assert!(matches!(answer.event(text), Ok(Event::Delta(t)) if t == " hi"));
        let finish = br#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert!(matches!(answer.event(finish), Ok(Event::Nothing)));
        let usage = br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        assert!(matches!(answer.event(usage), Ok(Event::Nothing)));
        assert!(matches!(answer.event(b"[DONE]"), Ok(Event::Done)));
        assert_eq!(answer.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            answer.usage.as_deref().map(RawValue::get),
            Some(r#"{"prompt_tokens":3,"completion_tokens":1}"#)
        );
        let error = br#"{"error":{"message":"boom","type":"upstream_error"}}"#;
        assert!(matches!(answer.event(error), Ok(Event::Error)));
        assert!(answer.event(b"{\"choices\":").is_err());
    }
}
