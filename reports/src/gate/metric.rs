//! What the load gate judges: the metrics, which way is better for each, and how much change
//! is tolerated before it matters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::GateError;
use crate::model::Metric;

/// A number taken from every run of a gate, at each of its load levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    /// Completed requests per second through the gateway.
    Throughput,
    /// Share of the gateway's answers that failed (a status, a broken stream, a timeout).
    /// Failures are left out of every latency, so a candidate that fails fast would otherwise
    /// look faster: this metric makes more failures a regression whatever the speed.
    ErrorRate,
    /// Median latency the gateway adds, seen by the client: through the gateway minus straight
    /// to the upstream with the same requests at the same load. Needs nothing from the gateway.
    AddedP50,
    /// 99th percentile of the same.
    AddedP99,
    /// Median gateway overhead as the gateway reports it (`x-gateway-overhead-us`).
    OverheadP50,
    /// 99th percentile of the same.
    OverheadP99,
    /// Median time to first token through the gateway (streamed levels).
    TtftP50,
    /// 99th percentile of the same.
    TtftP99,
}

/// How a metric's runs are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Positive amounts compared by ratio: a round's change is `ln(geomean(B) / geomean(A))`,
    /// the tolerance relative (3% = 0.03).
    Ratio,
    /// Shares from 0 to 1 compared by difference, since a share of 0 has no logarithm: a
    /// round's change is `mean(B) - mean(A)`, the tolerance in points (0.001 = 0.1 points).
    Points,
}

impl Scale {
    /// A change on the comparison's own scale (a log-ratio or a difference) as shown: a
    /// relative change (`exp(x) - 1`) or the difference itself.
    pub fn shown(self, change: f64) -> f64 {
        match self {
            Scale::Ratio => change.exp_m1(),
            Scale::Points => change,
        }
    }

    /// `±3%`, or `±0.1 pp` for a tolerance in points.
    pub fn tolerance(self, tolerance: Tolerance) -> String {
        match self {
            Scale::Ratio => format!("±{tolerance}"),
            Scale::Points => format!("±{}", tolerance.to_string().replace('%', " pp")),
        }
    }

    /// `+5.1%` for a relative change, `+5.1 pp` for a difference of shares.
    pub fn format(self, shown: f64) -> String {
        match self {
            Scale::Ratio => crate::compare::percent(shown),
            Scale::Points => crate::compare::percent(shown).replace('%', " pp"),
        }
    }

    /// The edges of the tolerance band on the comparison's scale: `ln(1 - t), ln(1 + t)` for
    /// ratios, `-t, t` for points.
    pub(super) fn band(self, tolerance: Tolerance) -> (f64, f64) {
        let t = tolerance.fraction();
        match self {
            Scale::Ratio => ((-t).ln_1p(), t.ln_1p()),
            Scale::Points => (-t, t),
        }
    }
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
    pub const ALL: [GateMetric; 8] = [
        GateMetric::Throughput,
        GateMetric::ErrorRate,
        GateMetric::AddedP50,
        GateMetric::AddedP99,
        GateMetric::OverheadP50,
        GateMetric::OverheadP99,
        GateMetric::TtftP50,
        GateMetric::TtftP99,
    ];

    /// Name for tables, e.g. `ttft p99`.
    pub fn label(self) -> &'static str {
        match self {
            GateMetric::Throughput => "throughput",
            GateMetric::ErrorRate => "errors",
            GateMetric::AddedP50 => "added p50",
            GateMetric::AddedP99 => "added p99",
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

    pub fn scale(self) -> Scale {
        match self {
            GateMetric::ErrorRate => Scale::Points,
            _ => Scale::Ratio,
        }
    }

    /// What [`GateMetric::accepts`] accepts, for an error message.
    pub fn expects(self) -> &'static str {
        match self.scale() {
            Scale::Ratio => "a positive finite number",
            Scale::Points => "a share from 0 to 1",
        }
    }

    /// Whether `value` can be a measurement of this metric: a positive finite amount, or a
    /// share from 0 to 1.
    pub(super) fn accepts(self, value: f64) -> bool {
        match self.scale() {
            Scale::Ratio => value.is_finite() && value > 0.0,
            Scale::Points => (0.0..=1.0).contains(&value),
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

    /// A stored value in the display unit: requests per second, percent, or milliseconds.
    pub fn to_display(self, value: f64) -> f64 {
        match self {
            GateMetric::Throughput => value,
            GateMetric::ErrorRate => value * 100.0,
            _ => Metric::Latency.unit().to_display(value),
        }
    }

    pub fn display_unit(self) -> &'static str {
        match self {
            GateMetric::Throughput => "req/s",
            GateMetric::ErrorRate => "%",
            _ => Metric::Latency.unit().display_name(),
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
    /// For the error rate, in points: more failures than this (beyond the A/A noise) are a
    /// regression.
    pub errors: Tolerance,
    /// For every p50 metric (added latency, overhead and TTFT).
    pub p50: Tolerance,
    /// For every p99 metric; tails are noisier, so this is the widest.
    pub p99: Tolerance,
}

impl Tolerances {
    pub fn of(&self, metric: GateMetric) -> Tolerance {
        match metric {
            GateMetric::Throughput => self.throughput,
            GateMetric::ErrorRate => self.errors,
            GateMetric::AddedP50 | GateMetric::OverheadP50 | GateMetric::TtftP50 => self.p50,
            GateMetric::AddedP99 | GateMetric::OverheadP99 | GateMetric::TtftP99 => self.p99,
        }
    }
}

/// 3% for throughput, 0.1 points for the error rate, 5% for medians, 10% for p99s.
impl Default for Tolerances {
    fn default() -> Tolerances {
        Tolerances {
            throughput: Tolerance(0.03),
            errors: Tolerance(0.001),
            p50: Tolerance(0.05),
            p99: Tolerance(0.10),
        }
    }
}
