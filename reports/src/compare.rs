//! Comparing a candidate's runs with a baseline's (`harness compare`).
//!
//! Each measure is taken from every run, and each side's runs are averaged. The change is on
//! the measure's [`Scale`]: relative (`mean(cand) / mean(base) - 1`), or a difference in points
//! for the error rate. With at least two runs a side, a seeded percentile bootstrap (runs
//! resampled with replacement on each side) gives its interval, and the equivalence rule shared
//! with the gate ([`Verdict::judge`]) reads it against the measure's margin: unchanged within
//! it, a regression or an improvement wholly beyond it, inconclusive across an edge. A change
//! beyond the margin must also be beyond the spread between runs of one side (what a build does
//! from one run to the next with no change at all), or it is inconclusive too.
//!
//! With one run a side, how much a build moves between runs cannot be seen, so no change can
//! be told from it: every measure is inconclusive, with its change shown.

use std::fmt;

use crate::model::{Metric, RunResult, significant};
use crate::stats::{Direction, Scale, bootstrap, clears, mean};

pub use crate::stats::{Resampling, Verdict};

/// A number compared between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// Which way is better: lower for latencies and errors, higher for rates of work done.
    pub fn direction(self) -> Direction {
        match self {
            Measure::Percentile(Metric::OutputTokensPerS, _) => Direction::HigherIsBetter,
            Measure::Percentile(..) | Measure::ErrorRate => Direction::LowerIsBetter,
            Measure::Throughput | Measure::Goodput | Measure::OutputTokensPerS => {
                Direction::HigherIsBetter
            }
        }
    }

    /// Amounts compare by ratio; the error rate, a share that is often 0, by difference.
    pub fn scale(self) -> Scale {
        match self {
            Measure::ErrorRate => Scale::Points,
            _ => Scale::Ratio,
        }
    }

    /// The change that does not matter (on the terms of [`Measure::scale`]): 5% for medians
    /// and rates, 10% for tails (they move more from run to run), 0.5 points for the error
    /// rate (a few failures more in a thousand requests).
    pub fn margin(self) -> f64 {
        match self {
            Measure::Percentile(_, q) if q > 500 => 0.10,
            Measure::ErrorRate => 0.005,
            _ => 0.05,
        }
    }

    /// The value in one run: a percentile in its metric's stored unit, a rate per second, the
    /// error rate as a share from 0 to 1.
    pub fn value(self, run: &RunResult) -> Option<f64> {
        match self {
            Measure::Percentile(metric, q) => run
                .percentile(metric, f64::from(q) / 1000.0)
                .map(|v| v as f64),
            Measure::Throughput => run.throughput(),
            Measure::Goodput => run.goodput(),
            Measure::ErrorRate => run.totals.error_rate(),
            Measure::OutputTokensPerS => run.output_tokens_per_s(),
        }
    }

    /// A [`Measure::value`] for people, e.g. `95.1 ms` or `0.4 %`.
    pub fn format(self, value: f64) -> String {
        let (shown, unit) = match self {
            Measure::Percentile(metric, _) => (
                metric.unit().to_display(value),
                metric.unit().display_name(),
            ),
            Measure::Throughput | Measure::Goodput => (value, "req/s"),
            Measure::ErrorRate => (value * 100.0, "%"),
            Measure::OutputTokensPerS => (value, "tokens/s"),
        };
        format!("{} {unit}", significant(shown))
    }
}

/// One measure compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub measure: Measure,
    /// Mean over the base runs that have the measure, as [`Measure::value`] gives it.
    pub base: Option<f64>,
    /// The same over the candidate runs.
    pub cand: Option<f64>,
    /// `None` when a side has no value for the measure (or a ratio's base is 0).
    pub judged: Option<Judged>,
}

/// The change of a measure that both sides have, and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// Shown on the measure's scale: a relative change (0.1 = 10% more), or a difference of
    /// shares (0.01 = one point more).
    pub change: f64,
    /// Bootstrap interval of `change`; `None` with a single run on a side.
    pub interval: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// The comparison of two sets of runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub base_runs: usize,
    pub cand_runs: usize,
    pub resampling: Resampling,
    /// The most severe verdict of the rows.
    pub verdict: Verdict,
    pub rows: Vec<Row>,
}

impl Comparison {
    /// True when there is more than one run on each side, so intervals can be drawn.
    pub fn significance_possible(&self) -> bool {
        self.base_runs >= 2 && self.cand_runs >= 2
    }

    /// The sentence under the table saying what the verdicts rest on.
    pub fn note(&self) -> String {
        if self.significance_possible() {
            format!(
                "{} base and {} candidate runs: {}% bootstrap intervals of the change ({} resamples); unchanged when the whole interval is within the margin, a regression or an improvement when it is wholly beyond both the margin and the spread between runs of one side, else inconclusive.",
                self.base_runs,
                self.cand_runs,
                crate::model::short(self.resampling.confidence * 100.0),
                self.resampling.resamples,
            )
        } else {
            format!(
                "{} base and {} candidate runs: one run on a side shows nothing of how much a build moves from run to run, so no change can be told from that noise and every measure is inconclusive. Give each side at least two runs (three or more for narrower intervals).",
                self.base_runs, self.cand_runs
            )
        }
    }

    /// The process exit code (docs/design.md): 3 regression, 4 inconclusive, else 0.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

/// Compares with [`Resampling::default`].
pub fn compare(base: &[RunResult], cand: &[RunResult]) -> Comparison {
    compare_with(base, cand, &Resampling::default())
}

/// Compares the candidate's runs with the base's.
pub fn compare_with(base: &[RunResult], cand: &[RunResult], resampling: &Resampling) -> Comparison {
    let rows: Vec<Row> = Measure::TABLE
        .into_iter()
        .zip(0_u64..)
        .map(|(measure, index)| {
            let values = |runs: &[RunResult]| -> Vec<f64> {
                runs.iter().filter_map(|r| measure.value(r)).collect()
            };
            let (b, c) = (values(base), values(cand));
            // Each measure resamples with a stream of its own.
            let seeded = Resampling {
                seed: resampling.seed.wrapping_add(index),
                ..*resampling
            };
            Row {
                measure,
                base: mean(&b),
                cand: mean(&c),
                judged: judge(measure, &b, &c, seeded),
            }
        })
        .collect();
    Comparison {
        base_runs: base.len(),
        cand_runs: cand.len(),
        resampling: *resampling,
        verdict: Verdict::combine(rows.iter().filter_map(|r| Some(r.judged.as_ref()?.verdict))),
        rows,
    }
}

/// The change of one measure from the base's values to the candidate's, and its verdict.
fn judge(measure: Measure, base: &[f64], cand: &[f64], resampling: Resampling) -> Option<Judged> {
    let scale = measure.scale();
    let change = |b: &[f64], c: &[f64]| scale.change(mean(b)?, mean(c)?);
    let estimate = scale.shown(change(base, cand)?);
    let interval = (base.len() >= 2 && cand.len() >= 2)
        .then(|| bootstrap([base, cand], resampling, |[b, c]| change(b, c)))
        .flatten()
        .map(|(low, high)| (scale.shown(low), scale.shown(high)));
    let verdict = interval.map_or(Verdict::Inconclusive, |interval| {
        Verdict::judge(interval, measure.margin(), measure.direction())
            .unless_unbacked(clears(interval, spread(scale, [base, cand])))
    });
    Some(Judged {
        change: estimate,
        interval,
        verdict,
    })
}

/// The largest change between two runs of one side, shown on `scale`: how much one build moved
/// from run to run. Infinite when a ratio's smallest run is 0 and its largest is not.
fn spread(scale: Scale, sides: [&[f64]; 2]) -> f64 {
    sides
        .into_iter()
        .map(|runs| {
            let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
            let high = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if high <= low {
                return 0.0;
            }
            scale
                .change(low, high)
                .map_or(f64::INFINITY, |c| scale.shown(c))
        })
        .fold(0.0, f64::max)
}

impl Row {
    /// The row's cells, as the console table and `compare.html` show them: measure, margin,
    /// base, candidate, change, interval, verdict.
    pub fn cells(&self) -> [String; 7] {
        let scale = self.measure.scale();
        let value = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| self.measure.format(v));
        let (change, interval, verdict) = match &self.judged {
            None => ("n/a".to_owned(), "-".to_owned(), "no data".to_owned()),
            Some(judged) => (
                scale.format(judged.change),
                judged.interval.map_or("-".to_owned(), |(low, high)| {
                    format!("[{}, {}]", scale.format(low), scale.format(high))
                }),
                judged.verdict.to_string(),
            ),
        };
        [
            self.measure.label(),
            scale.margin(self.measure.margin()),
            value(self.base),
            value(self.cand),
            change,
            interval,
            verdict,
        ]
    }
}

/// The plain-text table the harness prints, then the note and the verdict line.
impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "metric",
            "margin",
            "base",
            "candidate",
            "change",
            "interval",
            "verdict",
        ]
        .map(str::to_owned);
        let rows: Vec<[String; 7]> = self.rows.iter().map(Row::cells).collect();
        crate::text_table::write(f, &header, &rows, |column| matches!(column, 0 | 6))?;
        writeln!(f, "{}", self.note())?;
        writeln!(f, "{} (exit {})", self.verdict, self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(measure: Measure, base: &[f64], cand: &[f64]) -> Option<Judged> {
        judge(measure, base, cand, Resampling::default())
    }

    #[test]
    fn failures_compare_in_points_even_from_none() {
        let more = judged(Measure::ErrorRate, &[0.0, 0.0, 0.0], &[0.02, 0.021, 0.019])
            .expect("both sides");
        assert!((more.change - 0.02).abs() < 1e-12, "{more:?}");
        assert_eq!(more.verdict, Verdict::Regression);
        // 0.2 points more: within the 0.5-point margin.
        let few = judged(
            Measure::ErrorRate,
            &[0.001, 0.001, 0.0012],
            &[0.003, 0.0031, 0.0029],
        )
        .expect("both sides");
        assert_eq!(few.verdict, Verdict::Unchanged, "{few:?}");
    }

    #[test]
    fn a_change_within_the_spread_between_runs_of_one_build_is_inconclusive() {
        let ttft = Measure::Percentile(Metric::Ttft, 500);
        // The base's own runs are 30% apart: a candidate 15% to 60% slower is not beyond that.
        let noisy = judged(ttft, &[100.0, 130.0], &[150.0, 160.0]).expect("both sides");
        let (low, _) = noisy.interval.expect("two runs a side");
        assert!(low > ttft.margin(), "{noisy:?}");
        assert_eq!(noisy.verdict, Verdict::Inconclusive);
        // The same candidate against a base whose runs agree is a regression.
        let steady = judged(ttft, &[100.0, 102.0], &[150.0, 160.0]).expect("both sides");
        assert_eq!(steady.verdict, Verdict::Regression, "{steady:?}");
    }

    #[test]
    fn a_ratio_needs_a_base_above_zero_and_a_candidate_at_zero_fell_by_all() {
        assert_eq!(judged(Measure::Throughput, &[0.0, 0.0], &[5.0, 6.0]), None);
        assert_eq!(judged(Measure::Throughput, &[], &[5.0]), None);
        let stalled = judged(Measure::Throughput, &[100.0, 101.0], &[0.0, 0.0]).expect("a base");
        assert_eq!(stalled.change, -1.0);
        assert_eq!(stalled.verdict, Verdict::Regression, "{stalled:?}");
    }
}
