//! The scenarios crate's integration tests, one binary: the load generator against a paced
//! mock (accuracy, coordinated omission, the users' connections) and workloads from data
//! files (`tests/data`).
//! `common` runs a plan against a mock and gathers the run.

mod common;

mod accuracy;
mod connections;
mod open_model;
mod workloads;
