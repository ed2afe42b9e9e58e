//! `timeseries.csv`: one row per second.

use std::io::Write;

use crate::model::{BreakerState, ErrorClass, RunResult};
use crate::timeline::{Percentiles, timeline};

/// The header row. `rps` is the requests completed in that second; times are in milliseconds,
/// ratios are fractions (4 decimals), CPU is in percent of one core; a cell is empty where
/// nothing was measured.
pub const TIMESERIES_COLUMNS: [&str; 28] = [
    "second",
    "rps",
    "ok",
    "active_users",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "errors",
    "errors_connect",
    "errors_tls",
    "errors_timeout",
    "errors_http_4xx",
    "errors_http_5xx",
    "errors_stream_broken",
    "errors_bad_payload",
    "cache_hit_ratio",
    "dropped_arrivals",
    "output_tokens",
    "gateway_rss_bytes",
    "gateway_cpu_percent",
    "queue_depth",
    "breaker_state",
    "gateway_cache_hit_ratio",
    "gateway_alive_tasks",
    "gateway_open_connections",
];

/// Writes `timeseries.csv`.
pub fn write_timeseries(out: &mut impl Write, run: &RunResult) -> std::io::Result<()> {
    writeln!(out, "{}", TIMESERIES_COLUMNS.join(","))?;
    for s in timeline(run) {
        let gateway = s.gateway.unwrap_or_default();
        let mut row: Vec<String> = vec![
            s.second.to_string(),
            s.requests.to_string(),
            s.ok.to_string(),
            cell(s.active_users),
        ];
        row.extend(millis(s.latency));
        row.extend(millis(s.ttft));
        row.push(s.errors.total().to_string());
        row.extend(ErrorClass::ALL.map(|c| s.errors.get(c).to_string()));
        row.extend([
            ratio(s.cache_hit_ratio),
            s.dropped_arrivals.to_string(),
            s.output_tokens.to_string(),
            cell(gateway.rss_bytes),
            cell(gateway.cpu_percent.map(|cpu| format!("{cpu:.2}"))),
            cell(gateway.queue_depth),
            cell(gateway.breaker.map(BreakerState::name)),
            ratio(gateway.cache_hit_ratio),
            cell(gateway.alive_tasks),
            cell(gateway.open_connections),
        ]);
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(())
}

fn millis(p: Option<Percentiles>) -> [String; 3] {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1_000.0);
    match p {
        Some(p) => [ms(p.p50), ms(p.p95), ms(p.p99)],
        None => Default::default(),
    }
}

fn ratio(value: Option<f64>) -> String {
    cell(value.map(|r| format!("{r:.4}")))
}

fn cell(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}
