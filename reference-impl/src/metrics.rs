//! Lock-free counters and histograms, and their Prometheus text rendering.
//!
//! Recording is one relaxed atomic add, so the request path never waits on a lock to be
//! measured. Percentiles (admin API) and Prometheus buckets are read from the same data.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Sub-buckets per power of two: bucket widths are at most 1/8 of their value (12.5 %).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Values up to 2^40 (~12 days in microseconds) get their own bucket; larger ones share the last.
const BUCKETS: usize = ((40 - SUB_BITS as usize) + 1) * SUB as usize + SUB as usize;

/// A log-linear histogram of `u64` values (microseconds here).
///
/// Bucket `i` holds values in `(upper(i-1), upper(i)]`, and every power of two is a bucket
/// bound, so Prometheus `le` buckets at powers of two are exact.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

/// Index of the bucket for `v - 1` on a plain log-linear scale (so bounds are inclusive).
fn index(value: u64) -> usize {
    let v = value.saturating_sub(1);
    if v < SUB {
        return v as usize;
    }
    let exp = v.ilog2(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    let i = (u64::from(exp - SUB_BITS + 1) * SUB + sub) as usize;
    i.min(BUCKETS - 1)
}

/// Largest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i + 1;
    }
    let exp = i / SUB - 1 + u64::from(SUB_BITS);
    let sub = i % SUB;
    (SUB + sub + 1) << (exp - u64::from(SUB_BITS))
}

impl Histogram {
    pub fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// p50, p90, p95, p99 and p99.9.
    pub fn summary(&self) -> Percentiles {
        Percentiles::of(&self.counts())
    }

    /// The count of each bucket now. Two of these subtracted ([`counts_since`]) are the
    /// histogram of what was recorded in between, so percentiles of the last second come from
    /// the same data without a second histogram on the request path.
    pub fn counts(&self) -> Box<[u64]> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    /// Writes `name_bucket`, `name_sum` and `name_count` with `le` at powers of two.
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let bound = upper(i);
            if bound.is_power_of_two() && bound <= 1 << 27 {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
                );
            }
        }
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}\n{name}_sum{} {}\n{name}_count{} {}",
            self.count(),
            braces(labels),
            self.sum.load(Relaxed),
            braces(labels),
            self.count(),
        );
    }
}

/// Nearest-rank quantile of bucket counts from [`Histogram::counts`]; 0 when empty.
fn quantile_of(counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return upper(i);
        }
    }
    upper(BUCKETS - 1)
}

/// What was recorded between two readings of [`Histogram::counts`] (`before` the earlier).
pub fn counts_since(now: &[u64], before: &[u64]) -> Box<[u64]> {
    now.iter()
        .zip(before)
        .map(|(n, b)| n.saturating_sub(*b))
        .collect()
}

/// Percentiles of one histogram, in its unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
}

impl Percentiles {
    /// Of bucket counts from [`Histogram::counts`] (or a difference of two).
    pub fn of(counts: &[u64]) -> Self {
        Self {
            count: counts.iter().sum(),
            p50: quantile_of(counts, 0.50),
            p90: quantile_of(counts, 0.90),
            p95: quantile_of(counts, 0.95),
            p99: quantile_of(counts, 0.99),
            p999: quantile_of(counts, 0.999),
        }
    }
}

/// A gauge of things alive: requests in flight, open streams, open connections, upstream
/// requests.
///
/// It can only be raised through [`Gauge::hold`], and the [`GaugeGuard`] that returns lowers it
/// again when dropped. A decrement written as the last line of a handler never runs when the
/// handler panics or its client hangs up (the future is dropped mid-await); a guard's `Drop`
/// runs in both cases, so the gauge always returns to what is really alive.
#[derive(Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Counts one more; the guard counts it off when dropped.
    pub fn hold(&self) -> GaugeGuard {
        self.0.fetch_add(1, Relaxed);
        GaugeGuard(Arc::clone(&self.0))
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// One unit of a [`Gauge`], given back when dropped. Owns its gauge (no borrow), so it can
/// travel with a stream or a connection task.
#[derive(Debug)]
#[must_use = "the gauge is lowered again as soon as the guard is dropped"]
pub struct GaugeGuard(Arc<AtomicI64>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Gateway-wide request metrics.
#[derive(Default)]
pub struct GatewayMetrics {
    /// Responses by status class: 2xx, 4xx, 5xx (anything else counts as 5xx).
    pub responses: [AtomicU64; 3],
    /// Time spent in the gateway outside upstream I/O, per request (µs).
    pub overhead_us: Histogram,
    /// Request arrival to last byte sent (µs).
    pub latency_us: Histogram,
    /// Upstream attempts after the first, per request.
    pub retries: AtomicU64,
    /// Streams that ended with an error event after they had started.
    pub streams_broken: AtomicU64,
    /// Handler panics caught and turned into 500s.
    pub panics: AtomicU64,
    /// Chat and embeddings requests whose handler is running.
    pub in_flight: Gauge,
    /// Upstream streams being relayed to a client.
    pub open_streams: Gauge,
    /// Client connections accepted and not yet closed.
    pub open_connections: Gauge,
    /// WebSocket connections of `GET /v1/realtime/chat` open (also in `open_connections`).
    pub active_websockets: Gauge,
}

impl GatewayMetrics {
    pub fn record_status(&self, status: u16) {
        let class = match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.responses[class].fetch_add(1, Relaxed);
    }

    pub fn total_responses(&self) -> u64 {
        self.responses.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Share of responses that were 5xx or ended a started stream with an error.
    pub fn error_rate(&self) -> f64 {
        let total = self.total_responses();
        if total == 0 {
            return 0.0;
        }
        let failed = self.responses[2].load(Relaxed) + self.streams_broken.load(Relaxed);
        failed as f64 / total as f64
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP gateway_responses_total Responses sent, by status class.\n# TYPE gateway_responses_total counter"
        );
        for (class, counter) in ["2xx", "4xx", "5xx"].iter().zip(&self.responses) {
            let _ = writeln!(
                out,
                "gateway_responses_total{{class=\"{class}\"}} {}",
                counter.load(Relaxed)
            );
        }
        self.overhead_us.render(
            out,
            "gateway_overhead_us",
            "Time spent in the gateway outside upstream I/O, microseconds.",
            "",
        );
        self.latency_us.render(
            out,
            "gateway_request_duration_us",
            "Request arrival to last byte sent, microseconds.",
            "",
        );
        counter(
            out,
            "gateway_retries_total",
            "Upstream attempts after the first.",
            &self.retries,
        );
        counter(
            out,
            "gateway_streams_broken_total",
            "Streams ended with an error event after they started.",
            &self.streams_broken,
        );
        counter(
            out,
            "gateway_panics_total",
            "Handler panics caught.",
            &self.panics,
        );
        gauge(
            out,
            "gateway_requests_in_flight",
            "Requests being handled.",
            self.in_flight.get(),
        );
        gauge(
            out,
            "gateway_open_streams",
            "Streaming responses open.",
            self.open_streams.get(),
        );
        gauge(
            out,
            "gateway_open_connections",
            "Client connections open.",
            self.open_connections.get(),
        );
        gauge(
            out,
            "gateway_active_websockets",
            "WebSocket connections open.",
            self.active_websockets.get(),
        );
        // A leak of tasks (a stream or connection that never ends) shows here first.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            gauge(
                out,
                "gateway_runtime_alive_tasks",
                "Tasks alive on the gateway's tokio runtime.",
                runtime.metrics().num_alive_tasks(),
            );
        }
    }
}

/// Writes one unlabelled counter.
pub fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        value.load(Relaxed)
    );
}

/// Writes one unlabelled gauge.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_guard_gives_its_unit_back_on_drop_and_on_unwind() {
        let gauge = Gauge::default();
        let first = gauge.hold();
        let second = gauge.hold();
        assert_eq!(gauge.get(), 2);
        drop(first);
        assert_eq!(gauge.get(), 1);
        let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _third = gauge.hold();
            panic!("handler bug");
        }));
        assert!(held.is_err());
        assert_eq!(gauge.get(), 1);
        drop(second);
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn buckets_are_contiguous_and_bounds_inclusive() {
        for i in 1..BUCKETS {
            assert!(upper(i) > upper(i - 1), "bucket {i}");
            assert_eq!(index(upper(i)), i, "upper bound of {i} lands in {i}");
            assert_eq!(index(upper(i - 1) + 1), i, "first value of {i}");
        }
        for p in 0..=40 {
            let v = 1u64 << p;
            assert_eq!(upper(index(v)), v, "2^{p} is a bucket bound");
        }
    }

    #[test]
    fn quantiles_are_nearest_rank_within_a_bucket() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let counts = h.counts();
        let p50 = quantile_of(&counts, 0.5);
        assert!((500..=563).contains(&p50), "p50 {p50}");
        let p99 = quantile_of(&counts, 0.99);
        assert!((990..=1024).contains(&p99), "p99 {p99}");
        assert_eq!(quantile_of(&counts, 1.0), 1024);
        assert_eq!(quantile_of(&Histogram::default().counts(), 0.5), 0);
    }

    #[test]
    fn percentiles_of_a_difference_cover_only_what_came_between() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(10);
        }
        let before = h.counts();
        for _ in 0..100 {
            h.record(5_000);
        }
        let between = Percentiles::of(&counts_since(&h.counts(), &before));
        assert_eq!(between.count, 100);
        assert!((5_000..=5_120).contains(&between.p50), "{between:?}");
        assert_eq!(h.summary().count, 200);
        assert_eq!(Percentiles::of(&counts_since(&before, &before)).p99, 0);
    }

    #[test]
    fn prometheus_buckets_are_cumulative() {
        let h = Histogram::default();
        h.record(3);
        h.record(100);
        let mut out = String::new();
        h.render(&mut out, "x_us", "help", "");
        assert!(out.contains("x_us_bucket{le=\"4\"} 1\n"), "{out}");
        assert!(out.contains("x_us_bucket{le=\"128\"} 2\n"), "{out}");
        assert!(
            out.contains("x_us_bucket{le=\"+Inf\"} 2\nx_us_sum 103\nx_us_count 2\n"),
            "{out}"
        );
    }
}
