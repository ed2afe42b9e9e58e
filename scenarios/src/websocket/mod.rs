//! The websocket scenario's load: connections opened at the start and held for the run, one
//! chat request a second on each, their answers streamed back as messages
//! (`GET /v1/realtime/chat`, see docs/design.md for the messages).
//!
//! Not on Goose: a Goose user sends one request at a time, and here requests overlap on one
//! connection (an answer lasts several seconds, a request leaves every second). Each connection
//! is a task; what it measures goes to the same [`Recorder`] as the HTTP load's, so summaries,
//! reports and SLOs read it unchanged: TTFT from the send of the request message to the frame
//! of its first delta, ITL between the frames of consecutive deltas (each timed when read), and
//! the connect time (TCP connect to the upgrade's 101) as `connect`.

mod connect;
mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attack::Plan;
use crate::client::{Api, Client, ClientError};
use crate::load::{Load, Stages, Worker};
use crate::recorder::Recorder;
use crate::workload::Prompt;

use connect::Endpoint;

/// The path of the reference gateway's WebSocket route.
pub const DEFAULT_PATH: &str = "/v1/realtime/chat";

/// How often each connection sends a request.
const REQUEST_EVERY: Duration = Duration::from_secs(1);

/// Answers still streaming this long after the planned end are abandoned as timeouts: the
/// longest answers of the scenario's upstream last 10 s.
const DRAIN: Duration = Duration::from_secs(15);

/// The WebSocket load could not run.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("api: the WebSocket route takes OpenAI chat bodies; --api anthropic has none")]
    Api,
    #[error(
        "rate: the websocket scenario holds connections (--users or --stages give how many), \
         it has no arrival rate"
    )]
    Load,
    #[error("a connection task failed: {0}")]
    Join(String),
}

/// The stages of the connections held, when the websocket load can run `load` in `api`: a
/// closed load (connections, not arrivals) of OpenAI chat bodies. The harness asks before it
/// starts anything; [`run_share`] asks again.
pub fn check(load: &Load, api: Api) -> Result<&Stages, WebSocketError> {
    let Load::Closed { stages, .. } = load else {
        return Err(WebSocketError::Load);
    };
    if api != Api::OpenAi {
        return Err(WebSocketError::Api);
    }
    Ok(stages)
}

/// What every connection of a run shares.
struct Shared {
    plan: Plan,
    client: Client,
    recorder: Arc<Recorder>,
    endpoint: Endpoint,
    /// No request is sent after this.
    end: Instant,
    /// Requests still under way now are abandoned.
    deadline: Instant,
}

impl Shared {
    /// The text of request `id`'s message: `{"type":"chat","id":..,"body":..}`.
    fn chat_message(&self, id: u64, prompt: &Prompt) -> String {
        let body = self.client.chat_body(&self.plan.model, prompt, true);
        // The body is JSON from a serializer: valid UTF-8.
        let body = String::from_utf8_lossy(&body);
        format!(r#"{{"type":"chat","id":"{id}","body":{body}}}"#)
    }
}

/// Runs `worker`'s share of the connections of `plan` against the WebSocket at `path` of the
/// client's first target, recording into `recorder`, until the load's duration is over and the
/// last answers are in (or `DRAIN` has passed).
///
/// The connections are the load's peak users, opened at once (spread over the first second)
/// and held for the load's duration; stages shape nothing else.
pub async fn run_share(
    plan: Plan,
    worker: Worker,
    client: Client,
    recorder: Arc<Recorder>,
    path: &str,
) -> Result<(), WebSocketError> {
    let stages = check(&plan.load, client.options().api)?.share(worker);
    let endpoint = Endpoint::new(client.base(), path, client.options())?;
    let connections = stages.peak();
    let begin = Instant::now();
    let end = begin + stages.total();
    let shared = Arc::new(Shared {
        deadline: end + DRAIN,
        end,
        plan,
        client,
        recorder,
        endpoint,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for local in 0..connections {
        let shared = Arc::clone(&shared);
        let user = worker.user(local);
        // Spread over the first second, so the requests of all connections do not leave at once.
        let offset = REQUEST_EVERY.mul_f64(local as f64 / connections.max(1) as f64);
        tasks.spawn(async move {
            shared.recorder.user_started();
            session::run(&shared, user, offset).await;
            shared.recorder.user_stopped();
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| WebSocketError::Join(e.to_string()))?;
    }
    Ok(())
}

/// Opens one WebSocket at `path` of the client's first target and closes it: the preflight
/// that fails a run at once, with the reason, when the target has no such route.
pub async fn preflight(client: &Client, path: &str) -> Result<(), ClientError> {
    let endpoint = Endpoint::new(client.base(), path, client.options())?;
    match endpoint.open().await {
        Ok((mut socket, _)) => {
            let _ = futures::SinkExt::close(&mut socket).await;
            Ok(())
        }
        Err(refused) => Err(ClientError::Unreachable {
            url: endpoint.url(),
            why: refused.why,
        }),
    }
}
