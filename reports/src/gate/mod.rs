//! The load gate: does a candidate build of the gateway perform worse than its base, on this
//! machine, today? (`harness gate`.)
//!
//! Base (A) and candidate (B) are measured in rounds of four runs, A B B A, so a drift of the
//! machine during a round cancels out; every run measures each [`GateLevel`] (one request at a
//! time, an open-model rate streamed and not), and each level is judged on its own. Each round
//! gives one paired change per metric: for amounts the log-ratio `ln(geomean(B) / geomean(A))`
//! (logs make a 10% drop and a 10% rise the same size and let ratios average), for the error
//! rate the difference of the sides' means in points (a share of 0 has no logarithm). For each
//! metric the gate computes:
//!
//! - a seeded percentile bootstrap interval of the 20% trimmed mean of the changes (ratios
//!   reported as a relative change, `exp(x) - 1`); trimmed, so that one run disturbed by a
//!   neighbour cannot carry the verdict;
//! - exact one-sided Wilcoxon signed-rank tests that the changes lie beyond the worse, and
//!   beyond the better, edge of the tolerance band;
//! - the same two on A/A rounds, where both sides are the base build: a self-check of how much
//!   this machine moves with no change at all.
//!
//! The interval is judged by the equivalence rule all comparisons share
//! ([`crate::stats::Verdict::judge`]), with the metric's tolerance as the margin: unchanged when
//! it lies within the tolerance, inconclusive when it straddles an edge of it. A change wholly
//! beyond the tolerance is a regression (or an improvement) only when it is also wholly beyond
//! the A/A interval and the signed-rank test agrees at half the interval's left-out level (2.5%
//! for a 95% interval); otherwise the machine moved as much with no change at all, and the
//! metric is inconclusive. A noisy machine raises the bar a change must clear, so it never
//! raises a false alarm, yet a change far larger than the noise is still caught; the
//! tolerances are set from the A/A noise, so that two identical builds come out unchanged.
//!
//! A level's verdict is the most severe of its metrics', except that an inconclusive tail
//! ([`GateMetric::is_tail`]) does not count: a p99 of a half-second run rests on a few
//! requests, and with two identical builds the added p99's interval crossed its tolerance in 8
//! of 10 A/A gates on the development machine. A tail still fails the gate when it is a
//! regression.
//!
//! ```
//! use reports::gate::{GateLevel, GateMetric, GateOptions, GateRuns, GateSubject, Measurements, Round, evaluate};
//! use reports::overhead::Load;
//!
//! let run = |rps: f64| Measurements::new().with(GateMetric::Throughput, rps);
//! let round = |b: f64| -> Result<Round, reports::gate::GateError> {
//!     Ok(Round::abba(run(1000.0)?, run(b)?, run(b * 1.004)?, run(1002.0)?))
//! };
//! let runs = GateRuns {
//!     ab: (0..6).map(|_| round(600.0)).collect::<Result<_, _>>()?,
//!     aa: (0..6).map(|i| round(1000.0 + f64::from(i))).collect::<Result<_, _>>()?,
//! };
//! let level = GateLevel { load: Load::Closed { concurrency: 1 }, stream: false };
//! let report = evaluate(GateSubject::new("main", "feature"), vec![(level, runs)], &GateOptions::default())?;
//! assert_eq!(report.exit_code(), 3); // throughput fell by 40%, beyond its 25% tolerance
//! # Ok::<(), reports::gate::GateError>(())
//! ```

mod html;
mod level;
mod metric;
mod report;
mod rounds;

use serde::{Deserialize, Serialize};

pub use crate::stats::{Direction, Scale, Verdict};
pub use html::render_gate;
pub use level::GateLevel;
pub use metric::{GateMetric, Tolerance, Tolerances};
pub use report::{Estimate, GateReport, LevelGate, MetricGate};
pub use rounds::{GateRuns, Measurements, Round, RoundKind, RunRef};

use crate::stats::{Resampling, clears};

/// File name of the serialized [`GateReport`] in the output directory.
pub const GATE_JSON: &str = "gate.json";
/// File name of the rendered report.
pub const GATE_HTML: &str = "gate.html";
/// Version of the `gate.json` schema: 3 has a tolerance per metric, and verdicts by the
/// equivalence rule.
pub const GATE_SCHEMA_VERSION: u32 = 3;

/// Why a gate could not be judged. Each renders as one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("tolerance `{0}` is not a fraction strictly between 0 and 1 (e.g. `3%` or `0.03`)")]
    Tolerance(String),
    #[error("confidence {0} is not between 0.5 and 1 (e.g. 0.95)")]
    Confidence(f64),
    #[error("resamples {0} is too few for a bootstrap interval (at least 100)")]
    Resamples(usize),
    #[error("{metric}: {value} is not {}", metric.expects())]
    Value { metric: GateMetric, value: f64 },
    #[error("{level}: {at} has no {metric}, but other runs of the gate have it")]
    Missing {
        metric: GateMetric,
        level: GateLevel,
        at: RunRef,
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
    #[error("no run measured any gated metric (throughput, errors, added latency, overhead, ttft)")]
    NothingMeasured,
    #[error("no load level to judge")]
    NoLevels,
    #[error(
        "unknown metric `{0}` (expected one of: throughput, errors, added_p50, added_p99, overhead_p50, overhead_p99, ttft_p50, ttft_p99)"
    )]
    UnknownMetric(String),
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

    /// The fewest rounds with which the signed-rank test can reach this confidence's one-sided
    /// level (`alpha`): with `n` rounds its smallest p-value is `2^-n`.
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

/// What was compared, for the report's title, and how the gate's load was chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateSubject {
    /// The base build: a revision, a binary path or a command.
    pub base: String,
    /// The candidate build.
    pub cand: String,
    /// The capacity probe that set the open-model rate, when one ran.
    pub probe: Option<CapacityProbe>,
}

impl GateSubject {
    pub fn new(base: impl Into<String>, cand: impl Into<String>) -> GateSubject {
        GateSubject {
            base: base.into(),
            cand: cand.into(),
            probe: None,
        }
    }
}

/// The short run at the start of a gate that measured the base's capacity on this machine;
/// the open-model levels arrive at `rate`, a share of it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityProbe {
    /// Requests in flight during the probe (closed model, plain requests).
    pub concurrency: u32,
    pub secs: f64,
    /// Completed requests per second through the base.
    pub capacity: f64,
    /// The open-model rate chosen from it, arrivals per second.
    pub rate: f64,
}

/// Judges the runs of a gate, level by level.
///
/// At each level, every metric that every run measured is judged; one that no run measured is
/// listed in [`LevelGate::not_measured`]; one that only some runs measured is an error naming
/// the first run without it.
pub fn evaluate(
    subject: GateSubject,
    levels: Vec<(GateLevel, GateRuns)>,
    options: &GateOptions,
) -> Result<GateReport, GateError> {
    if options.resamples < 100 {
        return Err(GateError::Resamples(options.resamples));
    }
    if levels.is_empty() {
        return Err(GateError::NoLevels);
    }
    let need = options.confidence.min_rounds();
    let mut judged = Vec::with_capacity(levels.len());
    for (level_index, (level, runs)) in levels.into_iter().enumerate() {
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
            if runs.measured_everywhere(level, metric)? {
                // Each metric of each level resamples with a stream of its own.
                let stream = (level_index * GateMetric::ALL.len() + index) as u64;
                metrics.push(judge(metric, stream, &runs, options));
            } else {
                not_measured.push(metric);
            }
        }
        if metrics.is_empty() {
            return Err(GateError::NothingMeasured);
        }
        judged.push(LevelGate {
            level,
            verdict: Verdict::combine(metrics.iter().filter(|m| m.decides()).map(|m| m.verdict)),
            saturated: runs.saturated(),
            metrics,
            not_measured,
            runs,
        });
    }
    Ok(GateReport {
        schema_version: GATE_SCHEMA_VERSION,
        subject,
        settings: *options,
        verdict: Verdict::combine(judged.iter().map(|l| l.verdict)),
        levels: judged,
    })
}

/// The gate of one metric that every run measured.
fn judge(metric: GateMetric, index: u64, runs: &GateRuns, options: &GateOptions) -> MetricGate {
    let tolerance = options.tolerances.of(metric);
    let estimate = |kind: RoundKind, stream: u64| {
        let changes: Vec<f64> = runs
            .rounds(kind)
            .iter()
            .filter_map(|round| round.change(metric))
            .collect();
        let resampling = Resampling {
            confidence: options.confidence.level(),
            resamples: options.resamples,
            seed: options.seed.wrapping_add(2 * index + stream),
        };
        Estimate::of(changes, metric, tolerance, resampling)
    };
    let (ab, aa) = (estimate(RoundKind::Ab, 0), estimate(RoundKind::Aa, 1));
    let sides: Vec<(f64, f64)> = runs
        .ab
        .iter()
        .filter_map(|round| round.sides(metric))
        .collect();
    // The base and candidate columns: over the A/B rounds, on the metric's own scale.
    let centre = |pick: fn(&(f64, f64)) -> f64| {
        let n = sides.len() as f64;
        match metric.scale() {
            Scale::Ratio => (sides.iter().map(|s| pick(s).ln()).sum::<f64>() / n).exp(),
            Scale::Points => sides.iter().map(pick).sum::<f64>() / n,
        }
    };
    let (claimed, p) = ab.claim(tolerance, metric.direction());
    let verdict = claimed.unless_unbacked(beyond_noise(&ab, &aa) && p < options.confidence.alpha());
    MetricGate {
        metric,
        direction: metric.direction(),
        tolerance,
        base: centre(|s| s.0),
        cand: centre(|s| s.1),
        ab,
        aa,
        verdict,
    }
}

/// Whether the A/B interval lies wholly beyond the largest move of the A/A interval: what this
/// machine did with no change at all.
fn beyond_noise(ab: &Estimate, aa: &Estimate) -> bool {
    let (aa_low, aa_high) = aa.interval;
    clears(ab.interval, (-aa_low).max(aa_high).max(0.0))
}
