//! Goose scenarios, workloads, the live metric recorder and default SLO files.
//!
//! The measuring side of gatebench below the command line:
//! - [`recorder::Recorder`]: every measurement of a run, per second, into
//!   [`reports::RunResult`] intervals.
//! - [`client::Client`]: sends one OpenAI-style request and reads it to the last byte (SSE
//!   streams event by event), classifying failures.
//! - [`load`]: the closed model (k6-like stages) and the open model (a shared arrival schedule,
//!   coordinated-omission correct).
//! - [`workload`]: what to send: seeded prompts over the shipped corpus, synthetic prompts of
//!   exact token lengths, recorded requests from dataset files, and weighted request mixes.
//! - [`tokens`]: token counts by a tokenizer shipped in the binary (`o200k_base`).
//! - [`scenario`]: the named scenarios, each data in a file of its own with a default SLO file.
//! - [`attack::run`]: drives a [`attack::Plan`] on Goose.
//! - [`websocket`]: the websocket scenario's load, connections held and requests streamed over
//!   them, into the same recorder.
//! - [`capacity`]: per-stage SLO verdicts (the stress scenario's answer).
//! - [`changes`]: what mid-run upstream changes did (failures, time to settle: failover).

pub mod attack;
pub mod capacity;
pub mod changes;
pub mod client;
pub mod load;
pub mod recorder;
pub mod scenario;
pub mod tokens;
pub mod websocket;
pub mod workload;
