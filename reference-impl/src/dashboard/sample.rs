//! What the sampler reads from the gateway once a second, and the figures of the interval
//! between two such readings.
//!
//! Everything here reads counters the request path keeps anyway (relaxed atomics, histogram
//! buckets, the components' own stats), so the dashboard adds nothing per request: rates are
//! differences of counters and percentiles come from differences of histogram buckets.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serde::Serialize;

use crate::breaker::BreakerState;
use crate::cache::{CacheStats, ResponseCache};
use crate::metrics::{Percentiles, counts_since};
use crate::server::Shared;

/// Cumulative counters and current gauges, read at one instant.
pub struct Reading {
    at: Instant,
    responses: [u64; 3],
    streams_broken: u64,
    latency: Box<[u64]>,
    overhead: Box<[u64]>,
    cache: Option<CacheStats>,
    /// Checks the limiter refused, all scopes; `None` without a limiter.
    limiter_rejections: Option<u64>,
    gauges: Gauges,
    providers: Vec<ProviderReading>,
}

/// Things alive at the instant of a reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Gauges {
    /// Chat and embeddings requests being handled.
    pub in_flight: i64,
    pub open_streams: i64,
    /// Client connections open.
    pub open_connections: i64,
    /// Upstream requests whose response is not yet read, all providers.
    pub upstream_in_flight: i64,
    /// Upstream connections opened since start, all providers (each one a pool miss).
    pub upstream_connections_opened: u64,
    /// Requests waiting for a queue slot, all providers.
    pub queue_depth: u64,
}

/// One provider's figures at the instant of a reading.
struct ProviderReading {
    name: String,
    requests: u64,
    successes: u64,
    failures: u64,
    latency_us: Option<f64>,
    reliability: f64,
    cooldown_ms: u64,
    breaker: BreakerState,
    breaker_opened: u64,
    connections_opened: u64,
    upstream_in_flight: i64,
    new_connection_ratio: f64,
    queue: Option<QueueInsight>,
}

impl Reading {
    pub fn take(gw: &Shared) -> Self {
        let m = &gw.metrics;
        let now = Instant::now();
        let smoothing = gw.router.smoothing();
        let providers: Vec<ProviderReading> = gw
            .router
            .providers()
            .iter()
            .map(|p| {
                let health = p.health.view(now, smoothing);
                let breaker = p.breaker.stats();
                let pool = p.pool.snapshot(&p.config.pool);
                ProviderReading {
                    name: p.name().to_owned(),
                    requests: pool.requests,
                    successes: health.successes,
                    failures: health.failures,
                    latency_us: health.latency_us,
                    reliability: health.reliability,
                    cooldown_ms: health.cooldown.map_or(0, |d| d.as_millis() as u64),
                    breaker: breaker.state,
                    breaker_opened: breaker.opened,
                    connections_opened: pool.connections_opened,
                    upstream_in_flight: pool.in_flight,
                    new_connection_ratio: pool.new_connection_ratio,
                    queue: p.queue.as_ref().map(|q| {
                        let s = q.stats();
                        QueueInsight {
                            depth: s.depth as u64,
                            in_flight: s.in_flight as u64,
                            max_concurrent: s.max_concurrent as u64,
                            utilization: s.utilization,
                            rejected: s.rejected_full + s.timed_out,
                        }
                    }),
                }
            })
            .collect();
        let gauges = Gauges {
            in_flight: m.in_flight.get(),
            open_streams: m.open_streams.get(),
            open_connections: m.open_connections.get(),
            upstream_in_flight: providers.iter().map(|p| p.upstream_in_flight).sum(),
            upstream_connections_opened: providers.iter().map(|p| p.connections_opened).sum(),
            queue_depth: providers
                .iter()
                .filter_map(|p| p.queue.map(|q| q.depth))
                .sum(),
        };
        Self {
            at: now,
            responses: std::array::from_fn(|i| m.responses[i].load(Relaxed)),
            streams_broken: m.streams_broken.load(Relaxed),
            latency: m.latency_us.counts(),
            overhead: m.overhead_us.counts(),
            cache: gw.cache.as_ref().map(ResponseCache::stats),
            limiter_rejections: gw
                .limiter
                .as_ref()
                .map(|l| l.stats())
                .map(|l| l.denied_key + l.denied_model + l.denied_tokens),
            gauges,
            providers,
        }
    }

    /// Responses and failures (5xx and broken streams) since start.
    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.responses.iter().sum(),
            errors: self.responses[2] + self.streams_broken,
            responses_2xx: self.responses[0],
            responses_4xx: self.responses[1],
            responses_5xx: self.responses[2],
            limiter_rejections: self.limiter_rejections,
        }
    }
}

/// Counts since the gateway started.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub responses_2xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub limiter_rejections: Option<u64>,
}

/// The figures of one interval: its rates and percentiles, and the gauges at its end. Fixed
/// size (no heap), so a ring of them has a fixed footprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Window {
    /// End of the interval, Unix milliseconds.
    pub unix_ms: u64,
    pub interval_secs: f64,
    /// Responses sent in the interval.
    pub requests: u64,
    pub requests_per_sec: f64,
    /// 5xx responses and broken streams in the interval.
    pub errors: u64,
    pub error_rate: f64,
    /// End-to-end latency of the requests that finished in the interval.
    pub latency_us: Percentiles,
    /// Time spent in the gateway outside upstream I/O, same requests.
    pub overhead_us: Percentiles,
    /// Cache lookups and hit ratios by tier; `None` without a cache.
    pub cache: Option<CacheWindow>,
    /// Requests the limiter refused in the interval; `None` without a limiter.
    pub limiter_rejections: Option<u64>,
    pub limiter_rejections_per_sec: Option<f64>,
    pub gauges: Gauges,
}

/// Cache lookups of one interval and the share answered by each tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CacheWindow {
    /// Hits, misses and coalesced waits (bypasses did not look).
    pub lookups: u64,
    /// Share of lookups answered without a call of their own: all tiers and coalescing.
    pub hit_ratio: f64,
    /// Exact-match hits from memory.
    pub memory: f64,
    /// Exact-match hits from Redis.
    pub redis: f64,
    /// Similar-prompt hits.
    pub semantic: f64,
    /// Waits on an identical request's upstream call.
    pub coalesced: f64,
}

impl Window {
    /// What happened between `earlier` and `later`.
    pub fn between(later: &Reading, earlier: &Reading, unix_ms: u64) -> Self {
        let secs = later.at.saturating_duration_since(earlier.at).as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let (now, before) = (later.totals(), earlier.totals());
        let requests = now.requests.saturating_sub(before.requests);
        let errors = now.errors.saturating_sub(before.errors);
        let limiter_rejections = now
            .limiter_rejections
            .zip(before.limiter_rejections)
            .map(|(n, b)| n.saturating_sub(b));
        Self {
            unix_ms,
            interval_secs: secs,
            requests,
            requests_per_sec: per_sec(requests),
            errors,
            error_rate: ratio(errors, requests),
            latency_us: Percentiles::of(&counts_since(&later.latency, &earlier.latency)),
            overhead_us: Percentiles::of(&counts_since(&later.overhead, &earlier.overhead)),
            cache: later
                .cache
                .as_ref()
                .zip(earlier.cache.as_ref())
                .map(|(n, b)| CacheWindow::between(n, b)),
            limiter_rejections,
            limiter_rejections_per_sec: limiter_rejections.map(per_sec),
            gauges: later.gauges,
        }
    }

    /// A window of nothing ending at `reading` (before there are two readings).
    pub fn empty(reading: &Reading, unix_ms: u64) -> Self {
        Self::between(reading, reading, unix_ms)
    }
}

impl CacheWindow {
    fn between(now: &CacheStats, before: &CacheStats) -> Self {
        let d = |n: u64, b: u64| n.saturating_sub(b);
        let hits = d(now.hits, before.hits);
        let redis = d(now.redis_hits, before.redis_hits);
        let semantic = d(now.semantic_hits, before.semantic_hits);
        let coalesced = d(now.coalesced, before.coalesced);
        let lookups = hits + d(now.misses, before.misses) + coalesced;
        Self {
            lookups,
            hit_ratio: ratio(hits + coalesced, lookups),
            memory: ratio(hits.saturating_sub(redis + semantic), lookups),
            redis: ratio(redis, lookups),
            semantic: ratio(semantic, lookups),
            coalesced: ratio(coalesced, lookups),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A provider as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderInsight {
    pub provider: String,
    /// Requests sent upstream since start.
    pub requests: u64,
    /// Over the last sampled second.
    pub requests_per_sec: f64,
    /// Attempts that succeeded and failed since start.
    pub successes: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Moving average of time to first byte.
    pub latency_us: Option<f64>,
    /// The router's moving average of attempt success, 0..1 (recovers while unused).
    pub reliability_score: f64,
    /// Time left of a `retry-after` pause, 0 when none.
    pub cooldown_ms: u64,
    pub breaker: BreakerState,
    pub breaker_opened: u64,
    pub connections_opened: u64,
    pub upstream_in_flight: i64,
    /// Share of requests that needed a new upstream connection.
    pub new_connection_ratio: f64,
    /// `None` without a `[queue]`.
    pub queue: Option<QueueInsight>,
}

/// A provider's queue at the instant of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueueInsight {
    pub depth: u64,
    pub in_flight: u64,
    pub max_concurrent: u64,
    pub utilization: f64,
    /// Refused because the queue was full or the wait too long, since start.
    pub rejected: u64,
}

impl ProviderInsight {
    /// The providers of `later`, with rates against `earlier` (the same providers in the same
    /// order: the list is fixed at startup).
    pub fn all(later: &Reading, earlier: &Reading) -> Vec<Self> {
        let secs = later.at.saturating_duration_since(earlier.at).as_secs_f64();
        later
            .providers
            .iter()
            .zip(&earlier.providers)
            .map(|(p, before)| {
                let sent = p.requests.saturating_sub(before.requests);
                Self {
                    provider: p.name.clone(),
                    requests: p.requests,
                    requests_per_sec: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
                    successes: p.successes,
                    errors: p.failures,
                    error_rate: ratio(p.failures, p.successes + p.failures),
                    latency_us: p.latency_us,
                    reliability_score: p.reliability,
                    cooldown_ms: p.cooldown_ms,
                    breaker: p.breaker,
                    breaker_opened: p.breaker_opened,
                    connections_opened: p.connections_opened,
                    upstream_in_flight: p.upstream_in_flight,
                    new_connection_ratio: p.new_connection_ratio,
                    queue: p.queue,
                }
            })
            .collect()
    }
}
