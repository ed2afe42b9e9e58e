//! What the sampler reads from the gateway once a second.

use serde::{Deserialize, Serialize};

/// State of the gateway's circuit breakers; with several providers, the worst one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The name used in CSV cells and JSON.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// 0 closed, 1 half-open, 2 open: a number to plot.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// One sample of the gateway process and its `/metrics`. Every reading is optional: an external
/// `--target` exposes its process only with `--gateway-pid`, and maybe no `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySample {
    /// Seconds since the run started.
    pub second: u32,
    /// Resident memory of the gateway's process and the processes under it (a supervisor's
    /// workers).
    pub rss_bytes: Option<u64>,
    /// CPU use over the last second, the same processes'; 100 is one core.
    pub cpu_percent: Option<f64>,
    pub queue_depth: Option<u64>,
    pub breaker: Option<BreakerState>,
    /// Cache hits / lookups as the gateway counts them, over the lookups since the previous
    /// sample (none in the first: a gateway's counters may hold lookups from before the run).
    pub cache_hit_ratio: Option<f64>,
    /// Tasks alive on the runtime that serves the gateway: a stream or connection that never
    /// ends shows as growth here.
    pub alive_tasks: Option<u64>,
    /// Client connections the gateway holds open.
    pub open_connections: Option<u64>,
}

/// A gateway series that must level off after warm-up in a long run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewaySeries {
    Rss,
    Tasks,
    Connections,
}

impl GatewaySeries {
    /// This series' reading in `sample`.
    pub fn read(self, sample: &GatewaySample) -> Option<f64> {
        match self {
            GatewaySeries::Rss => sample.rss_bytes,
            GatewaySeries::Tasks => sample.alive_tasks,
            GatewaySeries::Connections => sample.open_connections,
        }
        .map(|value| value as f64)
    }
}
