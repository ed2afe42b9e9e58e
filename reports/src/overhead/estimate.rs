//! From per-round figures to an estimate with an interval.
//!
//! The centre is the 20% trimmed mean over rounds and the interval a seeded percentile
//! bootstrap of it (`crate::stats`, as the gate's), so one round hit by a neighbour on the machine
//! moves neither much, and the same rounds always give the same report.

use serde::{Deserialize, Serialize};

use super::record::{Quantiles, RoundFigures};
use crate::stats::{Resampling, bootstrap, trimmed_mean};

/// Confidence of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2_000;
/// Seed of the resampling.
pub const SEED: u64 = 0x6f76_6572;

/// A value estimated over rounds, with its interval at [`CONFIDENCE`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The trimmed mean of `values` and its bootstrap interval; `None` with fewer than two
    /// values, which give no interval.
    pub fn of(mut values: Vec<f64>) -> Option<Interval> {
        if values.len() < 2 {
            return None;
        }
        let resampling = Resampling {
            confidence: CONFIDENCE,
            resamples: RESAMPLES,
            seed: SEED,
        };
        let (low, high) = bootstrap([&values], resampling, |[v]| Some(trimmed_mean(v)))?;
        Some(Interval {
            estimate: trimmed_mean(&mut values),
            low,
            high,
        })
    }

    fn map(self, f: impl Fn(f64) -> f64) -> Interval {
        Interval {
            estimate: f(self.estimate),
            low: f(self.low),
            high: f(self.high),
        }
    }
}

/// Added time at p50, p90 and p99: side minus direct, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Added {
    pub p50: Interval,
    pub p90: Interval,
    pub p99: Interval,
}

impl Added {
    /// Per round, the side's percentile minus direct's of the same round; then over rounds.
    /// Rounds where either side had no successful request are left out.
    pub(super) fn between(
        side: &[RoundFigures],
        direct: &[RoundFigures],
        pick: fn(&RoundFigures) -> Option<Quantiles>,
    ) -> Option<Added> {
        let pairs: Vec<(Quantiles, Quantiles)> = side
            .iter()
            .zip(direct)
            .filter_map(|(s, d)| Some((pick(s)?, pick(d)?)))
            .collect();
        let at = |index: usize| {
            let differences = pairs
                .iter()
                .map(|(s, d)| s.named()[index].1 as f64 - d.named()[index].1 as f64)
                .collect();
            Interval::of(differences)
        };
        Some(Added {
            p50: at(0)?,
            p90: at(1)?,
            p99: at(2)?,
        })
    }

    /// The three intervals with their names, in order.
    pub fn named(&self) -> [(&'static str, Interval); 3] {
        [("p50", self.p50), ("p90", self.p90), ("p99", self.p99)]
    }
}

/// The side's throughput over `base`'s (direct's, or another side's in the same rounds), from
/// the per-round log-ratios (so a round at half and one at double cancel out), as a plain
/// ratio.
pub(super) fn throughput_ratio(side: &[RoundFigures], base: &[RoundFigures]) -> Option<Interval> {
    let log_ratios = side
        .iter()
        .zip(base)
        .filter_map(|(s, d)| Some((s.throughput()? / d.throughput()?).ln()))
        .collect();
    Interval::of(log_ratios).map(|i| i.map(f64::exp))
}

/// One side's own p50 latency over rounds (so two measurements of the same path can be checked
/// to agree).
pub(super) fn p50_over_rounds(rounds: &[RoundFigures]) -> Option<Interval> {
    Interval::of(
        rounds
            .iter()
            .filter_map(|r| r.e2e.map(|q| q.p50 as f64))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(p50: u64, p99: u64, ok: u64) -> RoundFigures {
        RoundFigures {
            e2e: Some(Quantiles {
                p50,
                p90: p50 + 10,
                p99,
            }),
            ttft: None,
            ok,
            failed: 0,
            secs: 1.0,
            steal_percent: None,
            cpu_secs: None,
        }
    }

    #[test]
    fn added_time_is_paired_per_round() {
        // Direct drifts from 100 to 300 us; the side stays 50 us (p50) and 200 us (p99) above.
        let direct: Vec<_> = (0..6)
            .map(|i| round(100 + 40 * i, 400 + 40 * i, 1000))
            .collect();
        let side: Vec<_> = (0..6)
            .map(|i| round(150 + 40 * i, 600 + 40 * i, 800))
            .collect();
        let added = Added::between(&side, &direct, |r| r.e2e).expect("six rounds");
        assert_eq!(
            added.p50,
            Interval {
                estimate: 50.0,
                low: 50.0,
                high: 50.0
            }
        );
        assert_eq!(added.p99.estimate, 200.0);
        let ratio = throughput_ratio(&side, &direct).expect("six rounds");
        assert!((ratio.estimate - 0.8).abs() < 1e-9, "{ratio:?}");
        assert!(Added::between(&side, &direct, |r| r.ttft).is_none());
    }

    #[test]
    fn rounds_without_answers_are_left_out_and_one_round_is_no_interval() {
        let direct = [round(100, 200, 10), round(100, 200, 10)];
        let mut side = [round(130, 260, 10), round(130, 260, 10)];
        side[1].e2e = None;
        side[1].ok = 0;
        assert!(Added::between(&side, &direct, |r| r.e2e).is_none());
        assert!(throughput_ratio(&side, &direct).is_none());
        let interval = p50_over_rounds(&direct).expect("two rounds");
        // It shares a value with [100, 102].
        assert!(
            interval.low <= 102.0 && 100.0 <= interval.high,
            "{interval:?}"
        );
    }
}
