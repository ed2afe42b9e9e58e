//! The outcome of a gate: `gate.json` is its serde form, `gate.html` and the console table
//! render it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metric::{Direction, GateMetric, Tolerance};
use super::rounds::GateRuns;
use super::verdict::Verdict;
use super::{GATE_HTML, GATE_JSON, GateOptions, GateSubject, stats};
use crate::compare::percent;
use crate::error::ReportError;

/// Everything a gate measured and concluded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub schema_version: u32,
    pub subject: GateSubject,
    pub settings: GateOptions,
    /// The verdict of the gate: the most severe of its metrics'.
    pub verdict: Verdict,
    /// One entry per metric that every run measured, in [`GateMetric::ALL`] order.
    pub metrics: Vec<MetricGate>,
    /// Metrics no run measured (e.g. overhead against a gateway without the header).
    pub not_measured: Vec<GateMetric>,
    /// The measurements the verdict rests on, so it can be checked or recomputed.
    pub runs: GateRuns,
}

/// The gate of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricGate {
    pub metric: GateMetric,
    pub direction: Direction,
    pub tolerance: Tolerance,
    /// Geometric mean over the base runs of the A/B rounds.
    pub base: f64,
    /// Geometric mean over the candidate runs.
    pub cand: f64,
    /// Candidate vs base.
    pub ab: Estimate,
    /// Base vs base: the self-check.
    pub aa: Estimate,
    pub verdict: Verdict,
}

/// The statistics of one set of rounds for one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// `ln(geomean(B) / geomean(A))` of each round, in round order.
    pub log_ratios: Vec<f64>,
    /// Relative change of the 20% trimmed mean of the log-ratios, `exp(m) - 1` (-0.1 = 10%
    /// lower).
    pub change: f64,
    /// Bootstrap interval of `change` at the gate's confidence.
    pub interval: (f64, f64),
    /// One-sided signed-rank p-value that the change is worse than the tolerance.
    pub p_worse: f64,
    /// One-sided signed-rank p-value that the change is better than the tolerance.
    pub p_better: f64,
}

impl Estimate {
    pub(super) fn of(
        log_ratios: Vec<f64>,
        direction: Direction,
        tolerance: Tolerance,
        options: &GateOptions,
        seed: u64,
    ) -> Estimate {
        let (low, high) = stats::bootstrap_trimmed_mean(
            &log_ratios,
            options.confidence.level(),
            options.resamples,
            seed,
        );
        let shifted = |edge: f64, sign: f64| -> Vec<f64> {
            log_ratios.iter().map(|x| sign * (x - edge)).collect()
        };
        let p_above = stats::signed_rank_above_zero(&shifted(tolerance.upper_log(), 1.0));
        let p_below = stats::signed_rank_above_zero(&shifted(tolerance.lower_log(), -1.0));
        let (p_worse, p_better) = match direction {
            Direction::LowerIsBetter => (p_above, p_below),
            Direction::HigherIsBetter => (p_below, p_above),
        };
        Estimate {
            change: stats::trimmed_mean(&mut log_ratios.clone()).exp_m1(),
            interval: (low.exp_m1(), high.exp_m1()),
            log_ratios,
            p_worse,
            p_better,
        }
    }
}

impl MetricGate {
    /// One sentence saying why the verdict is what it is.
    pub fn reason(&self) -> String {
        let band = format!("the {} tolerance", self.tolerance);
        let estimate = format!("{} {}", percent(self.ab.change), interval(self.ab.interval));
        match self.verdict {
            Verdict::Inconclusive => format!(
                "the A/A self-check moved {} with no change at all, beyond {band}: too noisy to decide",
                interval(self.aa.interval)
            ),
            Verdict::Regression => format!(
                "{estimate}: the whole interval is worse than {band} (signed-rank p = {})",
                p_value(self.ab.p_worse)
            ),
            Verdict::Improvement => format!(
                "{estimate}: the whole interval is better than {band} (signed-rank p = {})",
                p_value(self.ab.p_better)
            ),
            Verdict::Unchanged => format!("{estimate}: not wholly beyond {band}"),
        }
    }
}

impl GateReport {
    /// The process exit code for this gate (docs/design.md): 3 regression, 4 inconclusive, else 0.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }

    /// Why the gate decided as it did: the reason of every metric that made the verdict.
    pub fn summary(&self) -> String {
        if self.verdict == Verdict::Unchanged {
            return "no metric moved wholly beyond its tolerance".to_owned();
        }
        self.metrics
            .iter()
            .filter(|m| m.verdict == self.verdict)
            .map(|m| format!("{}: {}", m.metric, m.reason()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Writes `gate.json` and `gate.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let write_err = |path: &Path, source| ReportError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        let json_path = dir.join(GATE_JSON);
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| write_err(&json_path, std::io::Error::other(e)))?;
        std::fs::write(&json_path, json).map_err(|e| write_err(&json_path, e))?;
        let html_path = dir.join(GATE_HTML);
        let html = super::render_gate(self)?;
        std::fs::write(&html_path, html).map_err(|e| write_err(&html_path, e))
    }
}

/// `[-11.2%, -8.9%]`
pub(super) fn interval((low, high): (f64, f64)) -> String {
    format!("[{}, {}]", percent(low), percent(high))
}

/// A p-value with two significant digits, or `< 0.001`.
pub(super) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// The console table the harness prints, then the summary line.
impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gate {}: base {} vs candidate {}, {} A/B and {} A/A rounds",
            self.subject.scenario,
            self.subject.base,
            self.subject.cand,
            self.runs.ab.len(),
            self.runs.aa.len()
        )?;
        let header = [
            "metric",
            "tolerance",
            "base",
            "candidate",
            "change",
            "interval",
            "A/A interval",
            "p worse",
            "verdict",
        ]
        .map(str::to_owned);
        let rows: Vec<[String; 9]> = self
            .metrics
            .iter()
            .map(|m| {
                [
                    m.metric.label().to_owned(),
                    format!("±{}", m.tolerance),
                    m.metric.format(m.base),
                    m.metric.format(m.cand),
                    percent(m.ab.change),
                    interval(m.ab.interval),
                    interval(m.aa.interval),
                    p_value(m.ab.p_worse),
                    m.verdict.to_string(),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .chain([&header])
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in [&header].into_iter().chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| match i {
                    0 | 8 => format!("{cell:<width$}"),
                    _ => format!("{cell:>width$}"),
                })
                .collect();
            writeln!(f, "{}", cells.join("  ").trim_end())?;
        }
        if !self.not_measured.is_empty() {
            let names: Vec<&str> = self.not_measured.iter().map(|m| m.label()).collect();
            writeln!(f, "not measured by any run: {}", names.join(", "))?;
        }
        writeln!(
            f,
            "{} (exit {}): {}",
            self.verdict,
            self.exit_code(),
            self.summary()
        )
    }
}
