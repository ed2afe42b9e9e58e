//! The reference optimized LLM gateway core: the system under test and a model of how to build one.
//!
//! An OpenAI-compatible front (`POST /v1/chat/completions`, streaming and not, and
//! `POST /v1/embeddings`) and an Anthropic one (`POST /v1/messages`, see [`front`]) in front of
//! OpenAI-compatible and Anthropic upstreams, with weighted routing, fallback, pooled
//! connections, Prometheus metrics and an admin API. Start it in-process with
//! [`Gateway::start`]; [`pipeline`] is the request path, top to bottom.

pub mod admin;
pub mod bare;
pub mod breaker;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connection;
pub mod dashboard;
pub mod embeddings;
pub mod error;
pub mod front;
pub mod health;
pub mod limiter;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod prometheus;
pub mod provider;
pub mod proxy;
pub mod queue;
pub mod request;
pub mod router;
pub mod server;

pub use config::{GatewayConfig, ModelRoute, ProviderConfig, ProviderKind};
pub use error::{ApiError, GatewayError};
pub use server::{Gateway, GatewayHandle};
