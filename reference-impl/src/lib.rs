//! The reference optimized LLM gateway core: the system under test and a model of how to build one.
//!
//! An OpenAI-compatible front (`POST /v1/chat/completions`, streaming and not, and
//! `POST /v1/embeddings`) and an Anthropic one (`POST /v1/messages`) in front of
//! OpenAI-compatible and Anthropic upstreams, with weighted routing, fallback, pooled
//! connections, Prometheus metrics and an admin API. Start it in-process with
//! [`Gateway::start`]; [`pipeline`] is the request path, top to bottom.
//!
//! # Public API
//!
//! - [`Gateway::start`] serves a [`GatewayConfig`] (the TOML config; its parts are in
//!   [`config`] and in the components' modules) until [`GatewayHandle::shutdown`]. The
//!   `gateway` binary is this and a config file; the harness starts it the same way.
//! - The optimization components, each usable alone and documented as a model of its kind:
//!   [`cache`], [`limiter`], [`breaker`], [`queue`].
//! - [`bare::BareProxy`]: the thinnest proxy hyper allows, the floor the gateway's overhead is
//!   measured against.
//! - What the benches and fuzz targets drive without a socket: the handler
//!   [`pipeline::chat_completions`] on a [`server::Shared`], the request parser
//!   [`request::ChatRequest::parse`], SSE framing ([`proxy::sse`]) and the API translators
//!   ([`proxy::translate`]).
//!
//! Every other module is private to the crate, so the compiler sees all of its uses and
//! reports what is dead.

mod admin;
pub mod bare;
pub mod breaker;
pub mod cache;
mod clock;
pub mod config;
mod connection;
mod dashboard;
mod embeddings;
mod error;
mod front;
mod health;
pub mod limiter;
mod limits;
mod messages;
mod metrics;
pub mod pipeline;
mod pool;
mod prometheus;
mod provider;
pub mod proxy;
pub mod queue;
mod realtime;
pub mod request;
mod router;
pub mod server;

pub use config::{GatewayConfig, ModelRoute, ProviderConfig, ProviderKind};
pub use error::{ApiError, GatewayError};
pub use server::{Gateway, GatewayHandle};
