//! The input of a gate: measurements of runs, grouped into A B B A rounds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GateError;
use super::level::GateLevel;
use super::metric::GateMetric;
use crate::model::SATURATED_LAG;
use crate::stats::Scale;

/// The gated numbers of one run at one load level (requests per second, shares, percentiles in
/// microseconds), and how the load generator fared while it measured them.
///
/// Every ratio metric's value is finite and positive, so every ratio of two runs has a
/// logarithm; the error rate is a share from 0 to 1. A metric the run did not measure (no
/// overhead header, no streamed responses) is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct Measurements {
    values: BTreeMap<GateMetric, f64>,
    /// The load generator's worst lateness while it measured, in microseconds.
    pub lag_max_us: u64,
    /// Open-model arrivals the generator could not send on time.
    pub dropped: u64,
    /// The share of the machine's CPU time its hypervisor took while the run measured (steal,
    /// as in [`GeneratorSample::steal_percent`](crate::model::GeneratorSample)); `None` where
    /// it was not read.
    pub steal_percent: Option<f64>,
}

/// The serde form of [`Measurements`], checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    values: BTreeMap<GateMetric, f64>,
    #[serde(default)]
    lag_max_us: u64,
    #[serde(default)]
    dropped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    steal_percent: Option<f64>,
}

impl Measurements {
    /// No metric measured yet; add them with [`Measurements::with`].
    pub fn new() -> Measurements {
        Measurements::default()
    }

    /// Adds a value; a ratio metric's must be finite and positive, the error rate's from 0 to
    /// 1.
    pub fn with(mut self, metric: GateMetric, value: f64) -> Result<Measurements, GateError> {
        if !metric.accepts(value) {
            return Err(GateError::Value { metric, value });
        }
        self.values.insert(metric, value);
        Ok(self)
    }

    pub fn get(&self, metric: GateMetric) -> Option<f64> {
        self.values.get(&metric).copied()
    }

    /// Every answer of the run failed (its error rate is 1).
    pub fn failed_entirely(&self) -> bool {
        self.get(GateMetric::ErrorRate) == Some(1.0)
    }

    /// The generator could not keep up: it woke later than [`SATURATED_LAG`] or dropped
    /// arrivals. The run's figures then describe the client as much as the gateway (a
    /// `harness scenario` run would exit 4).
    pub fn saturated(&self) -> bool {
        self.dropped > 0 || Duration::from_micros(self.lag_max_us) > SATURATED_LAG
    }
}

impl TryFrom<Stored> for Measurements {
    type Error = GateError;

    fn try_from(stored: Stored) -> Result<Measurements, GateError> {
        let start = Measurements {
            values: BTreeMap::new(),
            lag_max_us: stored.lag_max_us,
            dropped: stored.dropped,
            steal_percent: stored.steal_percent,
        };
        stored
            .values
            .into_iter()
            .try_fold(start, |m, (metric, value)| m.with(metric, value))
    }
}

impl From<Measurements> for Stored {
    fn from(measurements: Measurements) -> Stored {
        Stored {
            values: measurements.values,
            lag_max_us: measurements.lag_max_us,
            dropped: measurements.dropped,
            steal_percent: measurements.steal_percent,
        }
    }
}

/// Four runs in the order A B B A: the first and last of side A, the middle two of side B.
///
/// The order cancels a linear drift of the machine (warming up, a neighbour starting) out of
/// the round's log-ratio: both sides sit at the same mean time. In a gate's A/B rounds A is the
/// base and B the candidate; in its A/A rounds both are the base.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Runs 1 and 4.
    pub a: [Measurements; 2],
    /// Runs 2 and 3.
    pub b: [Measurements; 2],
}

impl Round {
    /// A round from its four runs, in the order they ran.
    pub fn abba(a1: Measurements, b1: Measurements, b2: Measurements, a2: Measurements) -> Round {
        Round {
            a: [a1, a2],
            b: [b1, b2],
        }
    }

    /// The round's change of `metric` on its scale: `ln(geomean(B) / geomean(A))` for a ratio,
    /// `mean(B) - mean(A)` for points; `None` if a run did not measure it.
    pub(super) fn change(&self, metric: GateMetric) -> Option<f64> {
        let (a, b) = self.centres(metric, |v| match metric.scale() {
            Scale::Ratio => v.ln(),
            Scale::Points => v,
        })?;
        Some(b - a)
    }

    /// Each side's typical value of `metric`: the geometric mean of its two runs for a ratio,
    /// the mean for points.
    pub(super) fn sides(&self, metric: GateMetric) -> Option<(f64, f64)> {
        match metric.scale() {
            Scale::Ratio => {
                let (a, b) = self.centres(metric, f64::ln)?;
                Some((a.exp(), b.exp()))
            }
            Scale::Points => self.centres(metric, |v| v),
        }
    }

    /// The mean of `map(value)` over side A's runs and over side B's.
    fn centres(&self, metric: GateMetric, map: impl Fn(f64) -> f64) -> Option<(f64, f64)> {
        let centre = |side: &[Measurements; 2]| -> Option<f64> {
            Some((map(side[0].get(metric)?) + map(side[1].get(metric)?)) / 2.0)
        };
        Some((centre(&self.a)?, centre(&self.b)?))
    }

    /// The runs in the order they ran.
    pub(super) fn runs(&self) -> [&Measurements; 4] {
        [&self.a[0], &self.b[0], &self.b[1], &self.a[1]]
    }
}

/// Everything a gate measured: A/B rounds (base vs candidate) and A/A rounds (base vs base).
///
/// The A/A rounds go through the same arithmetic as the A/B rounds; how far their result
/// strays from "no change" is the noise of this machine today, and it decides whether the A/B
/// result can be trusted at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateRuns {
    pub ab: Vec<Round>,
    pub aa: Vec<Round>,
}

/// Which kind of round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// Base vs candidate.
    Ab,
    /// Base vs base: the self-check.
    Aa,
}

impl RoundKind {
    pub fn label(self) -> &'static str {
        match self {
            RoundKind::Ab => "A/B",
            RoundKind::Aa => "A/A",
        }
    }
}

impl GateRuns {
    pub(super) fn rounds(&self, kind: RoundKind) -> &[Round] {
        match kind {
            RoundKind::Ab => &self.ab,
            RoundKind::Aa => &self.aa,
        }
    }

    /// Every run with where it ran: kind, round and run number (both from 1), in order.
    fn each_run(&self) -> impl Iterator<Item = (RunRef, &Measurements)> {
        [RoundKind::Ab, RoundKind::Aa]
            .into_iter()
            .flat_map(move |kind| {
                self.rounds(kind)
                    .iter()
                    .enumerate()
                    .flat_map(move |(round, r)| {
                        r.runs().into_iter().enumerate().map(move |(run, m)| {
                            let at = RunRef {
                                kind,
                                round: round + 1,
                                run: run + 1,
                            };
                            (at, m)
                        })
                    })
            })
    }

    /// Whether every run measured `metric` (`Ok(true)`; runs that failed entirely may lack it),
    /// none did (`Ok(false)`), or only some: then a run is broken, and the error names the first
    /// one without it.
    pub(super) fn measured_everywhere(
        &self,
        level: GateLevel,
        metric: GateMetric,
    ) -> Result<bool, GateError> {
        if self.each_run().all(|(_, m)| m.get(metric).is_none()) {
            return Ok(false);
        }
        // A run whose every answer failed has no latency to give: it still counts in the
        // throughput and the error rate, and its round is left out of the latency metrics.
        let lacking = |m: &Measurements| m.get(metric).is_none() && !m.failed_entirely();
        match self.each_run().find(|(_, m)| lacking(m)) {
            None => Ok(true),
            Some((at, _)) => Err(GateError::Missing { metric, level, at }),
        }
    }

    /// The steal of every run that read it ([`Measurements::steal_percent`]).
    pub fn steal(&self) -> impl Iterator<Item = f64> + '_ {
        self.each_run().filter_map(|(_, m)| m.steal_percent)
    }

    /// The runs whose load generator could not keep up ([`Measurements::saturated`]).
    pub fn saturated(&self) -> Vec<RunRef> {
        self.each_run()
            .filter(|(_, m)| m.saturated())
            .map(|(at, _)| at)
            .collect()
    }
}

/// Where a run sits in a gate: `A/B round 2, run 3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub kind: RoundKind,
    /// From 1.
    pub round: usize,
    /// From 1, in the order A B B A.
    pub run: usize,
}

impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} round {}, run {}",
            self.kind.label(),
            self.round,
            self.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, errors: f64) -> Measurements {
        Measurements::new()
            .with(GateMetric::Throughput, rps)
            .and_then(|m| m.with(GateMetric::ErrorRate, errors))
            .expect("valid")
    }

    #[test]
    fn ratios_compare_by_log_ratio_and_shares_by_difference() {
        let round = Round::abba(
            run(100.0, 0.0),
            run(50.0, 0.04),
            run(200.0, 0.06),
            run(100.0, 0.0),
        );
        // geomean(50, 200) = 100: no change, whatever the arithmetic mean says.
        assert!(
            round
                .change(GateMetric::Throughput)
                .expect("measured")
                .abs()
                < 1e-12
        );
        let sides = round.sides(GateMetric::Throughput).expect("measured");
        assert!((sides.0 - 100.0).abs() < 1e-9 && (sides.1 - 100.0).abs() < 1e-9);
        // A share of 0 has no logarithm: the difference of means, 5 points.
        let change = round.change(GateMetric::ErrorRate).expect("measured");
        assert!((change - 0.05).abs() < 1e-12, "{change}");
        assert_eq!(round.sides(GateMetric::ErrorRate), Some((0.0, 0.05)));
        assert_eq!(round.change(GateMetric::AddedP50), None);
    }

    #[test]
    fn a_run_is_saturated_when_the_generator_was_late_or_dropped_arrivals() {
        let mut m = run(100.0, 0.0);
        assert!(!m.saturated());
        m.lag_max_us = 19_000;
        assert!(!m.saturated());
        m.lag_max_us = 21_000;
        assert!(m.saturated());
        m.lag_max_us = 0;
        m.dropped = 1;
        assert!(m.saturated());
    }
}
