//! The scenarios crate's integration tests, one binary: the load generator against a paced
//! mock (accuracy, coordinated omission, a rate sweep's connections) and workloads from data
//! files (`tests/data`).
//! `common` runs a plan against a mock and gathers the run.

mod common;

mod accuracy;
mod open_model;
mod sweep;
mod workloads;
