//! Several workers' runs of one load, merged into the run they make up together.
//!
//! Nothing is estimated: histograms are added bucket by bucket (so every percentile of the merged
//! run is the nearest-rank percentile of all the workers' samples, never an average of
//! percentiles), counters are summed, and the per-second series are aligned by wall clock. The
//! SLOs the workers were judged by are judged again on the merged run.
//!
//! Alignment: a worker's second `s` starts at its own `started_at + s`. The merged run starts at
//! the earliest worker start, and each worker's seconds move by its start offset rounded to the
//! nearest second, so every interval lands in the merged second whose start is nearest its own
//! (at most half a second apart); two workers' intervals that land in the same second are added.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{
    Counters, Environment, GatewaySample, GeneratorSample, Histograms, Interval, RunResult,
};
use crate::slo::{Slo, evaluate};

/// Runs that started further apart than this are not parts of one run.
pub const MAX_START_SPREAD: Duration = Duration::from_secs(24 * 3600);

/// Why runs cannot be merged; renders as one line. `run` is the position of the offending run
/// in the slice given to [`merge`], so callers can name its file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no runs to merge")]
    NoRuns,
    #[error("its {what} is `{found}`, the first run's is `{expected}`")]
    Mismatch {
        run: usize,
        what: &'static str,
        found: String,
        expected: String,
    },
    #[error("it started {} s after the first run, more than {} s apart", spread.as_secs(), MAX_START_SPREAD.as_secs())]
    TooFarApart { run: usize, spread: Duration },
}

impl MergeError {
    /// The position of the run the error is about, if it is about one.
    pub fn run(&self) -> Option<usize> {
        match self {
            MergeError::NoRuns => None,
            MergeError::Mismatch { run, .. } | MergeError::TooFarApart { run, .. } => Some(*run),
        }
    }
}

/// Merges the runs of the workers of one load (same scenario, goodput limits and SLOs).
///
/// The merged run keeps the first run's `config`; gateway samples describe the gateway rather
/// than the load, so for each merged second the sample of the first run (in slice order) that
/// has one is kept, not a sum.
pub fn merge(runs: &[RunResult]) -> Result<RunResult, MergeError> {
    let first = runs.first().ok_or(MergeError::NoRuns)?;
    let slos = slos_of(first);
    for (index, run) in runs.iter().enumerate().skip(1) {
        let mismatch = |what, found: String, expected: String| MergeError::Mismatch {
            run: index,
            what,
            found,
            expected,
        };
        if run.scenario != first.scenario {
            return Err(mismatch(
                "scenario",
                run.scenario.clone(),
                first.scenario.clone(),
            ));
        }
        if run.goodput_limits != first.goodput_limits {
            return Err(mismatch(
                "goodput limits",
                format!("{:?}", run.goodput_limits),
                format!("{:?}", first.goodput_limits),
            ));
        }
        let theirs = slos_of(run);
        if theirs != slos {
            return Err(mismatch("SLO list", list(&theirs), list(&slos)));
        }
    }
    let origin = runs
        .iter()
        .map(|r| r.started_at)
        .min()
        .unwrap_or(first.started_at);
    let mut offsets = Vec::with_capacity(runs.len());
    for (index, run) in runs.iter().enumerate() {
        let offset = offset(origin, run.started_at);
        if offset > MAX_START_SPREAD {
            return Err(MergeError::TooFarApart {
                run: index,
                spread: offset,
            });
        }
        offsets.push(offset);
    }

    let mut merged = RunResult::new(
        first.scenario.clone(),
        first.config.clone(),
        environment(runs),
        origin,
    );
    merged.goodput_limits = first.goodput_limits;
    let mut intervals: BTreeMap<u32, Interval> = BTreeMap::new();
    let mut gateway: BTreeMap<u32, GatewaySample> = BTreeMap::new();
    let mut generator: BTreeMap<u32, GeneratorSample> = BTreeMap::new();
    let mut totals = Counters::default();
    let mut metrics = Histograms::new();
    let mut wall_time = Duration::ZERO;
    for (run, offset) in runs.iter().zip(&offsets) {
        let shift = whole_seconds(*offset);
        totals.merge(&run.totals);
        merged.statuses.merge(&run.statuses);
        for warning in &run.warnings {
            if !merged.warnings.contains(warning) {
                merged.warnings.push(warning.clone());
            }
        }
        metrics.merge(&run.metrics);
        for interval in &run.intervals {
            let second = interval.second.saturating_add(shift);
            intervals
                .entry(second)
                .or_insert_with(|| Interval::new(second))
                .merge(interval);
        }
        for sample in &run.gateway {
            let second = sample.second.saturating_add(shift);
            gateway
                .entry(second)
                .or_insert(GatewaySample { second, ..*sample });
        }
        // A second is saturated when any worker's generator was: its share of the figures
        // describes that worker's client.
        for sample in &run.generator {
            let second = sample.second.saturating_add(shift);
            let merged = generator.entry(second).or_insert(GeneratorSample {
                second,
                ..GeneratorSample::default()
            });
            merged.lag_max_us = merged.lag_max_us.max(sample.lag_max_us);
            merged.cpu_percent = larger(merged.cpu_percent, sample.cpu_percent);
            merged.steal_percent = larger(merged.steal_percent, sample.steal_percent);
            merged.saturated |= sample.saturated;
        }
        wall_time = wall_time.max(*offset + run.wall_time);
    }
    metrics.compact();
    merged.metrics = metrics;
    merged.totals = totals;
    merged.intervals = intervals
        .into_values()
        .map(|mut interval| {
            interval.histograms.compact();
            interval
        })
        .collect();
    merged.gateway = gateway.into_values().collect();
    merged.generator = generator.into_values().collect();
    let ended_at = runs.iter().map(|r| r.ended_at).max().unwrap_or(origin);
    merged.finish(ended_at, wall_time);
    merged.stopped_early = stopped_early(runs);
    merged.slo_results = evaluate(&slos, &merged);
    Ok(merged)
}

/// The SLOs a run was judged by.
fn slos_of(run: &RunResult) -> Vec<Slo> {
    run.slo_results.iter().map(|r| r.slo.clone()).collect()
}

fn list(slos: &[Slo]) -> String {
    let texts: Vec<String> = slos.iter().map(Slo::to_string).collect();
    texts.join("; ")
}

/// How long after `origin` a run started (`origin` is the earliest start).
fn offset(origin: DateTime<Utc>, started_at: DateTime<Utc>) -> Duration {
    (started_at - origin).to_std().unwrap_or_default()
}

/// The larger of two optional figures, or whichever is there.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `offset` rounded to the nearest whole second.
fn whole_seconds(offset: Duration) -> u32 {
    let rounded = (offset + Duration::from_millis(500)).as_secs();
    u32::try_from(rounded).unwrap_or(u32::MAX)
}

/// Why runs stopped early, each prefixed with its position (from 1).
fn stopped_early(runs: &[RunResult]) -> Option<String> {
    let reasons: Vec<String> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.stopped_early
                .as_ref()
                .map(|why| format!("run {}: {why}", i + 1))
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Where the runs were measured: every distinct host, OS and tool version, the cores of every
/// distinct host, and the git commit when all agree.
fn environment(runs: &[RunResult]) -> Environment {
    let distinct = |field: fn(&Environment) -> &str, separator: &str| {
        let mut seen: Vec<&str> = Vec::new();
        for run in runs {
            let value = field(&run.environment);
            if !seen.contains(&value) {
                seen.push(value);
            }
        }
        seen.join(separator)
    };
    let mut cores: BTreeMap<&str, u32> = BTreeMap::new();
    for run in runs {
        let host = cores.entry(run.environment.host.as_str()).or_default();
        *host = (*host).max(run.environment.cores);
    }
    let commit = runs.first().and_then(|r| r.environment.git_commit.clone());
    Environment {
        host: distinct(|e| &e.host, ", "),
        cores: cores.values().sum(),
        os: distinct(|e| &e.os, "; "),
        git_commit: commit.filter(|c| {
            runs.iter()
                .all(|r| r.environment.git_commit.as_ref() == Some(c))
        }),
        tool_version: distinct(|e| &e.tool_version, ", "),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use hdrhistogram::Histogram;

    use super::*;
    use crate::model::{BreakerState, ErrorClass, Metric, new_histogram};
    use crate::slo::{Quantity, SloStatus, parse_slos};

    /// A worker's run: `latencies[s]` are the latencies (µs) of the requests that finished in
    /// its second `s`, one of them failed with a 5xx.
    fn worker(started_ms: i64, host: &str, latencies: &[&[u64]]) -> RunResult {
        let origin = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let started_at = origin + TimeDelta::milliseconds(started_ms);
        let environment = Environment {
            host: host.to_owned(),
            cores: 4,
            os: "linux".to_owned(),
            git_commit: Some("abc".to_owned()),
            tool_version: "0.1.0".to_owned(),
        };
        let mut run = RunResult::new("chat", toml::Table::new(), environment, started_at);
        for (second, values) in latencies.iter().enumerate() {
            let mut histogram = new_histogram();
            for value in *values {
                histogram.record(*value).expect("in range");
            }
            let mut interval = Interval::new(second as u32);
            interval.active_users = 2;
            interval.counters.requests = values.len() as u64;
            interval.counters.ok = values.len() as u64 - 1;
            interval.counters.errors.record(ErrorClass::Http5xx);
            interval.counters.send_lag.max_us = values.len() as u64 * 10;
            interval.histograms.insert(Metric::Latency, &histogram);
            run.push_interval(interval);
            run.push_gateway_sample(GatewaySample {
                second: second as u32,
                rss_bytes: Some(1_000 + started_ms as u64),
                breaker: Some(BreakerState::Closed),
                ..GatewaySample::default()
            });
        }
        let wall = Duration::from_secs(latencies.len() as u64);
        run.finish(
            started_at + TimeDelta::seconds(latencies.len() as i64),
            wall,
        );
        let slos = parse_slos(
            "[[slo]]\nmetric = \"latency\"\nstat = \"p50\"\nop = \"<\"\nvalue = \"25ms\"\n",
        )
        .expect("valid SLO");
        run.slo_results = evaluate(&slos, &run);
        run
    }

    fn direct(values: &[u64]) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for value in values {
            histogram.record(*value).expect("in range");
        }
        histogram
    }

    #[test]
    fn histograms_add_and_counters_sum() {
        let a = worker(0, "a", &[&[10_000, 11_000, 12_000], &[13_000, 90_000]]);
        let b = worker(0, "b", &[&[30_000, 31_000], &[32_000, 33_000, 34_000]]);
        let merged = merge(&[a.clone(), b.clone()]).expect("merges");
        let all = direct(&[
            10_000, 11_000, 12_000, 13_000, 90_000, 30_000, 31_000, 32_000, 33_000, 34_000,
        ]);
        let latency = merged.metrics.get(Metric::Latency).expect("latency");
        assert_eq!(latency, all);
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(
                merged.percentile(Metric::Latency, q),
                Some(all.value_at_quantile(q))
            );
        }
        assert_eq!(merged.totals.requests, 10);
        assert_eq!(merged.totals.ok, 6);
        assert_eq!(merged.totals.errors.http_5xx, 4);
        assert_eq!(
            merged.totals.send_lag.max_us, 30,
            "the max of maxima, not a sum"
        );
        assert_eq!(merged.intervals.len(), 2);
        assert_eq!(merged.intervals[1].counters.requests, 5);
        assert_eq!(merged.intervals[0].active_users, 4);
        // Each worker alone passes p50 < 25 ms or not; the merged run is judged on all samples.
        assert_eq!(a.slo_results[0].status, SloStatus::Pass);
        assert_eq!(b.slo_results[0].status, SloStatus::Fail);
        assert_eq!(merged.slo_results[0].status, SloStatus::Fail);
        assert_eq!(
            merged.slo_results[0].measured.map(Quantity::base_value),
            Some(all.value_at_quantile(0.5) as f64)
        );
    }

    #[test]
    fn seconds_align_by_wall_clock() {
        // b starts 2.4 s after a: its second 0 starts nearest to a's second 2.
        let a = worker(0, "a", &[&[1_000], &[1_000], &[1_000], &[1_000]]);
        let b = worker(2_400, "b", &[&[2_000, 2_000], &[2_000, 2_000]]);
        let merged = merge(&[b.clone(), a]).expect("merges");
        assert_eq!(
            merged.started_at,
            b.started_at - TimeDelta::milliseconds(2_400)
        );
        let requests: Vec<(u32, u64)> = merged
            .intervals
            .iter()
            .map(|i| (i.second, i.counters.requests))
            .collect();
        assert_eq!(requests, [(0, 1), (1, 1), (2, 3), (3, 3)]);
        assert_eq!(merged.wall_time, Duration::from_millis(4_400));
        // Gateway samples are kept, not added: b (first in the slice) wins where both sampled.
        let rss: Vec<(u32, Option<u64>)> = merged
            .gateway
            .iter()
            .map(|s| (s.second, s.rss_bytes))
            .collect();
        assert_eq!(
            rss,
            [
                (0, Some(1_000)),
                (1, Some(1_000)),
                (2, Some(3_400)),
                (3, Some(3_400))
            ]
        );
        assert_eq!(merged.environment.host, "b, a");
        assert_eq!(merged.environment.cores, 8);
        assert_eq!(merged.environment.git_commit.as_deref(), Some("abc"));
    }

    #[test]
    fn runs_of_other_loads_are_refused_by_position() {
        let a = worker(0, "a", &[&[1_000]]);
        let mut other = worker(0, "b", &[&[1_000]]);
        other.scenario = "smoke".to_owned();
        let error = merge(&[a.clone(), a.clone(), other]).expect_err("other scenario");
        assert_eq!(error.run(), Some(2));
        assert_eq!(
            error.to_string(),
            "its scenario is `smoke`, the first run's is `chat`"
        );
        let mut judged = worker(0, "b", &[&[1_000]]);
        judged.slo_results.clear();
        let error = merge(&[a.clone(), judged]).expect_err("other SLOs");
        assert!(
            error.to_string().starts_with("its SLO list is ``"),
            "{error}"
        );
        let late = worker(25 * 3600 * 1000, "c", &[&[1_000]]);
        assert_eq!(merge(&[a, late]).expect_err("apart").run(), Some(1));
        assert!(matches!(merge(&[]), Err(MergeError::NoRuns)));
    }
}
