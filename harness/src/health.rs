//! The load generator watching itself: when its own runtime cannot keep up, the times it takes
//! include waits for a thread, and the figures of those seconds describe the client.
//!
//! A probe task on the run's runtime sleeps [`PROBE`] at a time and records how late it woke:
//! a ready task (a send, an SSE read, the recorder) waits about as long for a worker thread.
//! The run's once-a-second tick reports its own lateness too. Each tick turns the worst
//! lateness into a [`GeneratorSample`] for every second since the previous tick (a tick that
//! came seconds late covers all of them), judged against [`reports::model::SATURATED_LAG`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reports::model::GeneratorSample;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::process::{Process, ProcessClock};

/// How often the probe wakes: short enough to see a busy second, long enough to cost nothing.
const PROBE: Duration = Duration::from_millis(10);

/// Watches the runtime it was started on until dropped.
pub struct Health {
    /// The worst lateness since the last sample, in microseconds.
    worst_us: Arc<AtomicU64>,
    probe: JoinHandle<()>,
    process: ProcessClock,
    /// The first second not sampled yet.
    next: u32,
}

impl Health {
    /// Starts the probe on the current runtime.
    pub fn start() -> Health {
        let worst_us = Arc::new(AtomicU64::new(0));
        let probe = tokio::spawn(probe(Arc::clone(&worst_us)));
        Health {
            worst_us,
            probe,
            process: ProcessClock::new(Process::This),
            next: 0,
        }
    }

    /// Counts a lateness seen elsewhere (the run's own tick) like the probe's.
    pub fn note_late(&self, late: Duration) {
        let late = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.worst_us.fetch_max(late, Ordering::Relaxed);
    }

    /// The generator's health since the previous call: one sample for every second from the
    /// first not sampled yet through `last`, each with the worst lateness of the whole stretch.
    pub fn sample_through(&mut self, last: u32) -> Vec<GeneratorSample> {
        if last < self.next {
            return Vec::new();
        }
        let lag = self.worst_us.swap(0, Ordering::Relaxed);
        let cpu = self.process.cpu_percent();
        let samples = (self.next..=last)
            .map(|second| GeneratorSample::new(second, lag, cpu))
            .collect();
        self.next = last + 1;
        samples
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

async fn probe(worst_us: Arc<AtomicU64>) {
    loop {
        let due = Instant::now() + PROBE;
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due);
        let late = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        worst_us.fetch_max(late, Ordering::Relaxed);
    }
}

/// One sentence for the summary and the report when the generator was saturated: how many
/// seconds, from when.
pub fn saturation_warning(saturated: &[u32], seconds: u32) -> Option<String> {
    let first = saturated.first()?;
    Some(format!(
        "load generator saturated in {} of {seconds} s (from {first} s): the figures of those \
         seconds describe the client, not the target",
        saturated.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // One thread runs both this test and the probe, as a saturated runtime would.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_seen_as_lag() {
        let mut health = Health::start();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(health.sample_through(0).len(), 1);
        // Hold the only thread: the probe cannot run until it is free again.
        std::thread::sleep(Duration::from_millis(80));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let busy = health.sample_through(3);
        assert_eq!(
            busy.iter().map(|s| s.second).collect::<Vec<_>>(),
            [1, 2, 3],
            "a late tick covers every second since the last"
        );
        assert!(busy.iter().all(|s| s.saturated), "{busy:?}");
        assert!(busy[0].lag_max_us >= 40_000, "{busy:?}");
        assert!(busy[0].cpu_percent.is_some());
        assert!(health.sample_through(3).is_empty());
    }
}
