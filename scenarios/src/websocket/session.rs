//! One connection of the websocket scenario, from its first connect to the end of the run:
//! a chat request every second on the open WebSocket, the answers read as their frames arrive,
//! each request recorded once it ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reports::model::ErrorClass;
use serde::Deserialize;
use tokio::time::{MissedTickBehavior, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use super::Shared;
use super::connect::Socket;
use crate::recorder::{Reply, Sample};
use crate::tokens;
use crate::workload::{Prompt, PromptGenerator};

/// One request under way on the connection.
struct Pending {
    prompt: Prompt,
    sent: Instant,
    first_content: Option<Instant>,
    /// When the last delta's frame was read.
    last_content: Option<Instant>,
    itl_us: Vec<u32>,
    burst_gaps: u64,
    /// The text so far, counted by the tokenizer if the target reports no usage.
    text: String,
}

/// A message from the target, as far as the measurements need it.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// How a request ended.
struct End {
    at: Instant,
    result: Result<(), ErrorClass>,
    status: Option<u16>,
    usage: Option<Usage>,
}

/// Connection `user` of the run: connects (again after a failure, a second later), sends until
/// the run's end, and waits for its last answers until the drain deadline.
pub(super) async fn run(shared: &Shared, user: usize, offset: Duration) {
    let mut prompts = PromptGenerator::new(&shared.plan.prompts, shared.plan.seed, user);
    let mut next_id: u64 = 0;
    tokio::time::sleep(offset).await;
    while Instant::now() < shared.end {
        let began = Instant::now();
        let socket = match shared.endpoint.open().await {
            Ok((socket, took)) => {
                shared.recorder.record_connect(user, began + took, took);
                socket
            }
            Err(refused) => {
                let failed = Instant::now();
                shared
                    .recorder
                    .record(user, &failure(began, failed, refused.class, refused.status));
                sleep_until((failed + super::REQUEST_EVERY).into()).await;
                continue;
            }
        };
        serve(shared, user, socket, &mut prompts, &mut next_id).await;
        if Instant::now() < shared.end {
            // Lost before the end: connect again, not at once.
            tokio::time::sleep(super::REQUEST_EVERY).await;
        }
    }
}

/// Sends and reads on one open connection until the run is over or the connection is lost.
async fn serve(
    shared: &Shared,
    user: usize,
    mut socket: Socket,
    prompts: &mut PromptGenerator,
    next_id: &mut u64,
) {
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut ticks = tokio::time::interval(super::REQUEST_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let timeout = shared.client.options().timeout;
    loop {
        let now = Instant::now();
        if now >= shared.end && pending.is_empty() {
            let _ = socket.close(None).await;
            return;
        }
        if now >= shared.deadline {
            // Answers still missing at the drain deadline are timeouts, as on the HTTP path.
            for (_, request) in pending.drain() {
                let end = ended(now, Err(ErrorClass::Timeout), None);
                shared.recorder.record(user, &sample(&request, &end));
            }
            return;
        }
        tokio::select! {
            frame = socket.next() => {
                // The arrival time of a frame: taken before anything is parsed.
                let at = Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        // The connection is gone, and with it every answer under way.
                        for (_, request) in pending.drain() {
                            let end = ended(at, Err(ErrorClass::StreamBroken), None);
                            shared.recorder.record(user, &sample(&request, &end));
                        }
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                if let Some((id, end)) = read(&text, at, &mut pending)
                    && let Some(request) = pending.remove(&id)
                {
                    shared.recorder.record(user, &sample(&request, &end));
                }
            }
            _ = ticks.tick(), if now < shared.end => {
                // Answers past the client timeout are given up, as on the HTTP path.
                let late: Vec<u64> = pending
                    .iter()
                    .filter(|(_, request)| now.duration_since(request.sent) > timeout)
                    .map(|(id, _)| *id)
                    .collect();
                for id in late {
                    if let Some(request) = pending.remove(&id) {
                        let end = ended(now, Err(ErrorClass::Timeout), None);
                        shared.recorder.record(user, &sample(&request, &end));
                    }
                }
                let prompt = prompts.next_prompt();
                let id = *next_id;
                *next_id += 1;
                // The message is built before the clock starts: TTFT is the target's time.
                let message = shared.chat_message(id, &prompt);
                let sent = Instant::now();
                if socket.send(Message::text(message)).await.is_err() {
                    let end = ended(Instant::now(), Err(ErrorClass::StreamBroken), None);
                    let request = Pending::new(prompt, sent);
                    shared.recorder.record(user, &sample(&request, &end));
                    continue;
                }
                pending.insert(id, Pending::new(prompt, sent));
            }
            () = sleep_until(shared.deadline.into()) => {}
        }
    }
}

impl Pending {
    fn new(prompt: Prompt, sent: Instant) -> Pending {
        Pending {
            prompt,
            sent,
            first_content: None,
            last_content: None,
            itl_us: Vec::new(),
            burst_gaps: 0,
            text: String::new(),
        }
    }
}

/// Takes one message in: a delta is added to its request; an end is returned with its id.
/// Messages that are not the protocol's, or of requests given up, are ignored.
fn read(text: &str, at: Instant, pending: &mut HashMap<u64, Pending>) -> Option<(u64, End)> {
    let message: Incoming<'_> = serde_json::from_str(text).ok()?;
    let id: u64 = message.id?.parse().ok()?;
    let request = pending.get_mut(&id)?;
    match message.kind {
        "delta" => {
            let content = message.content.unwrap_or_default();
            if content.is_empty() {
                return None;
            }
            if let Some(last) = request.last_content {
                let gap = u32::try_from(at.duration_since(last).as_micros()).unwrap_or(u32::MAX);
                request.burst_gaps += u64::from(gap == 0);
                request.itl_us.push(gap);
            }
            request.first_content.get_or_insert(at);
            request.last_content = Some(at);
            request.text.push_str(&content);
            None
        }
        "done" => Some((
            id,
            End {
                at,
                result: Ok(()),
                status: Some(200),
                usage: message.usage,
            },
        )),
        "error" => {
            let status = message.status;
            let class = match status {
                // A stream that had begun and then failed broke; one that never began was
                // refused, by the class of its status.
                _ if request.first_content.is_some() => ErrorClass::StreamBroken,
                Some(400..=499) => ErrorClass::Http4xx,
                Some(_) => ErrorClass::Http5xx,
                None => ErrorClass::BadPayload,
            };
            Some((id, ended(at, Err(class), status)))
        }
        _ => None,
    }
}

fn ended(at: Instant, result: Result<(), ErrorClass>, status: Option<u16>) -> End {
    End {
        at,
        result,
        status,
        usage: None,
    }
}

/// The sample of a finished request: token counts from the target's usage, or counted.
fn sample<'a>(request: &'a Pending, end: &End) -> Sample<'a> {
    let reported = end.usage.as_ref();
    let output = reported.and_then(|u| u.completion_tokens);
    let counted = output.is_none() && !request.text.is_empty();
    let input = reported.and_then(|u| u.prompt_tokens).unwrap_or_else(|| {
        if !counted {
            return 0;
        }
        request
            .prompt
            .messages
            .iter()
            .map(|m| tokens::count(&m.content))
            .sum()
    });
    Sample {
        intended: None,
        reply: Reply {
            sent: request.sent,
            first_content: request.first_content,
            finished: end.at,
            result: end.result,
            status: end.status,
            input_tokens: input,
            output_tokens: output.unwrap_or_else(|| tokens::count(&request.text)),
            tokens_counted: counted,
            burst_gaps: request.burst_gaps,
            overhead_us: None,
            cache: None,
        },
        itl_us: &request.itl_us,
    }
}

/// A connection that could not be opened, recorded as one failed request.
fn failure(began: Instant, at: Instant, class: ErrorClass, status: Option<u16>) -> Sample<'static> {
    Sample {
        intended: None,
        reply: Reply {
            finished: at,
            result: Err(class),
            status,
            ..Reply::sent_at(began)
        },
        itl_us: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Message as Said, Role};

    fn pending() -> HashMap<u64, Pending> {
        let prompt = Prompt {
            messages: vec![Said::new(Role::User, "hello")],
            max_tokens: 8,
            temperature: None,
        };
        HashMap::from([(7, Pending::new(prompt, Instant::now()))])
    }

    #[test]
    fn deltas_are_timed_at_arrival_and_the_end_carries_usage() {
        let mut pending = pending();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(30);
        assert!(
            read(
                r#"{"type":"delta","id":"7","content":" a"}"#,
                t0,
                &mut pending
            )
            .is_none()
        );
        assert!(
            read(
                r#"{"type":"delta","id":"7","content":" b"}"#,
                t1,
                &mut pending
            )
            .is_none()
        );
        assert!(
            read(
                r#"{"type":"delta","id":"7","content":" c"}"#,
                t1,
                &mut pending
            )
            .is_none()
        );
        let request = &pending[&7];
        assert_eq!(request.first_content, Some(t0));
        assert_eq!(request.itl_us, [30_000, 0]);
        assert_eq!(request.burst_gaps, 1);
        assert_eq!(request.text, " a b c");
        let done = r#"{"type":"done","id":"7","finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":3}}"#;
        let (id, end) = read(done, t1, &mut pending).expect("an end");
        assert_eq!(id, 7);
        let recorded = sample(&pending[&7], &end);
        assert_eq!(
            (recorded.reply.input_tokens, recorded.reply.output_tokens),
            (3, 3)
        );
        assert!(!recorded.reply.tokens_counted);
        assert_eq!(recorded.ttft(), Some(t0.duration_since(pending[&7].sent)));
    }

    #[test]
    fn errors_are_classed_by_status_and_by_whether_the_stream_began() {
        let mut pending = pending();
        let error = r#"{"type":"error","id":"7","status":429,"error":{"message":"x"}}"#;
        let (_, end) = read(error, Instant::now(), &mut pending).expect("an end");
        assert_eq!(end.result, Err(ErrorClass::Http4xx));
        assert_eq!(end.status, Some(429));
        let at = Instant::now();
        read(
            r#"{"type":"delta","id":"7","content":"x"}"#,
            at,
            &mut pending,
        );
        let broken = r#"{"type":"error","id":"7","status":502,"error":{"message":"x"}}"#;
        let (_, end) = read(broken, at, &mut pending).expect("an end");
        assert_eq!(end.result, Err(ErrorClass::StreamBroken));
        assert!(
            read(
                r#"{"type":"delta","id":"8","content":"x"}"#,
                at,
                &mut pending
            )
            .is_none()
        );
        assert!(read("not json", at, &mut pending).is_none());
    }
}
