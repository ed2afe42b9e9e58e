//! Comparing a candidate's runs with a baseline's (`harness compare BASE CAND`).
//!
//! Each measure is taken from every run; the change is `mean(candidate) / mean(base) - 1`. With
//! at least two runs on each side, a percentile bootstrap (runs resampled with replacement on
//! each side) gives a confidence interval of that change, and the verdict needs the whole
//! interval on one side of the tolerance. With one run per side there is no spread to judge
//! noise by, so no verdict claims significance.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::model::{Metric, RunResult, short, significant};

/// Knobs of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompareOptions {
    /// Relative change (0.05 = 5%) below which a difference does not matter.
    pub tolerance: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Confidence level of the interval (0.95 = 95%).
    pub confidence: f64,
    /// Seed of the resampling, so the same inputs always give the same table.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> CompareOptions {
        CompareOptions {
            tolerance: 0.05,
            resamples: 2_000,
            confidence: 0.95,
            seed: 0x6761_7465,
        }
    }
}

/// A number compared between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Measure {
    /// A percentile (`q` in thousandths: 500 = p50) of a histogram metric.
    Percentile(Metric, u16),
    Throughput,
    Goodput,
    ErrorRate,
    OutputTokensPerS,
}

impl Measure {
    /// The measures of a comparison table, in order.
    pub const TABLE: [Measure; 15] = [
        Measure::Percentile(Metric::Latency, 500),
        Measure::Percentile(Metric::Latency, 950),
        Measure::Percentile(Metric::Latency, 990),
        Measure::Percentile(Metric::Ttft, 500),
        Measure::Percentile(Metric::Ttft, 950),
        Measure::Percentile(Metric::Ttft, 990),
        Measure::Percentile(Metric::Itl, 500),
        Measure::Percentile(Metric::Itl, 990),
        Measure::Percentile(Metric::Tpot, 500),
        Measure::Percentile(Metric::Overhead, 500),
        Measure::Percentile(Metric::Overhead, 990),
        Measure::Throughput,
        Measure::Goodput,
        Measure::ErrorRate,
        Measure::OutputTokensPerS,
    ];

    /// Name for the table, e.g. `ttft p95`.
    pub fn label(self) -> String {
        match self {
            Measure::Percentile(metric, q) if q % 10 == 0 => {
                format!("{} p{}", metric.name(), q / 10)
            }
            Measure::Percentile(metric, q) => format!("{} p{}.{}", metric.name(), q / 10, q % 10),
            Measure::Throughput => "throughput".into(),
            Measure::Goodput => "goodput".into(),
            Measure::ErrorRate => "error rate".into(),
            Measure::OutputTokensPerS => "output tokens/s".into(),
        }
    }

    /// Unit of [`Measure::value`].
    pub fn unit(self) -> &'static str {
        match self {
            Measure::Percentile(metric, _) => metric.unit().display_name(),
            Measure::Throughput | Measure::Goodput => "req/s",
            Measure::ErrorRate => "%",
            Measure::OutputTokensPerS => "tokens/s",
        }
    }

    /// True for latencies and errors, false for rates of work done.
    pub fn lower_is_better(self) -> bool {
        match self {
            Measure::Percentile(Metric::OutputTokensPerS, _) => false,
            Measure::Percentile(..) | Measure::ErrorRate => true,
            Measure::Throughput | Measure::Goodput | Measure::OutputTokensPerS => false,
        }
    }

    /// The value in one run, in [`Measure::unit`].
    pub fn value(self, run: &RunResult) -> Option<f64> {
        match self {
            Measure::Percentile(metric, q) => run
                .percentile(metric, f64::from(q) / 1000.0)
                .map(|v| metric.unit().to_display(v as f64)),
            Measure::Throughput => run.throughput(),
            Measure::Goodput => run.goodput(),
            Measure::ErrorRate => run.totals.error_rate().map(|r| r * 100.0),
            Measure::OutputTokensPerS => run.output_tokens_per_s(),
        }
    }
}

/// The judgement of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is better than the tolerance.
    Better,
    /// The whole interval is worse than the tolerance.
    Worse,
    /// The whole interval lies within the tolerance.
    Unchanged,
    /// The interval crosses the tolerance: the runs are too noisy to tell.
    Inconclusive,
    /// One run per side: a change is shown, but nothing can be claimed about it.
    NotSignificant,
    /// A side has no value for this measure (or the base is zero).
    NoData,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Better => "better",
            Verdict::Worse => "WORSE",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotSignificant => "not significant",
            Verdict::NoData => "no data",
        })
    }
}

/// One measure compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub measure: Measure,
    /// Mean over the base runs.
    pub base: Option<f64>,
    /// Mean over the candidate runs.
    pub cand: Option<f64>,
    /// `cand / base - 1`.
    pub change: Option<f64>,
    /// Bootstrap interval of `change`, with several runs per side.
    pub interval: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// The comparison of two sets of runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub base_runs: usize,
    pub cand_runs: usize,
    pub options: ComparisonSettings,
    pub rows: Vec<Row>,
}

/// The options a comparison was made with, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ComparisonSettings {
    pub tolerance: f64,
    pub confidence: f64,
    pub resamples: usize,
}

impl Comparison {
    /// True when there is more than one run on each side, so intervals and verdicts mean something.
    pub fn significance_possible(&self) -> bool {
        self.base_runs >= 2 && self.cand_runs >= 2
    }

    /// The sentence under the table saying what the verdicts rest on.
    pub fn note(&self) -> String {
        if self.significance_possible() {
            format!(
                "{} base and {} candidate runs: {}% bootstrap intervals of the change ({} resamples); a verdict needs the whole interval beyond the {}% tolerance.",
                self.base_runs,
                self.cand_runs,
                short(self.options.confidence * 100.0),
                self.options.resamples,
                short(self.options.tolerance * 100.0)
            )
        } else if self.base_runs <= 1 && self.cand_runs <= 1 {
            "One run per side: no significance can be claimed. Repeat each side at least twice for confidence intervals.".to_owned()
        } else {
            format!(
                "{} base and {} candidate runs: a side with a single run shows no noise to judge by, so no significance can be claimed.",
                self.base_runs, self.cand_runs
            )
        }
    }

    /// True when any row is [`Verdict::Worse`].
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Worse)
    }
}

/// Compares with [`CompareOptions::default`].
pub fn compare(base: &[RunResult], cand: &[RunResult]) -> Comparison {
    compare_with(base, cand, &CompareOptions::default())
}

/// Compares the candidate's runs with the base's.
pub fn compare_with(
    base: &[RunResult],
    cand: &[RunResult],
    options: &CompareOptions,
) -> Comparison {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let several = base.len() >= 2 && cand.len() >= 2;
    let rows = Measure::TABLE
        .into_iter()
        .map(|measure| {
            let b: Vec<f64> = base.iter().filter_map(|r| measure.value(r)).collect();
            let c: Vec<f64> = cand.iter().filter_map(|r| measure.value(r)).collect();
            let change = relative_change(&b, &c);
            let interval = (several && b.len() >= 2 && c.len() >= 2)
                .then(|| bootstrap(&b, &c, options, &mut rng))
                .flatten();
            let verdict = match (change, interval) {
                (None, _) => Verdict::NoData,
                (Some(_), None) => Verdict::NotSignificant,
                (Some(_), Some(interval)) => {
                    judge(interval, options.tolerance, measure.lower_is_better())
                }
            };
            Row {
                measure,
                base: mean(&b),
                cand: mean(&c),
                change,
                interval,
                verdict,
            }
        })
        .collect();
    Comparison {
        base_runs: base.len(),
        cand_runs: cand.len(),
        options: ComparisonSettings {
            tolerance: options.tolerance,
            confidence: options.confidence,
            resamples: options.resamples,
        },
        rows,
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn relative_change(base: &[f64], cand: &[f64]) -> Option<f64> {
    let (b, c) = (mean(base)?, mean(cand)?);
    if b == 0.0 {
        (c == 0.0).then_some(0.0)
    } else {
        Some(c / b - 1.0)
    }
}

/// Percentile bootstrap interval of the relative change of the means.
fn bootstrap(
    base: &[f64],
    cand: &[f64],
    options: &CompareOptions,
    rng: &mut StdRng,
) -> Option<(f64, f64)> {
    let mut resample = |values: &[f64]| {
        (0..values.len())
            .map(|_| values[rng.random_range(0..values.len())])
            .sum::<f64>()
            / values.len() as f64
    };
    let mut changes: Vec<f64> = (0..options.resamples)
        .filter_map(|_| {
            let b = resample(base);
            let c = resample(cand);
            (b != 0.0).then(|| c / b - 1.0)
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let tail = (1.0 - options.confidence) / 2.0;
    let at = |q: f64| {
        changes[((q * (changes.len() - 1) as f64).round() as usize).min(changes.len() - 1)]
    };
    Some((at(tail), at(1.0 - tail)))
}

fn judge((low, high): (f64, f64), tolerance: f64, lower_is_better: bool) -> Verdict {
    let (worse, better) = if lower_is_better {
        (low > tolerance, high < -tolerance)
    } else {
        (high < -tolerance, low > tolerance)
    };
    if worse {
        Verdict::Worse
    } else if better {
        Verdict::Better
    } else if low >= -tolerance && high <= tolerance {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

/// The plain-text table the harness prints.
impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "metric",
            "base",
            "candidate",
            "change",
            "interval",
            "verdict",
        ];
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|row| {
                let value = |v: Option<f64>| {
                    v.map_or("n/a".to_owned(), |v| {
                        format!("{} {}", significant(v), row.measure.unit())
                    })
                };
                [
                    row.measure.label(),
                    value(row.base),
                    value(row.cand),
                    row.change.map_or("n/a".to_owned(), percent),
                    row.interval.map_or("-".to_owned(), |(lo, hi)| {
                        format!("[{}, {}]", percent(lo), percent(hi))
                    }),
                    row.verdict.to_string(),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    if i == 0 || i == cells.len() - 1 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            writeln!(f, "{}", text.join("  ").trim_end())
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        writeln!(f, "{}", self.note())
    }
}

/// A signed percentage with one decimal; a change that rounds to zero prints as `+0.0%`, never
/// `-0.0%`.
pub fn percent(fraction: f64) -> String {
    let tenths = (fraction * 1_000.0).round();
    let tenths = if tenths == 0.0 { 0.0 } else { tenths };
    format!("{:+.1}%", tenths / 10.0)
}
