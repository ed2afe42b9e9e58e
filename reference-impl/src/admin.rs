//! Admin API under `/admin/performance/`: live statistics and tuning recommendations.
//!
//! Guarded by a bearer token (compared in constant time, so response timing does not reveal
//! how much of a guess was right). Without a configured token, only loopback clients are
//! answered, so an unconfigured gateway never exposes its internals to the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::Json;
use axum::extract::Path;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::{HeaderMap, header};
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::breaker::BreakerState;
use crate::cache::CacheKey;
use crate::error::ApiError;
use crate::metrics::Percentiles;
use crate::queue::RequestQueue;
use crate::server::Shared;

pub fn routes(shared: Arc<Shared>) -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/connection-pool", get(connection_pool))
        .route("/request-queue", get(request_queue))
        .route("/cache", get(cache_stats).delete(cache_clear))
        .route("/cache/{name}", delete(cache_remove))
        .route("/optimize", get(optimize))
        .layer(middleware::from_fn_with_state(shared, authorize))
}

async fn authorize(
    State(gw): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    match admit(&gw, peer, |token| {
        bearer(headers).is_some_and(|given| same(given, token))
    }) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The credential of an `authorization: Bearer TOKEN` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
}

/// Compares a presented credential in constant time, so response timing does not reveal how
/// much of a guess was right.
pub(crate) fn same(given: &[u8], expected: &[u8]) -> bool {
    bool::from(given.ct_eq(expected))
}

/// The admin API's rule: with a token configured, `presents` must say the request carries it
/// (however the route takes it: bearer header, dashboard cookie); without one, only loopback
/// peers are answered.
pub(crate) fn admit(
    gw: &Shared,
    peer: SocketAddr,
    presents: impl FnOnce(&[u8]) -> bool,
) -> Result<(), ApiError> {
    match gw.config.admin.token.as_deref() {
        Some(token) if presents(token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized()),
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(ApiError::forbidden(
            "the admin API without a token answers loopback clients only",
        )),
    }
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
        in_flight: m.in_flight.get(),
        open_streams: m.open_streams.get(),
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
            let breaker = p.breaker.stats();
            json!({
                "provider": p.name(),
                "healthy": view.reliability >= min
                    && view.cooldown.is_none()
                    && breaker.state == BreakerState::Closed,
                "health": view,
                "breaker": breaker,
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
        .map(|p| {
            json!({
                "provider": p.name(),
                "upstream_in_flight": p.pool.in_flight.get(),
                "queue": p.queue.as_ref().map(RequestQueue::stats),
            })
        })
        .collect();
    Json(json!({
        "enabled": gw.config.queue.is_some(),
        "in_flight": gw.metrics.in_flight.get(),
        "providers": providers,
    }))
}

async fn cache_stats(State(gw): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(match &gw.cache {
        Some(cache) => json!({ "enabled": true, "stats": cache.stats() }),
        None => json!({ "enabled": false }),
    })
}

/// `DELETE cache`: drops every entry from every tier (memory, semantic index, this
/// gateway's keys in Redis). A 503 says the Redis tier could not be cleared (memory was).
async fn cache_clear(State(gw): State<Arc<Shared>>) -> Response {
    let Some(cache) = &gw.cache else {
        return ApiError::not_found("the cache is not enabled").into_response();
    };
    match cache.clear().await {
        Ok(redis_keys) => {
            Json(json!({ "cleared": "all", "redis_keys_removed": redis_keys })).into_response()
        }
        Err(e) => ApiError::unavailable(e.to_string()).into_response(),
    }
}

/// `DELETE cache/{name}`: drops one entry by its key (`ai:completion:{model}:{hash}`).
async fn cache_remove(State(gw): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(cache) = &gw.cache else {
        return ApiError::not_found("the cache is not enabled").into_response();
    };
    match CacheKey::parse(&name) {
        Some(key) => match cache.remove(&key).await {
            Ok(()) => Json(json!({ "cleared": name })).into_response(),
            Err(e) => ApiError::unavailable(e.to_string()).into_response(),
        },
        None => ApiError::invalid_request("not a cache key: expected ai:completion:{model}:{hash}")
            .with_param("name")
            .into_response(),
    }
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
            action: "add a fallback provider to the affected routes or raise routing.max_attempts"
                .into(),
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
        if let Some(queue) = p.queue.as_ref().map(RequestQueue::stats)
            && queue.utilization > 0.8
        {
            out.push(Recommendation {
                area: "request-queue",
                finding: format!(
                    "provider `{}` queue utilization is {:.0} % ({} waiting)",
                    p.name(),
                    queue.utilization * 100.0,
                    queue.depth
                ),
                action: format!(
                    "raise queue.max_concurrent (now {}) if the provider can take more",
                    queue.max_concurrent
                ),
            });
        }
        let view = p.health.view(now, gw.router.smoothing());
        if view.reliability < gw.router.config().min_reliability {
            out.push(Recommendation {
                area: "routing",
                finding: format!(
                    "provider `{}` reliability is {:.2}",
                    p.name(),
                    view.reliability
                ),
                action: "traffic is routed around it; check the provider or its quota".into(),
            });
        }
    }
    if let Some(cache) = &gw.cache {
        let c = cache.stats();
        let lookups = c.hits + c.misses + c.coalesced;
        if lookups >= 100 && (c.hits + c.coalesced) * 10 < lookups {
            out.push(Recommendation {
                area: "cache",
                finding: format!(
                    "cache answers {:.1} % of lookups",
                    (c.hits + c.coalesced) as f64 * 100.0 / lookups as f64
                ),
                action: "little repeats: consider the semantic tier, or disable the cache to save memory".into(),
            });
        }
        if c.evictions > c.entries {
            out.push(Recommendation {
                area: "cache",
                finding: format!("{} evictions with {} entries held", c.evictions, c.entries),
                action: "raise cache.max_bytes".into(),
            });
        }
    }
    Json(json!({ "recommendations": out }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::GatewayConfig;

    /// The admin routes as the server mounts them, asked by a client at `peer`.
    async fn status_for(peer: &str, token: Option<&str>) -> http::StatusCode {
        let mut config = GatewayConfig::default();
        config.admin.token = token.map(str::to_owned);
        let shared = Arc::new(Shared::new(config).expect("valid config"));
        let app = routes(shared.clone()).with_state(shared);
        let mut request = Request::get("/stats").body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        app.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn without_a_token_only_loopback_peers_get_in() {
        assert_eq!(status_for("127.0.0.1:40000", None).await, 200);
        assert_eq!(status_for("[::1]:40000", None).await, 200);
        assert_eq!(status_for("192.0.2.7:40000", None).await, 403);
        assert_eq!(status_for("[2001:db8::7]:40000", None).await, 403);
    }

    #[tokio::test]
    async fn with_a_token_the_peer_address_does_not_matter() {
        // No bearer header: refused from loopback too.
        assert_eq!(status_for("127.0.0.1:40000", Some("s3cret")).await, 401);
        assert_eq!(status_for("192.0.2.7:40000", Some("s3cret")).await, 401);
    }
}
