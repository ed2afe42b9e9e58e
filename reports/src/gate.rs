//! The load gate: does a candidate build of the gateway perform worse than its base, on this
//! machine, today? (`harness gate`.)
//!
//! Base (A) and candidate (B) run the same short scenario in rounds of four runs, A B B A, so a
//! drift of the machine during a round cancels out. Each round gives one paired log-ratio per
//! metric, `ln(geomean(B) / geomean(A))`; logs make a 10% drop and a 10% rise the same size and
//! let ratios average. For each metric the gate computes:
//!
//! - a seeded percentile bootstrap interval of the 20% trimmed mean of the log-ratios
//!   (reported as a relative change, `exp(x) - 1`); trimmed, so that one run disturbed by a
//!   neighbour cannot carry the verdict;
//! - exact one-sided Wilcoxon signed-rank tests that the log-ratios lie beyond the worse, and
//!   beyond the better, edge of the tolerance band;
//! - the same two on A/A rounds, where both sides are the base build: a self-check of how much
//!   this machine moves with no change at all.
//!
//! A metric regressed only when the whole interval is worse than its tolerance and than the
//! largest move of the A/A interval, *and* the test agrees at half the interval's left-out level
//! (2.5% for a 95% interval); an improvement likewise. Otherwise, if the A/A interval reaches
//! beyond the tolerance, the machine cannot resolve a change of that size and the metric is
//! inconclusive; else it is unchanged. A noisy machine raises the bar a change must clear, so
//! it never raises a false alarm, yet a change far larger than the noise is still caught.
//!
//! ```
//! use reports::gate::{GateMetric, GateOptions, GateRuns, GateSubject, Measurements, Round, evaluate};
//!
//! let run = |rps: f64| Measurements::new().with(GateMetric::Throughput, rps);
//! let round = |b: f64| -> Result<Round, reports::gate::GateError> {
//!     Ok(Round::abba(run(1000.0)?, run(b)?, run(b * 1.004)?, run(1002.0)?))
//! };
//! let runs = GateRuns {
//!     ab: (0..6).map(|_| round(880.0)).collect::<Result<_, _>>()?,
//!     aa: (0..6).map(|i| round(1000.0 + f64::from(i))).collect::<Result<_, _>>()?,
//! };
//! let report = evaluate(GateSubject::new("smoke", "main", "feature"), runs, &GateOptions::default())?;
//! assert_eq!(report.exit_code(), 3); // throughput fell by 12%: a regression
//! # Ok::<(), reports::gate::GateError>(())
//! ```

mod html;
mod metric;
mod report;
mod rounds;
pub(crate) mod stats;
mod verdict;

use serde::{Deserialize, Serialize};

pub use html::render_gate;
pub use metric::{Direction, GateMetric, Tolerance, Tolerances};
pub use report::{Estimate, GateReport, MetricGate};
pub use rounds::{GateRuns, Measurements, Round, RoundKind};
pub use verdict::Verdict;

use verdict::Evidence;

/// File name of the serialized [`GateReport`] in the output directory.
pub const GATE_JSON: &str = "gate.json";
/// File name of the rendered report.
pub const GATE_HTML: &str = "gate.html";
/// Version of the `gate.json` schema.
pub const GATE_SCHEMA_VERSION: u32 = 1;

/// Why a gate could not be judged. Each renders as one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("tolerance `{0}` is not a fraction strictly between 0 and 1 (e.g. `3%` or `0.03`)")]
    Tolerance(String),
    #[error("confidence {0} is not between 0.5 and 1 (e.g. 0.95)")]
    Confidence(f64),
    #[error("resamples {0} is too few for a bootstrap interval (at least 100)")]
    Resamples(usize),
    #[error("{metric}: {value} is not a positive finite number")]
    Value { metric: GateMetric, value: f64 },
    #[error("{} round {round}, run {run} has no {metric}, but other runs of the gate have it", kind.label())]
    Missing {
        metric: GateMetric,
        kind: RoundKind,
        round: usize,
        run: usize,
    },
    #[error(
        "{got} {} rounds are too few: at {}% confidence the gate needs at least {need}",
        kind.label(),
        crate::model::short(confidence * 100.0)
    )]
    TooFewRounds {
        kind: RoundKind,
        got: usize,
        need: usize,
        confidence: f64,
    },
    #[error("no run measured any gated metric (throughput, overhead, ttft)")]
    NothingMeasured,
}

/// Confidence level of the intervals, strictly between 0.5 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Confidence(f64);

impl Confidence {
    pub fn new(level: f64) -> Result<Confidence, GateError> {
        if level > 0.5 && level < 1.0 {
            Ok(Confidence(level))
        } else {
            Err(GateError::Confidence(level))
        }
    }

    pub fn level(self) -> f64 {
        self.0
    }

    /// Level of each one-sided test: the share of the interval's tails on one side.
    fn alpha(self) -> f64 {
        (1.0 - self.0) / 2.0
    }

    /// The fewest rounds with which the signed-rank test can reach [`Confidence::alpha`]: with
    /// `n` rounds its smallest p-value is `2^-n`.
    pub fn min_rounds(self) -> usize {
        (1..)
            .find(|&n| 0.5_f64.powi(n) < self.alpha())
            .unwrap_or(i32::MAX) as usize
    }
}

impl TryFrom<f64> for Confidence {
    type Error = GateError;

    fn try_from(level: f64) -> Result<Confidence, GateError> {
        Confidence::new(level)
    }
}

impl From<Confidence> for f64 {
    fn from(confidence: Confidence) -> f64 {
        confidence.0
    }
}

/// Knobs of a gate; the defaults are what CI uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOptions {
    pub tolerances: Tolerances,
    pub confidence: Confidence,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// Seed of the resampling, so the same runs always give the same report.
    pub seed: u64,
}

impl Default for GateOptions {
    fn default() -> GateOptions {
        GateOptions {
            tolerances: Tolerances::default(),
            confidence: Confidence(0.95),
            resamples: 2_000,
            seed: 0x6761_7465,
        }
    }
}

/// What was compared, for the report's title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSubject {
    pub scenario: String,
    /// The base build: a revision or a binary path.
    pub base: String,
    /// The candidate build.
    pub cand: String,
}

impl GateSubject {
    pub fn new(
        scenario: impl Into<String>,
        base: impl Into<String>,
        cand: impl Into<String>,
    ) -> GateSubject {
        GateSubject {
            scenario: scenario.into(),
            base: base.into(),
            cand: cand.into(),
        }
    }
}

/// Judges the runs of a gate.
///
/// Every metric that every run measured is judged; one that no run measured is listed in
/// [`GateReport::not_measured`]; one that only some runs measured is an error naming the first
/// run without it.
pub fn evaluate(
    subject: GateSubject,
    runs: GateRuns,
    options: &GateOptions,
) -> Result<GateReport, GateError> {
    if options.resamples < 100 {
        return Err(GateError::Resamples(options.resamples));
    }
    let need = options.confidence.min_rounds();
    for kind in [RoundKind::Ab, RoundKind::Aa] {
        let got = runs.rounds(kind).len();
        if got < need {
            return Err(GateError::TooFewRounds {
                kind,
                got,
                need,
                confidence: options.confidence.level(),
            });
        }
    }
    let mut metrics = Vec::new();
    let mut not_measured = Vec::new();
    for (index, metric) in GateMetric::ALL.into_iter().enumerate() {
        if runs.measured_everywhere(metric)? {
            metrics.push(judge(metric, index as u64, &runs, options));
        } else {
            not_measured.push(metric);
        }
    }
    if metrics.is_empty() {
        return Err(GateError::NothingMeasured);
    }
    Ok(GateReport {
        schema_version: GATE_SCHEMA_VERSION,
        subject,
        settings: *options,
        verdict: Verdict::combine(metrics.iter().map(|m| m.verdict)),
        metrics,
        not_measured,
        runs,
    })
}

/// The gate of one metric that every run measured.
fn judge(metric: GateMetric, index: u64, runs: &GateRuns, options: &GateOptions) -> MetricGate {
    let tolerance = options.tolerances.of(metric);
    let estimate = |kind: RoundKind, stream: u64| {
        let log_ratios: Vec<f64> = runs
            .rounds(kind)
            .iter()
            .filter_map(|round| round.log_ratio(metric))
            .collect();
        Estimate::of(
            log_ratios,
            metric.direction(),
            tolerance,
            options,
            options.seed.wrapping_add(2 * index + stream),
        )
    };
    let (ab, aa) = (estimate(RoundKind::Ab, 0), estimate(RoundKind::Aa, 1));
    let sides: Vec<(f64, f64)> = runs
        .ab
        .iter()
        .filter_map(|round| round.geomeans(metric))
        .collect();
    let geomean = |pick: fn(&(f64, f64)) -> f64| {
        (sides.iter().map(|s| pick(s).ln()).sum::<f64>() / sides.len() as f64).exp()
    };
    let verdict = Evidence {
        direction: metric.direction(),
        tolerance,
        interval: ab.interval,
        aa_interval: aa.interval,
        p_worse: ab.p_worse,
        p_better: ab.p_better,
        alpha: options.confidence.alpha(),
    }
    .verdict();
    MetricGate {
        metric,
        direction: metric.direction(),
        tolerance,
        base: geomean(|s| s.0),
        cand: geomean(|s| s.1),
        ab,
        aa,
        verdict,
    }
}
