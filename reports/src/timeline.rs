//! The per-second view of a run that `timeseries.csv` and the report's charts both draw from.

use crate::model::{ErrorCounts, GatewaySample, Metric, RunResult, percentile};

/// p50, p95 and p99 of one metric in one second, in recorded units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

/// One second of a run, with the per-interval percentiles already read from its histograms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Second {
    pub second: u32,
    pub requests: u64,
    pub ok: u64,
    /// `None` for a second the run recorded no interval for: the count is unknown, not zero.
    pub active_users: Option<u64>,
    pub latency: Option<Percentiles>,
    pub ttft: Option<Percentiles>,
    pub errors: ErrorCounts,
    /// From the `x-cache` headers of this second's responses.
    pub cache_hit_ratio: Option<f64>,
    pub dropped_arrivals: u64,
    pub output_tokens: u64,
    pub gateway: Option<GatewaySample>,
}

/// One [`Second`] for every second from 0 to the last interval or gateway sample; seconds
/// without activity are present with zero counts, so the series have no hidden holes.
pub fn timeline(run: &RunResult) -> Vec<Second> {
    let last = run
        .intervals
        .iter()
        .map(|i| i.second)
        .chain(run.gateway.iter().map(|s| s.second))
        .max();
    let Some(last) = last else {
        return Vec::new();
    };
    let mut seconds: Vec<Second> = (0..=last)
        .map(|second| Second {
            second,
            ..Second::default()
        })
        .collect();
    for interval in &run.intervals {
        let row = &mut seconds[interval.second as usize];
        let counters = &interval.counters;
        row.requests = counters.requests;
        row.ok = counters.ok;
        row.active_users = Some(interval.active_users);
        row.latency = percentiles(interval, Metric::Latency);
        row.ttft = percentiles(interval, Metric::Ttft);
        row.errors = counters.errors;
        row.cache_hit_ratio = counters.cache.hit_ratio();
        row.dropped_arrivals = counters.dropped_arrivals;
        row.output_tokens = counters.output_tokens;
    }
    // With several samples in one second the last one wins: it is the newest reading.
    for sample in &run.gateway {
        seconds[sample.second as usize].gateway = Some(*sample);
    }
    seconds
}

fn percentiles(interval: &crate::model::Interval, metric: Metric) -> Option<Percentiles> {
    let histogram = interval.histograms.get(metric)?;
    Some(Percentiles {
        p50: percentile(&histogram, 0.50)?,
        p95: percentile(&histogram, 0.95)?,
        p99: percentile(&histogram, 0.99)?,
    })
}
