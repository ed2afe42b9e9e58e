//! The input of a gate: measurements of runs, grouped into A B B A rounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::GateError;
use super::metric::GateMetric;
use crate::model::RunResult;

/// The gated numbers of one run: requests per second, percentiles in microseconds.
///
/// Every value is finite and positive, so every ratio of two runs has a logarithm. A metric the
/// run did not measure (no overhead header, no streamed responses) is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<GateMetric, f64>",
    into = "BTreeMap<GateMetric, f64>"
)]
pub struct Measurements(BTreeMap<GateMetric, f64>);

impl Measurements {
    /// No metric measured yet; add them with [`Measurements::with`].
    pub fn new() -> Measurements {
        Measurements::default()
    }

    /// Every gated metric the run measured.
    pub fn from_run(run: &RunResult) -> Measurements {
        Measurements(
            GateMetric::ALL
                .into_iter()
                .filter_map(|metric| Some((metric, metric.value(run)?)))
                .collect(),
        )
    }

    /// Adds a value; it must be finite and positive.
    pub fn with(mut self, metric: GateMetric, value: f64) -> Result<Measurements, GateError> {
        if !(value.is_finite() && value > 0.0) {
            return Err(GateError::Value { metric, value });
        }
        self.0.insert(metric, value);
        Ok(self)
    }

    pub fn get(&self, metric: GateMetric) -> Option<f64> {
        self.0.get(&metric).copied()
    }
}

impl TryFrom<BTreeMap<GateMetric, f64>> for Measurements {
    type Error = GateError;

    fn try_from(values: BTreeMap<GateMetric, f64>) -> Result<Measurements, GateError> {
        values
            .into_iter()
            .try_fold(Measurements::new(), |m, (metric, value)| {
                m.with(metric, value)
            })
    }
}

impl From<Measurements> for BTreeMap<GateMetric, f64> {
    fn from(measurements: Measurements) -> BTreeMap<GateMetric, f64> {
        measurements.0
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

    /// `ln(geomean(B) / geomean(A))` of `metric`; `None` if a run did not measure it.
    pub(super) fn log_ratio(&self, metric: GateMetric) -> Option<f64> {
        let log_sum = |side: &[Measurements; 2]| -> Option<f64> {
            Some(side[0].get(metric)?.ln() + side[1].get(metric)?.ln())
        };
        Some((log_sum(&self.b)? - log_sum(&self.a)?) / 2.0)
    }

    /// Geometric mean of `metric` over side A and over side B.
    pub(super) fn geomeans(&self, metric: GateMetric) -> Option<(f64, f64)> {
        let geomean = |side: &[Measurements; 2]| -> Option<f64> {
            Some((side[0].get(metric)? * side[1].get(metric)?).sqrt())
        };
        Some((geomean(&self.a)?, geomean(&self.b)?))
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

    /// Whether every run measured `metric` (`Ok(true)`), none did (`Ok(false)`), or only some:
    /// then a run is broken, and the error names the first one without it.
    pub(super) fn measured_everywhere(&self, metric: GateMetric) -> Result<bool, GateError> {
        let runs = || {
            [RoundKind::Ab, RoundKind::Aa].into_iter().flat_map(|kind| {
                self.rounds(kind)
                    .iter()
                    .enumerate()
                    .flat_map(move |(round, r)| {
                        r.runs()
                            .into_iter()
                            .enumerate()
                            .map(move |(run, m)| (kind, round + 1, run + 1, m))
                    })
            })
        };
        if runs().all(|(.., m)| m.get(metric).is_none()) {
            return Ok(false);
        }
        match runs().find(|(.., m)| m.get(metric).is_none()) {
            None => Ok(true),
            Some((kind, round, run, _)) => Err(GateError::Missing {
                metric,
                kind,
                round,
                run,
            }),
        }
    }
}
