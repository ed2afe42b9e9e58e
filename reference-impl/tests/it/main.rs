//! The gateway's integration tests, one binary: each module drives the public API (a gateway
//! started in-process or as its binary, or one component alone) against mock upstreams.
//! `common` starts gateways and reads their answers and metrics; `common::redis` runs a real
//! `redis-server` for the Redis tiers.

mod common;

mod admin;
mod anthropic;
mod anthropic_front;
mod bad_input;
mod binary;
/// The optimization components alone, each through its own public API.
mod components {
    mod breaker;
    mod cache;
    mod limiter;
    mod queue;
    mod redis;
}
mod dashboard;
mod dashboard_chromium;
mod dashboards;
mod embeddings;
mod fallback;
mod h2c;
mod hostile;
mod optimizations;
mod ratelimit_headers;
mod replicas;
mod resilience;
mod server;
mod streaming;
mod upstream_tls;
mod websocket;
