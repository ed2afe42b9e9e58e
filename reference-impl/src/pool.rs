//! One pooled HTTP client per provider, and the counters that show how well the pool works.
//!
//! reqwest keeps idle keep-alive connections per host; a connector layer counts every new
//! connection, so `connections_opened / requests` shows whether the pool is reusing
//! connections (near 0) or churning them (near 1).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;

use crate::config::PoolConfig;

/// Counters of one provider's connection pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// TCP connections established (each one a pool miss).
    pub connections_opened: AtomicU64,
    /// Connection attempts that failed.
    pub connect_errors: AtomicU64,
    /// Requests sent upstream.
    pub requests: AtomicU64,
    /// Upstream responses not yet fully read or dropped.
    pub in_flight: AtomicI64,
}

/// A point-in-time copy of [`PoolStats`] plus the pool's settings, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    pub connections_opened: u64,
    pub connect_errors: u64,
    pub requests: u64,
    pub in_flight: i64,
    /// Share of requests that needed a new connection.
    pub new_connection_ratio: f64,
    pub max_idle_per_host: usize,
    pub idle_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub http2: bool,
}

impl PoolStats {
    /// Counts a request sent upstream; the returned guard marks it finished when dropped.
    pub fn send(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    pub fn snapshot(&self, config: &PoolConfig) -> PoolSnapshot {
        let requests = self.requests.load(Relaxed);
        let opened = self.connections_opened.load(Relaxed);
        PoolSnapshot {
            connections_opened: opened,
            connect_errors: self.connect_errors.load(Relaxed),
            requests,
            in_flight: self.in_flight.load(Relaxed),
            new_connection_ratio: if requests == 0 {
                0.0
            } else {
                opened as f64 / requests as f64
            },
            max_idle_per_host: config.max_idle_per_host,
            idle_timeout_ms: config.idle_timeout_ms,
            connect_timeout_ms: config.connect_timeout_ms,
            http2: config.http2,
        }
    }
}

/// One upstream request in flight; dropping it (response read, stream ended, or cancelled)
/// decrements the gauge.
#[derive(Debug)]
pub struct InFlight(Arc<PoolStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Builds a provider's client: pooled keep-alive, `TCP_NODELAY`, bounded connect time, no
/// redirects, no proxy lookups and no client-side retries (the gateway's router decides retries).
pub fn build_client(
    config: &PoolConfig,
    stats: Arc<PoolStats>,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(config.max_idle_per_host)
        .pool_idle_timeout(Duration::from_millis(config.idle_timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .connector_layer(CountConnections { stats });
    builder = if config.http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build()
}

/// Connector layer that counts established and failed connections.
#[derive(Clone)]
struct CountConnections {
    stats: Arc<PoolStats>,
}

impl<S> tower::Layer<S> for CountConnections {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            stats: self.stats.clone(),
        }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    stats: Arc<PoolStats>,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Boxed: connects are rare (the pool exists to avoid them), so the allocation is off the hot path.
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let stats = self.stats.clone();
        Box::pin(async move {
            let result = connecting.await;
            match &result {
                Ok(_) => stats.connections_opened.fetch_add(1, Relaxed),
                Err(_) => stats.connect_errors.fetch_add(1, Relaxed),
            };
            result
        })
    }
}
