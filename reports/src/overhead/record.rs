//! What the harness measured: per load level, per side, per round.

use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::model::{ErrorCounts, Summary, percentile};

/// How the load was offered at one level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase", deny_unknown_fields)]
pub enum Load {
    /// This many requests in flight at all times, each sent when the one before it ended.
    Closed { concurrency: u32 },
    /// Arrivals at this many per second, independent of the answers; latency is measured from
    /// each arrival's intended start.
    Open { rate: f64 },
}

impl Load {
    /// The x value of this level in charts: concurrency or rate.
    pub fn amount(self) -> f64 {
        match self {
            Load::Closed { concurrency } => f64::from(concurrency),
            Load::Open { rate } => rate,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Load::Open { .. })
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Load::Closed { concurrency } => write!(f, "c={concurrency}"),
            Load::Open { rate } => write!(f, "{}/s", crate::model::short(*rate)),
        }
    }
}

/// Nearest-rank p50, p90 and p99 of one side in one round, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
}

impl Quantiles {
    /// The quantiles of `histogram`, or `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Quantiles> {
        Some(Quantiles {
            p50: percentile(histogram, 0.50)?,
            p90: percentile(histogram, 0.90)?,
            p99: percentile(histogram, 0.99)?,
        })
    }

    /// The three values with their names, in order.
    pub(super) fn named(self) -> [(&'static str, u64); 3] {
        [("p50", self.p50), ("p90", self.p90), ("p99", self.p99)]
    }
}

/// One side's share of one round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundFigures {
    /// Latency of the successful requests; `None` when none succeeded.
    pub e2e: Option<Quantiles>,
    /// Time to the first content event of the successful streams; `None` unless streamed.
    pub ttft: Option<Quantiles>,
    pub ok: u64,
    pub failed: u64,
    /// How long the side ran, from the first send to the last answer.
    pub secs: f64,
    /// The share of the machine's CPU time its hypervisor took while the side ran (steal, as
    /// in [`GeneratorSample::steal_percent`](crate::model::GeneratorSample)); `None` where it
    /// was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_percent: Option<f64>,
    /// CPU time, user and system, in seconds, that the side's own processes spent while it
    /// ran: the proxy's (not the upstream's behind it), or direct's upstream; `None` where
    /// they are not known (a `--target` without `--gateway-pid`, a `--direct` without
    /// `--direct-pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
}

impl RoundFigures {
    /// Successful requests per second.
    pub fn throughput(&self) -> Option<f64> {
        (self.secs > 0.0 && self.ok > 0).then(|| self.ok as f64 / self.secs)
    }
}

/// Everything one side measured at one level: its rounds, and its distributions over all of
/// them merged (never averaged percentiles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideRecord {
    pub rounds: Vec<RoundFigures>,
    pub e2e: Option<Summary>,
    pub ttft: Option<Summary>,
    /// The `x-gateway-overhead-us` values the side sent, when it sends that header.
    pub header_overhead: Option<Summary>,
    pub errors: ErrorCounts,
    /// Open model: arrivals not sent because every sender was busy past the drop bound.
    pub dropped: u64,
}

impl SideRecord {
    /// Successful requests per second over every round.
    pub fn throughput(&self) -> Option<f64> {
        let ok: u64 = self.rounds.iter().map(|r| r.ok).sum();
        let secs: f64 = self.rounds.iter().map(|r| r.secs).sum();
        (secs > 0.0 && ok > 0).then(|| ok as f64 / secs)
    }

    pub fn ok(&self) -> u64 {
        self.rounds.iter().map(|r| r.ok).sum()
    }

    /// CPU microseconds the side's processes spent per request answered (successfully or
    /// not), over the rounds in which they were read; `None` when they never were.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        let mut read = self
            .rounds
            .iter()
            .filter_map(|r| Some((r.cpu_secs?, r.ok + r.failed)))
            .peekable();
        read.peek()?;
        let (secs, requests) = read.fold((0.0, 0), |(secs, requests), (spent, answered)| {
            (secs + spent, requests + answered)
        });
        (requests > 0).then(|| secs * 1e6 / requests as f64)
    }
}

/// One load level, streamed or not: the direct side and each side through a proxy, whose
/// rounds pair up by index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelRecord {
    pub load: Load,
    pub stream: bool,
    pub direct: SideRecord,
    /// In the order of [`super::OverheadSubject::sides`].
    pub through: Vec<SideRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_request_counts_only_the_rounds_it_was_read_in() {
        let round = |ok, failed, cpu_secs| RoundFigures {
            e2e: None,
            ttft: None,
            ok,
            failed,
            secs: 1.0,
            steal_percent: None,
            cpu_secs,
        };
        let side = |rounds| SideRecord {
            rounds,
            e2e: None,
            ttft: None,
            header_overhead: None,
            errors: ErrorCounts::default(),
            dropped: 0,
        };
        // 0.03 s over 990 + 10 answers, and a round whose processes were not read left out.
        let read = side(vec![
            round(490, 10, Some(0.02)),
            round(500, 0, Some(0.01)),
            round(700, 0, None),
        ]);
        let us = read.cpu_per_request_us().expect("read in two rounds");
        assert!((us - 30.0).abs() < 1e-9, "{us}");
        assert_eq!(side(vec![round(500, 0, None)]).cpu_per_request_us(), None);
        assert_eq!(
            side(vec![round(0, 0, Some(0.01))]).cpu_per_request_us(),
            None
        );
    }
}
