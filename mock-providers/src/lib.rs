//! OpenAI and Anthropic provider mocks for testing and load-testing LLM gateways.
//!
//! Two ways to stand in for a provider, sharing one set of encoders so they send the same bytes:
//! - [`MockServer`]: a native axum/hyper server for load runs, with realistic pacing (time to first
//!   token, inter-token latency), injectable faults, runtime reconfiguration and counters. Bodies are
//!   built once per request and streamed as slices of one buffer. Optionally HTTPS (self-signed,
//!   HTTP/2 by ALPN) and keyed like a real upstream; every control value is bounded by [`limits`].
//! - [`wiremock::Reply`]: builders for wiremock-based functional tests (call-count expectations),
//!   which cannot pace a stream and record every request, so they are not for load.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mock_providers::MockError> {
//! use mock_providers::{MockConfig, MockServer, Profile};
//! let mock = MockServer::start(MockConfig::new(Profile::realistic())).await?;
//! println!("OpenAI at {}/v1/chat/completions", mock.url());
//! # Ok(()) }
//! ```

pub mod anthropic;
mod auth;
pub mod cli;
mod embeddings;
mod fault;
pub mod limits;
pub mod openai;
mod profile;
mod request;
mod server;
mod stats;
mod stream;
mod tls;
mod wire;
pub mod wiremock;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use embeddings::{cosine, embed};
pub use fault::{Fault, InvalidFault};
pub use profile::{Distribution, FaultRates, Profile};
pub use request::ChatRequest;
pub use server::{MockConfig, MockServer};
pub use stats::{Outcome, Route, StatsSnapshot};
pub use wire::{ApiError, Completion, Finish, Provider, Script, StreamEnd};

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid profile: {0}")]
    Parse(String),
    #[error("invalid profile: {field}: {why}")]
    Invalid { field: String, why: String },
}

/// A mock server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// `api_key` is empty or has characters a client could not send in a header.
    #[error("invalid required API key: {0}")]
    ApiKey(&'static str),
    /// The self-signed certificate or the TLS configuration could not be made.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot write the certificate to {path}: {source}")]
    Certificate {
        path: PathBuf,
        source: std::io::Error,
    },
}
