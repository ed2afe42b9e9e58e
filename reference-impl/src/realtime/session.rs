//! One upgraded connection: read requests, run each as a task of its own, write what they
//! send, keep the connection alive with pings, and close it when it is done with.
//!
//! One writer task owns the socket's sending half and drains a bounded queue; the requests and
//! the keep-alive put their messages in that queue. Everything the connection holds (its unit
//! of `gateway_active_websockets`, its slot of `server.max_connections`, its requests) is
//! released when this task ends, whichever way it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::exchange::exchange;
use super::protocol::{ChatMessage, api_error_text};
use crate::error::ApiError;
use crate::server::{ConnectionHold, Shared};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Payload of the gateway's pings.
const PING: &[u8] = b"gatebench";

/// Serves one WebSocket until the client closes it, stops answering pings, or the gateway
/// shuts down (then requests under way finish first, within the shutdown grace).
pub(super) async fn serve(
    socket: Socket,
    gw: Arc<Shared>,
    headers: Arc<HeaderMap>,
    hold: Option<ConnectionHold>,
) {
    let _active = gw.metrics.active_websockets.hold();
    let settings = &gw.config.websocket;
    let (sink, mut incoming) = socket.split();
    let (out, queue) = mpsc::channel(settings.outbound_queue);
    let writer = tokio::spawn(write(sink, queue));
    let mut requests = Requests::default();
    let period = Duration::from_millis(settings.ping_interval_ms);
    let mut pings = tokio::time::interval_at(Instant::now() + period, period);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Set while a ping is unanswered: the connection is closed when it passes.
    let mut answer_by: Option<Instant> = None;
    let mut draining = false;
    let close = 'serve: loop {
        if draining && requests.tasks.is_empty() {
            break Some(close_frame(CloseCode::Away, "the gateway is shutting down"));
        }
        let answers = tokio::select! {
            frame = incoming.next() => {
                answer_by = None;
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        // Requests that have just sent their last message no longer count.
                        let mut answers = requests.reap(&gw);
                        match requests.admit(&text, draining, settings.max_in_flight) {
                            Ok(chat) => {
                                let id = chat.id.clone();
                                let task = exchange(gw.clone(), headers.clone(), chat, out.clone());
                                requests.spawn(id, task);
                            }
                            Err(refused) => answers.push(refused),
                        }
                        answers
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let error = ApiError::invalid_request("send requests as JSON text messages");
                        vec![api_error_text(None, &error)]
                    }
                    // Pings are answered by the protocol layer; any frame is a sign of life.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(WsError::Capacity(e))) => {
                        break Some(close_frame(CloseCode::Size, &e.to_string()));
                    }
                    Some(Err(e)) => {
                        tracing::debug!("websocket closed: {e}");
                        break None;
                    }
                }
            }
            Some(joined) = requests.tasks.join_next_with_id() => {
                requests.finished(joined, &gw).into_iter().collect()
            }
            _ = pings.tick(), if answer_by.is_none() => {
                // A full queue means the client is not reading: the ping would only wait there.
                if out.try_send(Message::Ping(Bytes::from_static(PING))).is_ok() {
                    answer_by = Some(Instant::now() + Duration::from_millis(settings.pong_timeout_ms));
                }
                continue;
            }
            () = sleep_until(answer_by.unwrap_or_else(Instant::now)), if answer_by.is_some() => {
                break Some(close_frame(CloseCode::Policy, "no answer to a ping"));
            }
            () = gw.draining.cancelled(), if !draining => {
                draining = true;
                continue;
            }
        };
        for answer in answers {
            if send(&out, answer).await.is_err() {
                break 'serve None;
            }
        }
    };
    // Requests still running have no one to answer: their streams end, upstream calls are
    // dropped and their gauges fall as the tasks are aborted.
    drop(requests);
    let grace = Duration::from_millis(settings.pong_timeout_ms);
    if let Some(frame) = close {
        let _ = tokio::time::timeout(grace, out.send(Message::Close(Some(frame)))).await;
    }
    drop(out);
    let mut writer = writer;
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        // A client that reads nothing cannot be told goodbye.
        writer.abort();
    }
    drop(hold);
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }
}

async fn send(out: &mpsc::Sender<Message>, text: String) -> Result<(), ()> {
    out.send(Message::text(text)).await.map_err(drop)
}

/// Writes queued messages until every sender is gone, then closes the socket.
async fn write(
    mut sink: futures::stream::SplitSink<Socket, Message>,
    mut queue: mpsc::Receiver<Message>,
) {
    while let Some(message) = queue.recv().await {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// The requests of one connection under way, by task, with the id each answers to.
#[derive(Default)]
struct Requests {
    tasks: JoinSet<()>,
    ids: HashMap<Id, String>,
}

impl Requests {
    /// A chat request from `text`, or the error message that refuses it.
    fn admit(&self, text: &str, draining: bool, max: usize) -> Result<ChatMessage, String> {
        let chat = ChatMessage::parse(text)?;
        let refuse = |error: ApiError| Err(api_error_text(Some(&chat.id), &error));
        if draining {
            return refuse(
                ApiError::unavailable("the gateway is shutting down").with_code("shutting_down"),
            );
        }
        if self.ids.values().any(|id| *id == chat.id) {
            return refuse(
                ApiError::invalid_request("a request with this id is under way").with_param("id"),
            );
        }
        if self.ids.len() >= max {
            return refuse(
                ApiError::rate_limited(format!(
                    "{max} requests are under way on this connection (websocket.max_in_flight)"
                ))
                .with_code("too_many_in_flight"),
            );
        }
        Ok(chat)
    }

    fn spawn(&mut self, id: String, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.ids.insert(handle.id(), id);
    }

    /// Forgets every request that has finished; the answers for those that panicked.
    fn reap(&mut self, gw: &Shared) -> Vec<String> {
        let mut answers = Vec::new();
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            answers.extend(self.finished(joined, gw));
        }
        answers
    }

    /// Forgets a finished request; one that panicked is answered with a 500, counted as the
    /// HTTP front door counts its panics.
    fn finished(
        &mut self,
        joined: Result<(Id, ()), tokio::task::JoinError>,
        gw: &Shared,
    ) -> Option<String> {
        let (task, panicked) = match joined {
            Ok((task, ())) => (task, false),
            Err(e) => (e.id(), e.is_panic()),
        };
        let id = self.ids.remove(&task)?;
        if !panicked {
            return None;
        }
        gw.metrics
            .panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gw.metrics.record_status(500);
        let error = ApiError::internal("internal error while handling the request");
        Some(api_error_text(Some(&id), &error))
    }
}
