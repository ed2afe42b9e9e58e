//! The `/metrics` page: Prometheus text for the gateway, each provider (health, pool,
//! breaker, queue) and the cache and rate limiter when they are enabled.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::health::HealthView;
use crate::provider::Provider;
use crate::queue::QueueStats;
use crate::server::Shared;

/// A per-provider series: name, type, help, and how to read it.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Provider, &HealthView) -> f64,
);

const PROVIDER_SERIES: [Series; 11] = [
    (
        "gateway_breaker_state",
        "gauge",
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        |p, _| f64::from(p.breaker.state().as_gauge()),
    ),
    (
        "gateway_breaker_probes_in_flight",
        "gauge",
        "Half-open probe calls admitted and not yet settled.",
        |p, _| f64::from(p.breaker.stats().probes_in_flight),
    ),
    (
        "gateway_upstream_in_flight",
        "gauge",
        "Upstream requests whose response is not yet read or dropped.",
        |p, _| p.pool.in_flight.get() as f64,
    ),
    (
        "gateway_breaker_opened_total",
        "counter",
        "Times the circuit breaker opened.",
        |p, _| p.breaker.stats().opened as f64,
    ),
    (
        "gateway_upstream_reliability",
        "gauge",
        "Moving average of attempt success, 0..1.",
        |_, h| h.reliability,
    ),
    (
        "gateway_upstream_latency_us",
        "gauge",
        "Moving average of time to first byte, microseconds.",
        |_, h| h.latency_us.unwrap_or(0.0),
    ),
    (
        "gateway_upstream_successes_total",
        "counter",
        "Successful upstream attempts.",
        |_, h| h.successes as f64,
    ),
    (
        "gateway_upstream_failures_total",
        "counter",
        "Failed upstream attempts.",
        |_, h| h.failures as f64,
    ),
    (
        "gateway_pool_connections_opened_total",
        "counter",
        "Upstream connections opened.",
        |p, _| p.pool.connections_opened.load(Relaxed) as f64,
    ),
    (
        "gateway_pool_connect_errors_total",
        "counter",
        "Upstream connection attempts that failed.",
        |p, _| p.pool.connect_errors.load(Relaxed) as f64,
    ),
    (
        "gateway_pool_requests_total",
        "counter",
        "Requests sent upstream.",
        |p, _| p.pool.requests.load(Relaxed) as f64,
    ),
];

/// A per-queue series: name, type, help, and how to read it.
type QueueSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&QueueStats) -> f64,
);

/// The whole `/metrics` page.
pub fn render(gw: &Shared) -> String {
    let mut out = String::with_capacity(16 * 1024);
    gw.metrics.render(&mut out);
    render_components(gw, &mut out);
    out
}

/// Per-provider, queue, cache and limiter series.
fn render_components(gw: &Shared, out: &mut String) {
    let now = Instant::now();
    let smoothing = gw.router.smoothing();
    let views: Vec<_> = gw
        .router
        .providers()
        .iter()
        .map(|p| (p, p.health.view(now, smoothing)))
        .collect();
    for (name, kind, help, read) in PROVIDER_SERIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (p, view) in &views {
            let _ = writeln!(out, "{name}{{provider=\"{}\"}} {}", p.name(), read(p, view));
        }
    }
    let queues: Vec<_> = gw
        .router
        .providers()
        .iter()
        .filter_map(|p| Some((p.name(), p.queue.as_ref()?.stats())))
        .collect();
    let queue_series: [QueueSeries; 5] = [
        (
            "gateway_queue_depth",
            "gauge",
            "Requests waiting for a slot.",
            |q| q.depth as f64,
        ),
        (
            "gateway_queue_in_flight",
            "gauge",
            "Requests holding a slot.",
            |q| q.in_flight as f64,
        ),
        (
            "gateway_queue_utilization",
            "gauge",
            "Slots in use / max_concurrent.",
            |q| q.utilization,
        ),
        (
            "gateway_queue_rejected_total",
            "counter",
            "Requests refused because the queue was full.",
            |q| q.rejected_full as f64,
        ),
        (
            "gateway_queue_timeouts_total",
            "counter",
            "Requests that waited too long for a slot.",
            |q| q.timed_out as f64,
        ),
    ];
    for (name, kind, help, read) in queue_series.iter().filter(|_| !queues.is_empty()) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (provider, stats) in &queues {
            let _ = writeln!(out, "{name}{{provider=\"{provider}\"}} {}", read(stats));
        }
    }
    if !queues.is_empty() {
        let name = "gateway_queue_wait_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time spent waiting for a slot.\n# TYPE {name} histogram"
        );
        for (provider, stats) in &queues {
            let w = &stats.wait;
            for (le, count) in &w.buckets {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{provider=\"{provider}\",le=\"{le}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{provider=\"{provider}\",le=\"+Inf\"}} {c}\n{name}_sum{{provider=\"{provider}\"}} {s}\n{name}_count{{provider=\"{provider}\"}} {c}",
                c = w.count,
                s = w.sum_secs,
            );
        }
    }
    if let Some(cache) = &gw.cache {
        let c = cache.stats();
        let _ = writeln!(
            out,
            "# HELP gateway_cache_lookups_total Cache lookups by result.\n# TYPE gateway_cache_lookups_total counter"
        );
        for (result, value) in [
            ("hit", c.hits),
            ("miss", c.misses),
            ("coalesced", c.coalesced),
            ("bypass", c.bypassed),
        ] {
            let _ = writeln!(
                out,
                "gateway_cache_lookups_total{{result=\"{result}\"}} {value}"
            );
        }
        for (name, kind, help, value) in [
            (
                "gateway_cache_redis_hits_total",
                "counter",
                "Hits served from the Redis tier.",
                c.redis_hits,
            ),
            (
                "gateway_cache_redis_errors_total",
                "counter",
                "Redis tier failures (served without it).",
                c.redis_errors,
            ),
            (
                "gateway_cache_evictions_total",
                "counter",
                "Entries evicted for space.",
                c.evictions,
            ),
            (
                "gateway_cache_expirations_total",
                "counter",
                "Entries expired by TTL.",
                c.expirations,
            ),
            (
                "gateway_cache_bytes",
                "gauge",
                "Bytes held in memory.",
                c.bytes,
            ),
            (
                "gateway_cache_entries",
                "gauge",
                "Entries held in memory.",
                c.entries,
            ),
            (
                "gateway_cache_flights_in_flight",
                "gauge",
                "Upstream calls that identical requests are coalescing on.",
                c.in_flight,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
    if let Some(limiter) = &gw.limiter {
        let l = limiter.stats();
        let _ = writeln!(
            out,
            "# HELP gateway_ratelimit_checks_total Rate limit checks by result.\n# TYPE gateway_ratelimit_checks_total counter"
        );
        for (result, value) in [
            ("allowed", l.allowed),
            ("denied_key", l.denied_key),
            ("denied_model", l.denied_model),
            ("denied_tokens", l.denied_tokens),
        ] {
            let _ = writeln!(
                out,
                "gateway_ratelimit_checks_total{{result=\"{result}\"}} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gateway_ratelimit_redis_fallbacks_total Checks decided locally because Redis failed.\n# TYPE gateway_ratelimit_redis_fallbacks_total counter\ngateway_ratelimit_redis_fallbacks_total {}",
            l.redis_fallbacks
        );
    }
}
