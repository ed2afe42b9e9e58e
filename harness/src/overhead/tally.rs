//! What one side answered: histograms and counts of one round, and of all its rounds.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reports::model::{ErrorCounts, Summary, new_histogram};
use reports::overhead::{Quantiles, RoundFigures, SideRecord};
use scenarios::recorder::Reply;

/// The answers of one side in one round (or one sender's share of it).
pub(crate) struct Tally {
    e2e: Histogram<u64>,
    ttft: Histogram<u64>,
    /// `x-gateway-overhead-us` values, when the side sends the header.
    header: Histogram<u64>,
    ok: u64,
    errors: ErrorCounts,
    dropped: u64,
    elapsed: Duration,
}

fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

/// Records into an auto-resizing histogram, which grows to fit; only a value beyond what any
/// histogram can hold is clamped.
fn record(histogram: &mut Histogram<u64>, value: u64) {
    if histogram.record(value).is_err() {
        histogram.saturating_record(value);
    }
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            e2e: new_histogram(),
            ttft: new_histogram(),
            header: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            dropped: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Records one reply, its times measured from `origin`: the send (closed model) or the
    /// intended start (open model).
    pub fn record(&mut self, reply: &Reply, origin: Instant) {
        if let Err(class) = reply.result {
            self.errors.record(class);
            return;
        }
        self.ok += 1;
        record(&mut self.e2e, micros(origin, reply.finished));
        if let Some(first) = reply.first_content {
            record(&mut self.ttft, micros(origin, first));
        }
        if let Some(us) = reply.overhead_us {
            record(&mut self.header, us);
        }
    }

    /// Counts arrivals the open model could not send.
    pub fn drop_arrivals(&mut self, dropped: u64) {
        self.dropped += dropped;
    }

    /// Adds another sender's share of the same round.
    pub fn merge(&mut self, other: &Tally) {
        // Histograms of the project's precision grow to fit, so adding cannot fail.
        let _ = self.e2e.add(&other.e2e);
        let _ = self.ttft.add(&other.ttft);
        let _ = self.header.add(&other.header);
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        self.dropped += other.dropped;
    }

    /// How long the round took, from the first send to the last answer.
    pub fn finish(mut self, elapsed: Duration) -> Tally {
        self.elapsed = elapsed;
        self
    }

    /// Quantiles of the `x-gateway-overhead-us` values; `None` when the side sent none.
    pub fn header(&self) -> Option<Quantiles> {
        Quantiles::of(&self.header)
    }

    /// Open-model arrivals that could not be sent on time.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn figures(&self) -> RoundFigures {
        RoundFigures {
            e2e: Quantiles::of(&self.e2e),
            ttft: Quantiles::of(&self.ttft),
            ok: self.ok,
            failed: self.errors.total(),
            secs: self.elapsed.as_secs_f64(),
            steal_percent: None,
            cpu_secs: None,
        }
    }
}

/// What was read of the machine and of the side's processes while one side's round ran.
pub(super) struct Readings {
    /// The share of the machine's CPU time its hypervisor took.
    pub steal_percent: Option<f64>,
    /// The CPU time the side's processes spent, where they are known.
    pub cpu: Option<Duration>,
}

/// Every round of one side at one level.
pub(super) struct SideTally {
    rounds: Vec<RoundFigures>,
    merged: Tally,
}

impl SideTally {
    pub fn new() -> SideTally {
        SideTally {
            rounds: Vec::new(),
            merged: Tally::new(),
        }
    }

    /// Adds a finished round and what was read while it ran, and returns its figures.
    pub fn push(&mut self, round: &Tally, readings: Readings) -> RoundFigures {
        let figures = RoundFigures {
            steal_percent: readings.steal_percent,
            cpu_secs: readings.cpu.map(|cpu| cpu.as_secs_f64()),
            ..round.figures()
        };
        self.rounds.push(figures);
        self.merged.merge(round);
        figures
    }

    pub fn record(self) -> SideRecord {
        let merged = &self.merged;
        SideRecord {
            e2e: Summary::of(&merged.e2e),
            ttft: Summary::of(&merged.ttft),
            header_overhead: Summary::of(&merged.header),
            errors: merged.errors,
            dropped: merged.dropped,
            rounds: self.rounds,
        }
    }
}
