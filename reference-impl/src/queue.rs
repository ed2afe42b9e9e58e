//! Per-provider admission: a concurrency limit with a bounded, prioritised wait queue.
//!
//! Contract:
//! - At most `max_concurrent` requests hold a [`QueuePermit`] at once. The permit frees its slot
//!   when dropped, so a cancelled or panicking request cannot leak one.
//! - A request that finds every slot taken waits in a queue of at most `max_queued` entries,
//!   served highest [`Priority`] first and first-come first-served within a priority. A freed
//!   slot passes straight to the next waiter, so a late arrival cannot overtake the queue.
//! - A request that finds the queue full is refused at once ([`QueueError::Full`], a 503 with
//!   `retry-after` at the gateway); one that waits longer than `max_wait_ms` gives up
//!   ([`QueueError::Timeout`], a 504). A waiter that is cancelled leaves the queue immediately.
//! - [`RequestQueue::stats`] reports depth, in-flight, utilization, outcome counts and a
//!   histogram of queue wait times.
//!
//! ```
//! # use reference_impl::queue::{Priority, QueueConfig, RequestQueue};
//! # async fn call_provider() {}
//! # async fn handle() -> Result<(), reference_impl::queue::QueueError> {
//! let queue = RequestQueue::new(QueueConfig::default());
//! let _permit = queue.acquire(Priority::NORMAL).await?; // held for the upstream call
//! call_provider().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::limiter::Tier;

/// `[queue]` configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Requests in flight to one provider at once.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a slot; more are refused at once.
    pub max_queued: usize,
    /// Longest a request waits for a slot.
    pub max_wait_ms: u64,
    /// What a refusal for a full queue tells the client to wait.
    pub retry_after_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 10,
            max_queued: 100,
            max_wait_ms: 30_000,
            retry_after_secs: 1,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), QueueConfigError> {
        if self.max_concurrent == 0 {
            return Err(QueueConfigError("max_concurrent"));
        }
        if self.max_wait_ms == 0 {
            return Err(QueueConfigError("max_wait_ms"));
        }
        Ok(())
    }
}

/// An invalid `[queue]` setting, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue.{0} must be at least 1")]
pub struct QueueConfigError(&'static str);

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Every slot and every queue place is taken (503 with `retry-after`).
    #[error("request queue full, retry in {retry_after:?}")]
    Full { retry_after: Duration },
    /// Waited `max_wait_ms` without getting a slot (504).
    #[error("waited {waited:?} for a free slot")]
    Timeout { waited: Duration },
}

/// Scheduling priority: higher is served first. From the key's tier or an `x-priority` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Priority(pub u8);

impl Priority {
    pub const LOW: Self = Self(0);
    pub const NORMAL: Self = Self(1);
    pub const HIGH: Self = Self(2);

    /// Parses an `x-priority` header: `low`, `normal`, `high` or a number 0-255.
    pub fn from_header(value: &str) -> Option<Self> {
        match value.trim() {
            v if v.eq_ignore_ascii_case("low") => Some(Self::LOW),
            v if v.eq_ignore_ascii_case("normal") => Some(Self::NORMAL),
            v if v.eq_ignore_ascii_case("high") => Some(Self::HIGH),
            v => v.parse().ok().map(Self),
        }
    }
}

impl From<Tier> for Priority {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::Free => Self::LOW,
            Tier::Pro => Self::NORMAL,
            Tier::Enterprise => Self::HIGH,
        }
    }
}

/// Upper bounds of the wait-time histogram buckets, in seconds (Prometheus `le`).
pub const WAIT_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

/// A cumulative histogram of queue waits, ready for Prometheus text output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitHistogram {
    /// `(le seconds, cumulative count)` for each of [`WAIT_BUCKETS`]; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

/// A snapshot for `/metrics` and `/admin/performance/request-queue`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    pub max_concurrent: usize,
    pub in_flight: usize,
    pub depth: usize,
    /// `in_flight / max_concurrent`.
    pub utilization: f64,
    pub admitted: u64,
    pub rejected_full: u64,
    pub timed_out: u64,
    /// Waits of requests that got a slot (zero for those admitted at once).
    pub wait: WaitHistogram,
}

/// The queue for one provider. Cheap to clone; clones share the slots.
#[derive(Debug, Clone)]
pub struct RequestQueue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: QueueConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    /// Waiters by (reversed priority, arrival): the first entry is the next to serve.
    waiters: BTreeMap<(std::cmp::Reverse<Priority>, u64), oneshot::Sender<()>>,
    next_ticket: u64,
    admitted: u64,
    rejected_full: u64,
    timed_out: u64,
    wait_counts: [u64; WAIT_BUCKETS.len()],
    wait_sum: Duration,
}

/// A held slot; dropping it frees the slot or hands it to the next waiter.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct QueuePermit {
    shared: Arc<Shared>,
}

impl RequestQueue {
    pub fn new(config: QueueConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::default(),
            }),
        }
    }

    /// Waits for a slot at `priority`.
    pub async fn acquire(&self, priority: Priority) -> Result<QueuePermit, QueueError> {
        let shared = &self.shared;
        let (ticket, granted) = {
            let mut state = shared.lock();
            if state.in_flight < shared.config.max_concurrent && state.waiters.is_empty() {
                state.in_flight += 1;
                state.record_admission(Duration::ZERO);
                return Ok(self.permit());
            }
            if state.waiters.len() >= shared.config.max_queued {
                state.rejected_full += 1;
                return Err(QueueError::Full {
                    retry_after: Duration::from_secs(shared.config.retry_after_secs),
                });
            }
            let (sender, receiver) = oneshot::channel();
            let ticket = (std::cmp::Reverse(priority), state.next_ticket);
            state.next_ticket += 1;
            state.waiters.insert(ticket, sender);
            (ticket, receiver)
        };
        let started = Instant::now();
        let mut waiter = Waiter {
            shared,
            ticket,
            granted,
            done: false,
        };
        let max_wait = Duration::from_millis(shared.config.max_wait_ms);
        // The sender stays in `waiters` until it grants, so the only failure here is the timeout.
        if let Ok(Ok(())) = tokio::time::timeout(max_wait, &mut waiter.granted).await {
            waiter.done = true;
            shared.lock().record_admission(started.elapsed());
            return Ok(self.permit());
        }
        // Leaves the queue, or passes on a slot granted just as the wait ran out.
        drop(waiter);
        shared.lock().timed_out += 1;
        Err(QueueError::Timeout {
            waited: started.elapsed(),
        })
    }

    pub fn stats(&self) -> QueueStats {
        let config = &self.shared.config;
        let state = self.shared.lock();
        let mut cumulative = 0;
        let buckets = WAIT_BUCKETS
            .iter()
            .zip(state.wait_counts)
            .map(|(le, count)| {
                cumulative += count;
                (*le, cumulative)
            })
            .collect();
        QueueStats {
            max_concurrent: config.max_concurrent,
            in_flight: state.in_flight,
            depth: state.waiters.len(),
            utilization: state.in_flight as f64 / config.max_concurrent as f64,
            admitted: state.admitted,
            rejected_full: state.rejected_full,
            timed_out: state.timed_out,
            wait: WaitHistogram {
                buckets,
                sum_secs: state.wait_sum.as_secs_f64(),
                count: state.admitted,
            },
        }
    }

    fn permit(&self) -> QueuePermit {
        QueuePermit {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A queued request; if its future is dropped while waiting, it leaves the queue (and passes on
/// a slot that was granted to it in the meantime).
struct Waiter<'a> {
    shared: &'a Shared,
    ticket: (std::cmp::Reverse<Priority>, u64),
    granted: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        if self.granted.try_recv().is_ok() {
            self.shared.release(&mut state);
        } else {
            state.waiters.remove(&self.ticket);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a plain store of consistent values, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a freed slot to the first waiter still waiting, or returns it to the pool.
    fn release(&self, state: &mut State) {
        while let Some((_, sender)) = state.waiters.pop_first() {
            if sender.send(()).is_ok() {
                return;
            }
        }
        state.in_flight -= 1;
    }
}

impl State {
    fn record_admission(&mut self, waited: Duration) {
        self.admitted += 1;
        self.wait_sum += waited;
        let secs = waited.as_secs_f64();
        if let Some(bucket) = WAIT_BUCKETS.iter().position(|le| secs <= *le) {
            self.wait_counts[bucket] += 1;
        }
    }
}

impl Drop for QueuePermit {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        self.shared.release(&mut state);
    }
}
