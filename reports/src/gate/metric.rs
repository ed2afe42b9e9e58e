//! What the load gate judges: the metrics, which way is better for each, and how much change
//! is tolerated before it matters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::GateError;
use crate::model::{Metric, RunResult};

/// A number taken from every run of a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    /// Completed requests per second over the run.
    Throughput,
    /// Median gateway overhead (`x-gateway-overhead-us`).
    OverheadP50,
    /// 99th percentile of gateway overhead.
    OverheadP99,
    /// Median time to first token.
    TtftP50,
    /// 99th percentile of time to first token.
    TtftP99,
}

/// Which way a metric moves when the gateway gets better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Rates of work done: a drop is a regression.
    HigherIsBetter,
    /// Latencies: a rise is a regression.
    LowerIsBetter,
}

impl GateMetric {
    /// Every gated metric, in report order.
    pub const ALL: [GateMetric; 5] = [
        GateMetric::Throughput,
        GateMetric::OverheadP50,
        GateMetric::OverheadP99,
        GateMetric::TtftP50,
        GateMetric::TtftP99,
    ];

    /// Name for tables, e.g. `ttft p99`.
    pub fn label(self) -> &'static str {
        match self {
            GateMetric::Throughput => "throughput",
            GateMetric::OverheadP50 => "overhead p50",
            GateMetric::OverheadP99 => "overhead p99",
            GateMetric::TtftP50 => "ttft p50",
            GateMetric::TtftP99 => "ttft p99",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            GateMetric::Throughput => Direction::HigherIsBetter,
            _ => Direction::LowerIsBetter,
        }
    }

    /// Formats a value as stored in [`super::Measurements`] (requests per second, or
    /// microseconds) in the display unit, e.g. `1.25 ms`.
    pub fn format(self, value: f64) -> String {
        format!(
            "{} {}",
            crate::model::significant(self.to_display(value)),
            self.display_unit()
        )
    }

    /// A stored value in the display unit: requests per second, or milliseconds.
    pub fn to_display(self, value: f64) -> f64 {
        match self.percentile() {
            None => value,
            Some((metric, _)) => metric.unit().to_display(value),
        }
    }

    pub fn display_unit(self) -> &'static str {
        match self.percentile() {
            None => "req/s",
            Some((metric, _)) => metric.unit().display_name(),
        }
    }

    /// The histogram metric and quantile behind a percentile metric; `None` for throughput.
    fn percentile(self) -> Option<(Metric, f64)> {
        match self {
            GateMetric::Throughput => None,
            GateMetric::OverheadP50 => Some((Metric::Overhead, 0.50)),
            GateMetric::OverheadP99 => Some((Metric::Overhead, 0.99)),
            GateMetric::TtftP50 => Some((Metric::Ttft, 0.50)),
            GateMetric::TtftP99 => Some((Metric::Ttft, 0.99)),
        }
    }

    /// The value in one run: requests per second, or microseconds.
    ///
    /// Percentiles are read at least as 1 µs, the resolution they are recorded with, so that a
    /// sub-microsecond overhead still has a logarithm.
    pub(super) fn value(self, run: &RunResult) -> Option<f64> {
        match self.percentile() {
            None => run.throughput().filter(|rate| *rate > 0.0),
            Some((metric, q)) => run.percentile(metric, q).map(|v| v.max(1) as f64),
        }
    }
}

impl fmt::Display for GateMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A relative change that does not matter, strictly between 0 and 1 (0.03 = 3%).
///
/// A candidate is worse only when it is worse than the base by more than this, e.g. throughput
/// below 97% of the base's or a p99 above 110% of it.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Tolerance(f64);

impl Tolerance {
    pub fn new(fraction: f64) -> Result<Tolerance, GateError> {
        if fraction > 0.0 && fraction < 1.0 {
            Ok(Tolerance(fraction))
        } else {
            Err(GateError::Tolerance(format!("{fraction}")))
        }
    }

    pub fn fraction(self) -> f64 {
        self.0
    }

    /// Log-ratio of the upper edge of the band (`ln(1 + t)`).
    pub(super) fn upper_log(self) -> f64 {
        self.0.ln_1p()
    }

    /// Log-ratio of the lower edge of the band (`ln(1 - t)`).
    pub(super) fn lower_log(self) -> f64 {
        (-self.0).ln_1p()
    }
}

impl TryFrom<f64> for Tolerance {
    type Error = GateError;

    fn try_from(fraction: f64) -> Result<Tolerance, GateError> {
        Tolerance::new(fraction)
    }
}

impl From<Tolerance> for f64 {
    fn from(tolerance: Tolerance) -> f64 {
        tolerance.0
    }
}

/// Parses `3%` or `0.03`, as a command-line flag would give it.
impl FromStr for Tolerance {
    type Err = GateError;

    fn from_str(text: &str) -> Result<Tolerance, GateError> {
        let text = text.trim();
        let fraction = match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => text.parse::<f64>(),
        };
        fraction
            .ok()
            .and_then(|f| Tolerance::new(f).ok())
            .ok_or_else(|| GateError::Tolerance(text.to_owned()))
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", crate::model::short(self.0 * 100.0))
    }
}

/// The tolerance of each metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerances {
    pub throughput: Tolerance,
    /// For both p50 metrics (overhead and TTFT).
    pub p50: Tolerance,
    /// For both p99 metrics; tails are noisier, so this is the widest.
    pub p99: Tolerance,
}

impl Tolerances {
    pub fn of(&self, metric: GateMetric) -> Tolerance {
        match metric {
            GateMetric::Throughput => self.throughput,
            GateMetric::OverheadP50 | GateMetric::TtftP50 => self.p50,
            GateMetric::OverheadP99 | GateMetric::TtftP99 => self.p99,
        }
    }
}

/// 3% for throughput, 5% for medians, 10% for p99s.
impl Default for Tolerances {
    fn default() -> Tolerances {
        Tolerances {
            throughput: Tolerance(0.03),
            p50: Tolerance(0.05),
            p99: Tolerance(0.10),
        }
    }
}
