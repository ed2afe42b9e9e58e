//! A generated run with the shapes of a real one: a ramp of users, a latency incident with
//! errors and an open breaker, a slowly growing gateway RSS; and a rate sweep's levels, each
//! passing or failing as asked. For demos, for benchmarks of the writers, and for tests that
//! need a full [`RunResult`] or [`Sweep`] without running a load test.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{
    BreakerState, Environment, ErrorClass, GatewaySample, Interval, Metric, Offered, RunResult,
    Sweep, SweepLevel, new_histogram,
};

/// A run of `seconds` one-second intervals, the same for the same `seed`.
pub fn synthetic_run(seconds: u32, seed: u64) -> RunResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let started_at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut run = RunResult::new("synthetic", config(), environment(), started_at);
    let incident = (seconds * 6 / 10)..(seconds * 6 / 10 + (seconds / 20).max(2));
    for second in 0..seconds {
        let in_incident = incident.contains(&second);
        let users = users_at(second, seconds);
        run.push_interval(interval(&mut rng, second, users, in_incident));
        run.push_gateway_sample(GatewaySample {
            second,
            rss_bytes: Some(60_000_000 + u64::from(second) * 2_000 + rng.random_range(0..400_000)),
            cpu_percent: Some(f64::from(users as u32) * 1.5 + rng.random_range(0.0..5.0)),
            queue_depth: Some(if in_incident {
                rng.random_range(5..40)
            } else {
                rng.random_range(0..3)
            }),
            breaker: Some(if in_incident {
                BreakerState::Open
            } else if incident.end == second {
                BreakerState::HalfOpen
            } else {
                BreakerState::Closed
            }),
            cache_hit_ratio: Some(0.3 + rng.random_range(-0.03..0.03)),
            alive_tasks: Some(2 * users + rng.random_range(5..15)),
            open_connections: Some(users),
        });
    }
    let ended_at = started_at + TimeDelta::seconds(i64::from(seconds));
    run.finish(ended_at, Duration::from_secs(u64::from(seconds)));
    run
}

/// Seconds each level of [`synthetic_sweep`] covers.
const LEVEL_SECS: u32 = 10;

/// A sweep of a synchronous baseline at 1 req/s, then one open-model level per
/// `(rps, passed, saturated)` of `rates`, in order, each `LEVEL_SECS` long. Every level achieves
/// the rate it offered with half a second of mean latency; one that did not pass failed
/// `ttft p95 < 500ms`.
pub fn synthetic_sweep(rates: &[(f64, bool, bool)]) -> Sweep {
    let baseline = SweepLevel {
        offered: Offered::Synchronous,
        ..sweep_level(0, 1.0, true, false)
    };
    let rates = rates
        .iter()
        .zip(1..)
        .map(|(&(rps, passed, saturated), n)| sweep_level(n * LEVEL_SECS, rps, passed, saturated));
    Sweep {
        levels: std::iter::once(baseline).chain(rates).collect(),
    }
}

/// An open-model level at `rps` from second `start`.
fn sweep_level(start: u32, rps: f64, passed: bool, saturated: bool) -> SweepLevel {
    SweepLevel {
        offered: Offered::Rate { rps },
        start,
        end: start + LEVEL_SECS,
        requests: (rps * f64::from(LEVEL_SECS)) as u64,
        achieved_rps: rps,
        goodput_rps: rps,
        streams: rps * 0.5,
        ttft_p95_ms: Some(60.0),
        failed: if passed {
            Vec::new()
        } else {
            vec!["ttft p95 < 500ms".to_owned()]
        },
        saturated,
    }
}

/// Ramp up over the first tenth, hold, ramp down over the last tenth.
fn users_at(second: u32, seconds: u32) -> u64 {
    const PEAK: u64 = 50;
    let ramp = (seconds / 10).max(1);
    let level = if second < ramp {
        f64::from(second + 1) / f64::from(ramp)
    } else if second >= seconds - ramp {
        f64::from(seconds - second) / f64::from(ramp)
    } else {
        1.0
    };
    ((PEAK as f64 * level).round() as u64).max(1)
}

fn interval(rng: &mut StdRng, second: u32, users: u64, in_incident: bool) -> Interval {
    let mut interval = Interval::new(second);
    interval.active_users = users;
    let mut histograms: BTreeMap<Metric, Histogram<u64>> = BTreeMap::new();
    let mut record = |metric: Metric, value: u64, count: u64| {
        // Auto-resizing histograms take any value these bounded ranges produce.
        let _ = histograms
            .entry(metric)
            .or_insert_with(new_histogram)
            .record_n(value, count);
    };
    let requests = users * 2 + rng.random_range(0..users.max(2));
    let slow = if in_incident { 4.0 } else { 1.0 };
    let counters = &mut interval.counters;
    for _ in 0..requests {
        counters.requests += 1;
        let failure = if in_incident { 0.2 } else { 0.005 };
        if rng.random_bool(failure) {
            let class = ErrorClass::ALL[rng.random_range(0..ErrorClass::ALL.len())];
            let class = if in_incident && rng.random_bool(0.7) {
                ErrorClass::Http5xx
            } else {
                class
            };
            counters.errors.record(class);
            continue;
        }
        counters.ok += 1;
        let ttft_us = (50_000.0 * slow * lognormal(rng, 0.25)) as u64;
        let itl_us = (10_000.0 * lognormal(rng, 0.2)) as u64;
        let tokens: u64 = rng.random_range(50..400);
        let e2e_us = (ttft_us + itl_us * (tokens - 1)).max(1);
        record(Metric::Ttft, ttft_us, 1);
        record(Metric::Itl, itl_us, tokens - 1);
        record(Metric::Tpot, (e2e_us - ttft_us) / (tokens - 1), 1);
        record(Metric::Latency, e2e_us, 1);
        record(Metric::OutputTokensPerS, tokens * 1_000_000_000 / e2e_us, 1);
        record(Metric::Overhead, (150.0 * lognormal(rng, 0.5)) as u64, 1);
        counters.output_tokens += tokens;
        counters.input_tokens += rng.random_range(100..1_000);
        if e2e_us < 5_000_000 && ttft_us < 200_000 {
            counters.good += 1;
        }
        match rng.random_range(0..10) {
            0..3 => counters.cache.hit += 1,
            3 => counters.cache.coalesced += 1,
            _ => counters.cache.miss += 1,
        }
    }
    for (metric, histogram) in &histograms {
        interval.histograms.insert(*metric, histogram);
    }
    interval
}

/// A log-normal factor with median 1.
fn lognormal(rng: &mut StdRng, sigma: f64) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (sigma * normal).exp()
}

fn config() -> toml::Table {
    toml::toml! {
        scenario = "synthetic"
        model = "gpt-4o-mini"
        users = 50
        api_key = "sk-not-a-real-key"
        [prices."gpt-4o-mini"]
        input_per_mtok = 0.15
        output_per_mtok = 0.6
    }
}

fn environment() -> Environment {
    Environment {
        host: "bench-host".into(),
        cores: 8,
        os: "linux x86_64".into(),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    }
}
