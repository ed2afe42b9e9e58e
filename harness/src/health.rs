//! The load generator watching itself: when its own runtime cannot keep up, the times it takes
//! include waits for a thread, and the figures of those seconds describe the client.
//!
//! A probe task on the run's runtime sleeps [`PROBE`] at a time and records how late it woke:
//! a ready task (a send, an SSE read, the recorder) waits about as long for a worker thread.
//! The run's once-a-second tick reports its own lateness too. Each tick turns the worst
//! lateness into a [`GeneratorSample`] for every second since the previous tick (a tick that
//! came seconds late covers all of them), judged against [`reports::model::SATURATED_LAG`].
//!
//! Each sample also carries the generator's own CPU and the share of the machine's CPU time its
//! hypervisor took (steal): a probe that woke late while the generator had little to do, on a
//! machine whose CPUs were taken from it, was held back by the machine, not by its own load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reports::model::{GeneratorSample, STEAL_NOTED};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::process::{MachineClock, Process, ProcessClock};

/// How often the probe wakes: short enough to see a busy second, long enough to cost nothing.
const PROBE: Duration = Duration::from_millis(10);

/// Watches the runtime it was started on until dropped.
pub struct Health {
    /// The worst lateness since the last sample, in microseconds.
    worst_us: Arc<AtomicU64>,
    probe: JoinHandle<()>,
    process: ProcessClock,
    machine: MachineClock,
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
            machine: MachineClock::new(),
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
        let steal = self.machine.steal_percent();
        let samples = (self.next..=last)
            .map(|second| GeneratorSample::new(second, lag, cpu, steal))
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

/// Mean CPU of the generator over the saturated seconds below which its own work cannot have
/// held its threads back: half a core, where a saturated runtime runs at a core or more.
const LIGHT_WORK: f64 = 50.0;

/// One sentence for the summary and the report when the generator was saturated in some of a
/// run's `seconds`: how many, from when, and whether the machine's hypervisor rather than the
/// generator's own work held it back.
pub fn saturation_warning(generator: &[GeneratorSample], seconds: u32) -> Option<String> {
    let saturated: Vec<&GeneratorSample> = generator.iter().filter(|s| s.saturated).collect();
    let first = saturated.first()?.second;
    let mut warning = format!(
        "load generator saturated in {} of {seconds} s (from {first} s): the figures of those \
         seconds describe the client, not the target",
        saturated.len()
    );
    let mean = |figure: fn(&GeneratorSample) -> Option<f64>| {
        let known: Vec<f64> = saturated.iter().filter_map(|s| figure(s)).collect();
        (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
    };
    let steal = mean(|s| s.steal_percent).filter(|steal| *steal >= STEAL_NOTED);
    match (steal, mean(|s| s.cpu_percent)) {
        (Some(steal), Some(cpu)) if cpu < LIGHT_WORK => warning.push_str(&format!(
            "; in those seconds the generator used {cpu:.0}% of a core while the machine's \
             hypervisor took {steal:.0}% of its CPU time (steal): the machine held it back, \
             and stalled the target too"
        )),
        (Some(steal), _) => warning.push_str(&format!(
            "; the machine's hypervisor also took {steal:.0}% of its CPU time in those seconds \
             (steal)"
        )),
        (None, _) => {}
    }
    Some(warning)
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

    fn second(second: u32, lag_ms: u64, cpu: f64, steal: f64) -> GeneratorSample {
        GeneratorSample::new(second, lag_ms * 1000, Some(cpu), Some(steal))
    }

    #[test]
    fn the_warning_names_the_machine_only_when_its_hypervisor_took_the_time() {
        let quiet = [second(0, 2, 20.0, 0.0), second(1, 2, 20.0, 9.0)];
        assert_eq!(saturation_warning(&quiet, 2), None);

        let busy_generator = [second(0, 2, 30.0, 1.0), second(1, 40, 180.0, 1.0)];
        assert_eq!(
            saturation_warning(&busy_generator, 2).as_deref(),
            Some(
                "load generator saturated in 1 of 2 s (from 1 s): the figures of those seconds \
                 describe the client, not the target"
            )
        );

        // Steal in seconds that were not saturated does not count.
        let stolen = [
            second(0, 2, 10.0, 40.0),
            second(1, 30, 20.0, 12.0),
            second(2, 25, 22.0, 16.0),
        ];
        let warning = saturation_warning(&stolen, 3).expect("saturated");
        assert!(warning.starts_with("load generator saturated in 2 of 3 s (from 1 s)"));
        assert!(
            warning.ends_with(
                "the generator used 21% of a core while the machine's hypervisor took 14% of \
                 its CPU time (steal): the machine held it back, and stalled the target too"
            ),
            "{warning}"
        );

        let both = [second(0, 30, 150.0, 20.0)];
        let warning = saturation_warning(&both, 1).expect("saturated");
        assert!(
            warning.ends_with("hypervisor also took 20% of its CPU time in those seconds (steal)"),
            "{warning}"
        );
    }
}
