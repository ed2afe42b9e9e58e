//! The result of one run: what the harness records and every writer reads.
//!
//! A [`RunResult`] is built incrementally: [`RunResult::new`] at the start, one
//! [`RunResult::push_interval`] per second (several calls for the same second merge, so workers
//! can each push their own), [`RunResult::push_gateway_sample`] from the sampler, and
//! [`RunResult::finish`] at the end. The run totals are kept merged as intervals arrive, so
//! [`crate::slo::evaluate_partial`] can be called every second at constant cost.

mod counters;
mod environment;
mod gateway;
mod generator;
mod histograms;
mod metric;
mod sweep;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use counters::{CacheCounts, Counters, ErrorClass, ErrorCounts, SendLag, StatusCounts};
pub use environment::Environment;
pub use gateway::{BreakerState, GatewaySample, GatewaySeries};
pub use generator::{GeneratorSample, NotedSteal, SATURATED_LAG, STEAL_NOTED};
pub use histograms::{
    EncodedHistogram, Histograms, InvalidHistogram, SIGNIFICANT_DIGITS, Summary, new_histogram,
    percentile,
};
pub use metric::{Metric, Unit, short, significant};
pub use sweep::{Capacity, Limit, Offered, Recovery, Sweep, SweepLevel};

use crate::slo::{Slo, SloResult, evaluate};

/// Version of the `summary.json` schema; bumped on any change a reader must know about.
pub const SCHEMA_VERSION: u32 = 1;

/// Length of one interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The second of a run that `offset` (from the run's start) falls in: the `second` of its
/// interval. An offset beyond `u32::MAX` seconds saturates.
pub fn second_of(offset: Duration) -> u32 {
    u32::try_from(offset.as_secs()).unwrap_or(u32::MAX)
}

/// Everything measured in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// [`SCHEMA_VERSION`] of the code that wrote it.
    pub schema_version: u32,
    /// Scenario name (`smoke`, `stress`, ...).
    pub scenario: String,
    /// The resolved run configuration. Values of keys that look like secrets (`api_key`, `token`,
    /// `secret`, `password`, `authorization`) are replaced when serialized.
    #[serde(serialize_with = "crate::redact::serialize_table")]
    pub config: toml::Table,
    pub environment: Environment,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// Measured on a monotonic clock, not `ended_at - started_at`.
    #[serde(with = "secs_f64")]
    pub wall_time: Duration,
    /// Per-request limits that decide which successes count towards goodput.
    pub goodput_limits: GoodputLimits,
    /// Histograms of the whole run: the sum of every interval's.
    pub metrics: Histograms,
    /// Counters of the whole run: the sum of every interval's.
    pub totals: Counters,
    /// Non-2xx responses of the whole run by status code: the sum of every interval's.
    #[serde(default, skip_serializing_if = "StatusCounts::is_empty")]
    pub statuses: StatusCounts,
    /// One entry per second that saw activity, ordered by `second`.
    pub intervals: Vec<Interval>,
    /// Gateway samples, ordered by `second`.
    pub gateway: Vec<GatewaySample>,
    /// The load generator's own health, one sample per second, ordered by `second`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generator: Vec<GeneratorSample>,
    /// SLO outcomes, empty until evaluated. In a rate sweep, only the `capacity` SLOs: the
    /// others are judged level by level ([`Sweep`]).
    pub slo_results: Vec<SloResult>,
    /// The levels of a rate sweep (stress), each judged on its own; `None` for other loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// Why the run ended before its planned end (e.g. an aborting SLO was lost); `None` when it
    /// ran its course.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// What a reader must know to trust the figures (certificates not verified, no `/metrics`
    /// on the target, ...), one sentence each; shown by the summary and the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One second of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Seconds since the run started at which this interval begins.
    pub second: u32,
    /// Users active at the end of the interval (summed across workers).
    pub active_users: u64,
    pub counters: Counters,
    /// Non-2xx responses of this second by status code.
    #[serde(default, skip_serializing_if = "StatusCounts::is_empty")]
    pub statuses: StatusCounts,
    pub histograms: Histograms,
}

/// Limits a successful request must meet to count towards goodput; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodputLimits {
    #[serde(rename = "ttft_us", with = "opt_micros")]
    pub ttft: Option<Duration>,
    #[serde(rename = "tpot_us", with = "opt_micros")]
    pub tpot: Option<Duration>,
    #[serde(rename = "e2e_us", with = "opt_micros")]
    pub e2e: Option<Duration>,
}

impl Interval {
    /// An empty interval starting `second` seconds into the run.
    pub fn new(second: u32) -> Interval {
        Interval {
            second,
            ..Interval::default()
        }
    }

    /// Adds another worker's view of the same second.
    pub fn merge(&mut self, other: &Interval) {
        self.active_users += other.active_users;
        self.counters.merge(&other.counters);
        self.statuses.merge(&other.statuses);
        self.histograms.merge(&other.histograms);
    }

    /// Completed requests per second.
    pub fn rps(&self) -> f64 {
        self.counters.requests as f64 / INTERVAL.as_secs_f64()
    }
}

impl RunResult {
    /// An empty result for a run that starts now.
    pub fn new(
        scenario: impl Into<String>,
        config: toml::Table,
        environment: Environment,
        started_at: DateTime<Utc>,
    ) -> RunResult {
        RunResult {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.into(),
            config,
            environment,
            started_at,
            ended_at: started_at,
            wall_time: Duration::ZERO,
            goodput_limits: GoodputLimits::default(),
            metrics: Histograms::new(),
            totals: Counters::default(),
            statuses: StatusCounts::default(),
            intervals: Vec::new(),
            gateway: Vec::new(),
            generator: Vec::new(),
            slo_results: Vec::new(),
            sweep: None,
            stopped_early: None,
            warnings: Vec::new(),
        }
    }

    /// Adds one interval, merging it into an existing one of the same second, and into the
    /// run totals.
    ///
    /// Thousands of intervals are kept, so their histograms are stored encoded; only the run
    /// totals stay decoded for the next addition.
    pub fn push_interval(&mut self, mut interval: Interval) {
        self.totals.merge(&interval.counters);
        self.statuses.merge(&interval.statuses);
        self.metrics.merge(&interval.histograms);
        match self
            .intervals
            .binary_search_by_key(&interval.second, |i| i.second)
        {
            Ok(at) => {
                let merged = &mut self.intervals[at];
                merged.merge(&interval);
                merged.histograms.compact();
            }
            Err(at) => {
                interval.histograms.compact();
                self.intervals.insert(at, interval);
            }
        }
    }

    /// Adds one gateway sample, keeping samples ordered by second.
    pub fn push_gateway_sample(&mut self, sample: GatewaySample) {
        let at = self.gateway.partition_point(|s| s.second <= sample.second);
        self.gateway.insert(at, sample);
    }

    /// Adds one generator sample, keeping samples ordered by second.
    pub fn push_generator_sample(&mut self, sample: GeneratorSample) {
        let at = self
            .generator
            .partition_point(|s| s.second <= sample.second);
        self.generator.insert(at, sample);
    }

    /// The seconds in which the load generator was saturated, in order.
    pub fn saturated_seconds(&self) -> Vec<u32> {
        self.generator
            .iter()
            .filter(|s| s.saturated)
            .map(|s| s.second)
            .collect()
    }

    /// This run up to the first second in which the load generator was saturated: the same
    /// configuration, only the intervals and gateway samples before it. From that second on,
    /// figures describe the client (and requests in flight then carry its delay into later
    /// seconds), so SLOs judged on this part say whether a verdict rests on the saturation.
    pub fn before_saturation(&self) -> RunResult {
        let end = self
            .saturated_seconds()
            .first()
            .copied()
            .unwrap_or(u32::MAX);
        let mut clean = RunResult::new(
            self.scenario.clone(),
            self.config.clone(),
            self.environment.clone(),
            self.started_at,
        );
        clean.goodput_limits = self.goodput_limits;
        for interval in self.intervals.iter().filter(|i| i.second < end) {
            clean.push_interval(interval.clone());
        }
        for sample in self.gateway.iter().filter(|s| s.second < end) {
            clean.push_gateway_sample(*sample);
        }
        let covered = self.wall_time.min(INTERVAL * end);
        clean.finish(self.ended_at, covered);
        clean
    }

    /// Whether SLOs this run failed may be the load generator's doing rather than the
    /// target's: it saturated, and the seconds before it first did met every SLO (or there were
    /// none). A failure already in those seconds is the target's.
    pub fn failure_rests_on_saturation(&self, slos: &[Slo]) -> bool {
        if self.saturated_seconds().is_empty() {
            return false;
        }
        let before = self.before_saturation();
        before.intervals.is_empty() || evaluate(slos, &before).iter().all(SloResult::passed)
    }

    /// Records the end of the run.
    pub fn finish(&mut self, ended_at: DateTime<Utc>, wall_time: Duration) {
        self.ended_at = ended_at;
        self.wall_time = wall_time;
    }

    /// Wall time in seconds, at least one interval long once any interval was pushed, so that
    /// rates of a run still in progress are defined.
    pub fn elapsed_secs(&self) -> f64 {
        let covered = self
            .intervals
            .last()
            .map_or(0.0, |i| f64::from(i.second + 1) * INTERVAL.as_secs_f64());
        self.wall_time.as_secs_f64().max(covered)
    }

    /// Completed requests per second over the run.
    pub fn throughput(&self) -> Option<f64> {
        rate(self.totals.requests, self.elapsed_secs())
    }

    /// Goodput: requests per second that succeeded and met every goodput limit.
    pub fn goodput(&self) -> Option<f64> {
        rate(self.totals.good, self.elapsed_secs())
    }

    /// Aggregate output tokens per second: total output tokens / wall time.
    pub fn output_tokens_per_s(&self) -> Option<f64> {
        rate(self.totals.output_tokens, self.elapsed_secs())
    }

    /// Nearest-rank value at quantile `q` of `metric` over the whole run, in recorded units.
    pub fn percentile(&self, metric: Metric, q: f64) -> Option<u64> {
        self.metrics.percentile(metric, q)
    }

    /// Count, mean and percentiles of `metric` over the whole run, in recorded units.
    pub fn summary(&self, metric: Metric) -> Option<Summary> {
        self.metrics.summary(metric)
    }

    /// The largest number of active users seen in any interval.
    pub fn peak_users(&self) -> u64 {
        self.intervals
            .iter()
            .map(|i| i.active_users)
            .max()
            .unwrap_or(0)
    }

    /// True when every SLO passed (also when there are none).
    pub fn slos_passed(&self) -> bool {
        self.slo_results.iter().all(SloResult::passed)
    }
}

fn rate(count: u64, secs: f64) -> Option<f64> {
    (secs > 0.0).then(|| count as f64 / secs)
}

/// `Duration` as fractional seconds.
mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// `Option<Duration>` as whole microseconds.
mod opt_micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_some(&(d.as_micros() as u64)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_micros))
    }
}
