//! What the load gate judges: the metrics, which way is better for each, and how much change
//! is tolerated before it matters (the margin of [`crate::stats::Verdict::judge`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::GateError;
use crate::model::Metric;
use crate::stats::{Direction, Scale};

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

    /// Whether this is a tail (a p99). A tail is estimated from the slowest 1% of each run,
    /// a few requests, so its interval is several times wider than a median's: it can fail a
    /// gate (a regression clear of the tolerance and of the A/A noise) but cannot hold it
    /// inconclusive. An undecided tail is shown as such; the level is decided by the rest.
    pub fn is_tail(self) -> bool {
        matches!(
            self,
            GateMetric::AddedP99 | GateMetric::OverheadP99 | GateMetric::TtftP99
        )
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

    /// What `GateMetric::accepts` accepts, for an error message.
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

/// Parses a metric's label with `_` for the space, as a command-line flag gives it:
/// `throughput`, `errors`, `added_p99`.
impl FromStr for GateMetric {
    type Err = GateError;

    fn from_str(text: &str) -> Result<GateMetric, GateError> {
        let label = text.trim().replace('_', " ");
        GateMetric::ALL
            .into_iter()
            .find(|m| m.label() == label)
            .ok_or_else(|| GateError::UnknownMetric(text.to_owned()))
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

/// The tolerance of each metric: the margin within which its change is unchanged.
///
/// Each is the noise of that metric in A/A gates (docs/performance-gates.md): a change the
/// machine makes with no change at all cannot be told from one the candidate makes, and a gate
/// whose margins were narrower than that noise could only ever say "inconclusive". The gateway's
/// own overhead header moves least, so its margins are the narrowest; latencies measured from
/// the client (added latency, TTFT) include the client's and the mock's jitter, and tails move
/// most.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerances {
    pub throughput: Tolerance,
    /// For the error rate, in points: more failures than this are a regression.
    pub errors: Tolerance,
    pub added_p50: Tolerance,
    pub added_p99: Tolerance,
    pub overhead_p50: Tolerance,
    pub overhead_p99: Tolerance,
    pub ttft_p50: Tolerance,
    pub ttft_p99: Tolerance,
}

impl Tolerances {
    pub fn of(&self, metric: GateMetric) -> Tolerance {
        let mut copy = *self;
        *copy.slot(metric)
    }

    /// Sets the tolerance of `metric` (`harness gate --tolerance`).
    pub fn set(&mut self, metric: GateMetric, tolerance: Tolerance) {
        *self.slot(metric) = tolerance;
    }

    fn slot(&mut self, metric: GateMetric) -> &mut Tolerance {
        match metric {
            GateMetric::Throughput => &mut self.throughput,
            GateMetric::ErrorRate => &mut self.errors,
            GateMetric::AddedP50 => &mut self.added_p50,
            GateMetric::AddedP99 => &mut self.added_p99,
            GateMetric::OverheadP50 => &mut self.overhead_p50,
            GateMetric::OverheadP99 => &mut self.overhead_p99,
            GateMetric::TtftP50 => &mut self.ttft_p50,
            GateMetric::TtftP99 => &mut self.ttft_p99,
        }
    }
}

/// The A/A noise of each metric on a busy 2-core machine with debug builds, one request at a
/// time (docs/performance-gates.md, "Tolerances"): 25% for throughput, 0.1 points for errors,
/// 15% for the overhead header's median, 30% for the other medians, 60% for every p99.
impl Default for Tolerances {
    fn default() -> Tolerances {
        Tolerances {
            throughput: Tolerance(0.25),
            errors: Tolerance(0.001),
            added_p50: Tolerance(0.30),
            added_p99: Tolerance(0.60),
            overhead_p50: Tolerance(0.15),
            overhead_p99: Tolerance(0.60),
            ttft_p50: Tolerance(0.30),
            ttft_p99: Tolerance(0.60),
        }
    }
}
