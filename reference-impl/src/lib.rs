//! The reference optimized LLM gateway core: the system under test and a model of how to build one.

pub mod breaker;
pub mod cache;
pub mod limiter;
pub mod queue;
