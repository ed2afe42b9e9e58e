//! Admin API under `/admin/performance/`: live statistics and tuning recommendations.
//!
//! Guarded by a bearer token (compared in constant time, so response timing does not reveal
//! how much of a guess was right). Without a configured token, only loopback clients are
//! answered, so an unconfigured gateway never exposes its internals to the network.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use http::header;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::health::HealthView;
use crate::metrics::Percentiles;
use crate::provider::Provider;
use crate::server::Shared;

pub fn routes(shared: Arc<Shared>) -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/connection-pool", get(connection_pool))
        .route("/request-queue", get(request_queue))
        .route("/optimize", get(optimize))
        .layer(middleware::from_fn_with_state(shared, authorize))
}

async fn authorize(
    State(gw): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = match gw.config.admin.token.as_deref() {
        Some(expected) => request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|given| bool::from(given.ct_eq(expected.as_bytes()))),
        None if peer.ip().is_loopback() => true,
        None => {
            return ApiError::forbidden("the admin API without a token answers loopback clients only")
                .into_response();
        }
    };
    if !allowed {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

#[derive(Serialize)]
struct Stats {
    uptime_secs: f64,
    requests: u64,
    responses_2xx: u64,
    responses_4xx: u64,
    responses_5xx: u64,
    error_rate: f64,
    retries: u64,
    streams_broken: u64,
    panics: u64,
    in_flight: i64,
    open_streams: i64,
    latency_us: Percentiles,
    overhead_us: Percentiles,
}

fn collect_stats(gw: &Shared) -> Stats {
    let m = &gw.metrics;
    Stats {
        uptime_secs: gw.started.elapsed().as_secs_f64(),
        requests: m.total_responses(),
        responses_2xx: m.responses[0].load(Relaxed),
        responses_4xx: m.responses[1].load(Relaxed),
        responses_5xx: m.responses[2].load(Relaxed),
        error_rate: m.error_rate(),
        retries: m.retries.load(Relaxed),
        streams_broken: m.streams_broken.load(Relaxed),
        panics: m.panics.load(Relaxed),
        in_flight: m.in_flight.load(Relaxed),
        open_streams: m.open_streams.load(Relaxed),
        latency_us: m.latency_us.summary(),
        overhead_us: m.overhead_us.summary(),
    }
}

async fn stats(State(gw): State<Arc<Shared>>) -> Json<Stats> {
    Json(collect_stats(&gw))
}

async fn health(State(gw): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let now = Instant::now();
    let smoothing = gw.router.smoothing();
    let min = gw.router.config().min_reliability;
    let providers: Vec<_> = gw
        .router
        .providers()
        .iter()
        .map(|p| {
            let view = p.health.view(now, smoothing);
            json!({
                "provider": p.name(),
                "healthy": view.reliability >= min && view.cooldown.is_none(),
                "health": view,
            })
        })
        .collect();
    Json(json!({ "providers": providers }))
}

async fn connection_pool(State(gw): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let providers: Vec<_> = gw
        .router
        .providers()
        .iter()
        .map(|p| json!({ "provider": p.name(), "pool": p.pool.snapshot(&p.config.pool) }))
        .collect();
    Json(json!({ "providers": providers }))
}

async fn request_queue(State(gw): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let providers: Vec<_> = gw
        .router
        .providers()
        .iter()
        .map(|p| json!({ "provider": p.name(), "in_flight": p.pool.in_flight.load(Relaxed) }))
        .collect();
    Json(json!({
        "in_flight": gw.metrics.in_flight.load(Relaxed),
        "providers": providers,
    }))
}

/// One tuning recommendation, derived from current figures.
#[derive(Serialize)]
struct Recommendation {
    area: &'static str,
    finding: String,
    action: String,
}

/// Recommendations computed from the live figures; empty when nothing stands out.
async fn optimize(State(gw): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let mut out = Vec::new();
    let stats = collect_stats(&gw);
    if stats.overhead_us.count > 0 && stats.overhead_us.p99 > 1_000 {
        out.push(Recommendation {
            area: "overhead",
            finding: format!("gateway overhead p99 is {} us", stats.overhead_us.p99),
            action: "give the gateway more CPU or lower concurrency per instance".into(),
        });
    }
    if stats.requests >= 100 && stats.error_rate > 0.05 {
        out.push(Recommendation {
            area: "errors",
            finding: format!("error rate is {:.1} %", stats.error_rate * 100.0),
            action: "add a fallback provider to the affected routes or raise routing.max_attempts".into(),
        });
    }
    let now = Instant::now();
    for p in gw.router.providers() {
        let pool = p.pool.snapshot(&p.config.pool);
        if pool.requests >= 100 && pool.new_connection_ratio > 0.2 {
            out.push(Recommendation {
                area: "connection-pool",
                finding: format!(
                    "provider `{}` opened a new connection for {:.0} % of requests",
                    p.name(),
                    pool.new_connection_ratio * 100.0
                ),
                action: format!(
                    "raise providers.pool.max_idle_per_host (now {}) or idle_timeout_ms (now {})",
                    pool.max_idle_per_host, pool.idle_timeout_ms
                ),
            });
        }
        let view = p.health.view(now, gw.router.smoothing());
        if view.reliability < gw.router.config().min_reliability {
            out.push(Recommendation {
                area: "routing",
                finding: format!("provider `{}` reliability is {:.2}", p.name(), view.reliability),
                action: "traffic is routed around it; check the provider or its quota".into(),
            });
        }
    }
    Json(json!({ "recommendations": out }))
}

/// A per-provider series: name, type, help, and how to read it.
type Series = (&'static str, &'static str, &'static str, fn(&Provider, &HealthView) -> f64);

const PROVIDER_SERIES: [Series; 7] = [
    ("gateway_upstream_reliability", "gauge", "Moving average of attempt success, 0..1.", |_, h| h.reliability),
    ("gateway_upstream_latency_us", "gauge", "Moving average of time to first byte, microseconds.", |_, h| {
        h.latency_us.unwrap_or(0.0)
    }),
    ("gateway_upstream_successes_total", "counter", "Successful upstream attempts.", |_, h| h.successes as f64),
    ("gateway_upstream_failures_total", "counter", "Failed upstream attempts.", |_, h| h.failures as f64),
    ("gateway_pool_connections_opened_total", "counter", "Upstream connections opened.", |p, _| {
        p.pool.connections_opened.load(Relaxed) as f64
    }),
    ("gateway_pool_connect_errors_total", "counter", "Upstream connection attempts that failed.", |p, _| {
        p.pool.connect_errors.load(Relaxed) as f64
    }),
    ("gateway_pool_requests_total", "counter", "Requests sent upstream.", |p, _| {
        p.pool.requests.load(Relaxed) as f64
    }),
];

/// Per-provider series for `/metrics`.
pub fn render_provider_metrics(gw: &Shared, out: &mut String) {
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
}
