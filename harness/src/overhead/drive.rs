//! One side's share of one round: the load of one level sent to one side.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reports::overhead::Load;
use scenarios::client::{Call, Client, Scratch};
use scenarios::load::{self, ArrivalSchedule, Arrivals, Take};
use scenarios::workload::Prompt;

use super::tally::Tally;

/// Open-model senders per arrival per second: room for answers taking up to this long before
/// arrivals wait for a free sender (and, past the schedule's bound, are dropped).
const OPEN_POOL_SECONDS: f64 = 0.05;
/// Fewest open-model senders.
const MIN_OPEN_POOL: usize = 32;

/// The requests every side gets, in the same order: the `k`-th request of a share sends
/// `prompts[k % len]`.
#[derive(Clone)]
pub(crate) struct Requests {
    pub prompts: Arc<[Prompt]>,
    pub model: Arc<str>,
    pub stream: bool,
}

impl Requests {
    fn call(&self, index: usize) -> Call<'_> {
        Call::Chat {
            model: &self.model,
            prompt: &self.prompts[index % self.prompts.len()],
            stream: self.stream,
        }
    }
}

/// Sends `load` to `client` for `length` and tallies the answers.
pub(crate) async fn drive(
    client: &Client,
    requests: &Requests,
    load: Load,
    length: Duration,
) -> Tally {
    let started = Instant::now();
    // Answers may arrive until the client's own timeout after the share ends.
    let deadline = started + length + client.options().timeout;
    let next = Arc::new(AtomicUsize::new(0));
    let senders = match load {
        Load::Closed { concurrency } => concurrency as usize,
        Load::Open { rate } => ((rate * OPEN_POOL_SECONDS).ceil() as usize).max(MIN_OPEN_POOL),
    };
    let schedule = match load {
        Load::Closed { .. } => None,
        // Constant spacing: the same arrival times on every side; the seed plays no part.
        Load::Open { rate } => Some(Arc::new(ArrivalSchedule::new(
            rate,
            Arrivals::Constant,
            length,
            0,
        ))),
    };
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, requests, next) = (client.clone(), requests.clone(), next.clone());
            let schedule = schedule.clone();
            let end = started + length;
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut scratch = Scratch::new();
                loop {
                    let origin = match &schedule {
                        None if Instant::now() >= end => break,
                        None => None,
                        Some(schedule) => match schedule.take(Instant::now()) {
                            Take::Slot { due, dropped } => {
                                tally.drop_arrivals(dropped);
                                load::sleep_until(due).await;
                                Some(due)
                            }
                            Take::Done { dropped } => {
                                tally.drop_arrivals(dropped);
                                break;
                            }
                        },
                    };
                    let call = requests.call(next.fetch_add(1, Ordering::Relaxed));
                    let reply = client.send(call, deadline, &mut scratch).await;
                    tally.record(&reply, origin.unwrap_or(reply.sent));
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for task in tasks {
        // A sender cannot panic on an answer (every failure is a classified reply); a join
        // error would only mean the runtime is shutting down.
        if let Ok(tally) = task.await {
            total.merge(&tally);
        }
    }
    total.finish(started.elapsed())
}
