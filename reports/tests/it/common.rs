//! A small run with hand-picked values, so tests can state exact expectations; the gate's
//! options for a quiet machine; a scratch directory. `browser` finds and starts headless
//! Chromium; the gateway's dashboard test includes the same file.

pub mod browser;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use reports::model::{
    BreakerState, Environment, ErrorClass, GatewaySample, Interval, Metric, RunResult,
    new_histogram,
};

pub fn histogram(values_us: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values_us {
        h.record(*v).expect("test values fit");
    }
    h
}

/// Seconds 0 and 2 have requests; second 1 has only a gateway sample.
pub fn small_run() -> RunResult {
    let started = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
    let mut config = toml::Table::new();
    config.insert("model".into(), "m1".into());
    config.insert("users".into(), 4.into());
    let mut run = RunResult::new(
        "small",
        config,
        Environment {
            host: "h".into(),
            cores: 2,
            os: "linux".into(),
            git_commit: None,
            tool_version: "0.0.0".into(),
        },
        started,
    );

    let mut first = Interval::new(0);
    first.active_users = 2;
    first.counters.requests = 3;
    first.counters.ok = 2;
    first.counters.good = 1;
    first.counters.errors.record(ErrorClass::Http5xx);
    first.counters.cache.hit = 1;
    first.counters.cache.miss = 1;
    first.counters.output_tokens = 30;
    first
        .histograms
        .insert(Metric::Latency, &histogram(&[100_000, 200_000]));
    first
        .histograms
        .insert(Metric::Ttft, &histogram(&[10_000, 20_000]));
    run.push_interval(first);

    let mut third = Interval::new(2);
    third.active_users = 4;
    third.counters.requests = 1;
    third.counters.ok = 1;
    third.counters.good = 1;
    third.counters.dropped_arrivals = 2;
    third.counters.output_tokens = 10;
    third
        .histograms
        .insert(Metric::Latency, &histogram(&[50_000]));
    third.histograms.insert(Metric::Ttft, &histogram(&[5_000]));
    run.push_interval(third);

    run.push_gateway_sample(GatewaySample {
        second: 1,
        rss_bytes: Some(1_000),
        cpu_percent: Some(12.5),
        queue_depth: Some(3),
        breaker: Some(BreakerState::Open),
        cache_hit_ratio: Some(0.5),
        alive_tasks: Some(40),
        open_connections: Some(8),
    });
    run.finish(
        started + chrono::TimeDelta::seconds(3),
        Duration::from_secs(3),
    );
    run
}

/// The value HdrHistogram reports for a recorded value: the top of its bucket.
pub fn reported(value: u64) -> u64 {
    new_histogram().highest_equivalent(value)
}

/// Gate options with the tolerances of a quiet machine, whose A/A rounds move by a percent or
/// two: 3% for throughput, 0.1 points for errors, 5% for medians, 10% for p99s.
pub fn quiet_gate_options() -> reports::gate::GateOptions {
    use reports::gate::{GateOptions, Tolerance, Tolerances};
    let t = |text: &str| text.parse::<Tolerance>().expect("a tolerance");
    GateOptions {
        tolerances: Tolerances {
            throughput: t("3%"),
            errors: t("0.1%"),
            added_p50: t("5%"),
            added_p99: t("10%"),
            overhead_p50: t("5%"),
            overhead_p99: t("10%"),
            ttft_p50: t("5%"),
            ttft_p99: t("10%"),
        },
        ..GateOptions::default()
    }
}

/// A scratch directory, removed when the value drops.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
