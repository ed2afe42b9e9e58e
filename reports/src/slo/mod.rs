//! Service level objectives: the TOML file format of docs/design.md, and their evaluation against a
//! [`RunResult`](crate::model::RunResult).
//!
//! ```toml
//! [[slo]]
//! metric = "ttft"     # a glossary name, or "throughput", "dropped", "rss_growth", ...
//! stat = "p95"        # p50 p90 p95 p99 p999 max mean rate ratio slope
//! op = "<"
//! value = "250ms"     # durations, percentages ("1%") or plain numbers
//! abort = false       # true: the harness stops the run early once it is lost
//! ```

mod evaluate;
mod parse;
mod quantity;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{GatewaySeries, Metric};

pub use evaluate::{ABORT_MIN_REQUESTS, evaluate, evaluate_partial, measure};
pub use parse::{SloError, load_slos, parse_slos};
pub use quantity::{BadQuantity, Quantity};

/// What an SLO measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SloMetric {
    /// A histogram metric of the glossary.
    Histogram(Metric),
    /// Failed requests / all requests (`ratio`), or failures per second (`rate`).
    ErrorRate,
    /// Good requests per second (`rate`), or good / all requests (`ratio`).
    Goodput,
    /// Completed requests per second (`rate`).
    Throughput,
    /// Cache hits / lookups (`ratio`).
    CacheHitRatio,
    /// Dropped arrivals / arrivals (`ratio`), or dropped per second (`rate`).
    Dropped,
    /// Growth of a gateway series after warm-up (`rss_growth`, `task_growth`,
    /// `connection_growth`): total (`ratio`) or per hour (`slope`).
    Growth(GatewaySeries),
    /// The highest rate of a rate sweep that met every other SLO (`rate`, requests per
    /// second); only a sweep (stress) measures it.
    Capacity,
}

/// Which statistic of the metric is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
    Rate,
    Ratio,
    Slope,
}

/// How the measured value must relate to the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

/// One objective, already checked: its stat applies to its metric and its value has the kind
/// (duration, percentage, number) the stat produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub metric: SloMetric,
    pub stat: Stat,
    pub op: Op,
    pub value: Quantity,
    /// Stop the run early once this objective is lost.
    pub abort: bool,
}

/// Outcome of one SLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloStatus {
    Pass,
    Fail,
    /// Nothing was measured (no requests, no samples): counts as a failure, since nothing shows
    /// the objective was met.
    NoData,
}

/// An SLO with what was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloResult {
    pub slo: Slo,
    pub measured: Option<Quantity>,
    pub status: SloStatus,
}

impl SloResult {
    /// True only for [`SloStatus::Pass`].
    pub fn passed(&self) -> bool {
        self.status == SloStatus::Pass
    }
}

impl SloMetric {
    /// Every metric an SLO can name, for error messages.
    pub const NAMES: [&'static str; 17] = [
        "latency",
        "e2e",
        "ttft",
        "ttft_from_send",
        "itl",
        "tpot",
        "output_tokens_per_s",
        "overhead",
        "error_rate",
        "goodput",
        "throughput",
        "cache_hit_ratio",
        "dropped",
        "rss_growth",
        "task_growth",
        "connection_growth",
        "capacity",
    ];

    /// The name used in SLO files.
    pub fn name(self) -> &'static str {
        match self {
            SloMetric::Histogram(metric) => metric.name(),
            SloMetric::ErrorRate => "error_rate",
            SloMetric::Goodput => "goodput",
            SloMetric::Throughput => "throughput",
            SloMetric::CacheHitRatio => "cache_hit_ratio",
            SloMetric::Dropped => "dropped",
            SloMetric::Growth(GatewaySeries::Rss) => "rss_growth",
            SloMetric::Growth(GatewaySeries::Tasks) => "task_growth",
            SloMetric::Growth(GatewaySeries::Connections) => "connection_growth",
            SloMetric::Capacity => "capacity",
        }
    }

    /// Looks a metric up by its SLO file name.
    pub fn from_name(name: &str) -> Option<SloMetric> {
        Some(match name {
            "error_rate" => SloMetric::ErrorRate,
            "goodput" => SloMetric::Goodput,
            "throughput" => SloMetric::Throughput,
            "cache_hit_ratio" => SloMetric::CacheHitRatio,
            "dropped" => SloMetric::Dropped,
            "rss_growth" => SloMetric::Growth(GatewaySeries::Rss),
            "task_growth" => SloMetric::Growth(GatewaySeries::Tasks),
            "connection_growth" => SloMetric::Growth(GatewaySeries::Connections),
            "capacity" => SloMetric::Capacity,
            other => SloMetric::Histogram(Metric::from_name(other)?),
        })
    }

    /// The stats that apply to this metric.
    pub fn stats(self) -> &'static [Stat] {
        use Stat::*;
        match self {
            SloMetric::Histogram(_) => &[P50, P90, P95, P99, P999, Max, Mean],
            SloMetric::ErrorRate | SloMetric::Goodput | SloMetric::Dropped => &[Ratio, Rate],
            SloMetric::Throughput | SloMetric::Capacity => &[Rate],
            SloMetric::CacheHitRatio => &[Ratio],
            SloMetric::Growth(_) => &[Ratio, Slope],
        }
    }

    /// The kind of value `stat` of this metric produces, as an example for error messages.
    fn value_kind(self, stat: Stat) -> ValueKind {
        match (self, stat) {
            (SloMetric::Histogram(Metric::OutputTokensPerS), _) => ValueKind::Number,
            (SloMetric::Histogram(_), _) => ValueKind::Duration,
            (_, Stat::Ratio | Stat::Slope) => ValueKind::Percentage,
            _ => ValueKind::Number,
        }
    }
}

/// The kind of [`Quantity`] a stat is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Duration,
    Percentage,
    Number,
}

impl ValueKind {
    fn matches(self, value: Quantity) -> bool {
        matches!(
            (self, value),
            (ValueKind::Duration, Quantity::Duration(_))
                | (ValueKind::Percentage, Quantity::Ratio(_))
                | (ValueKind::Number, Quantity::Number(_))
        )
    }

    fn example(self) -> &'static str {
        match self {
            ValueKind::Duration => "a duration like \"250ms\"",
            ValueKind::Percentage => "a percentage like \"1%\"",
            ValueKind::Number => "a plain number like 100",
        }
    }
}

impl Stat {
    /// Every stat, for error messages.
    pub const ALL: [Stat; 10] = [
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Max,
        Stat::Mean,
        Stat::Rate,
        Stat::Ratio,
        Stat::Slope,
    ];

    /// The name used in SLO files.
    pub fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::Rate => "rate",
            Stat::Ratio => "ratio",
            Stat::Slope => "slope",
        }
    }

    /// The quantile of a percentile stat.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            Stat::P999 => Some(0.999),
            Stat::Max => Some(1.0),
            _ => None,
        }
    }
}

impl Op {
    /// The symbol used in SLO files.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Parses a symbol.
    pub fn from_symbol(symbol: &str) -> Option<Op> {
        [Op::Lt, Op::Le, Op::Gt, Op::Ge]
            .into_iter()
            .find(|op| op.symbol() == symbol)
    }

    /// True when `measured op limit` holds.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
        }
    }
}

impl From<SloMetric> for String {
    fn from(metric: SloMetric) -> String {
        metric.name().to_owned()
    }
}

impl TryFrom<String> for SloMetric {
    type Error = String;

    fn try_from(name: String) -> Result<SloMetric, String> {
        SloMetric::from_name(&name).ok_or_else(|| format!("unknown SLO metric `{name}`"))
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.metric.name(),
            self.stat.name(),
            self.op.symbol(),
            self.value
        )
    }
}

impl fmt::Display for SloStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SloStatus::Pass => "pass",
            SloStatus::Fail => "FAIL",
            SloStatus::NoData => "no data",
        })
    }
}
