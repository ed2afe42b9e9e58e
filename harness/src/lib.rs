//! The gatebench command line as a library: one module per command, and what they share.
//!
//! The binary (`src/main.rs`) only parses arguments, starts the runtime and prints the error
//! of a failed command; [`cli::Command::run`] does the rest, so every command can be tested
//! in-process.
//!
//! # Layout
//!
//! One module per command (like mini-redis's `cmd/`):
//!
//! | command | module | what it does |
//! |---|---|---|
//! | `scenario` | [`scenario`] | options and plan, the embedded stack, the run, the summary |
//! | `gate` | `gate/` | base against candidate in interleaved rounds: `measure`, `server` |
//! | `overhead` | `overhead/` | what a gateway adds, paired against the direct path |
//! | `merge` | `merge.rs` | the run directories of a load's workers as one run |
//! | `compare` | `compare.rs` | a candidate's runs against a baseline's |
//! | `report` | `report.rs` | a run directory's reports made again |
//! | `list` | `list.rs` | the scenarios |
//! | `mock`, `gateway` | `mock.rs`, `gateway.rs` | the mock and the reference gateway as servers |
//!
//! Shared by several commands: [`cli`] (the flags), [`exit`] (exit codes), `child` (this
//! binary's servers as child processes), `health` (the load generator's own lateness and
//! CPU), `open_files` (the descriptors a run's users need), `process` (a process's RSS and CPU
//! from `/proc`), `signal` (SIGINT and SIGTERM) and `toml_overlay` (one TOML table over
//! another).

pub mod cli;
pub mod exit;
pub mod overhead;
pub mod scenario;

mod child;
mod compare;
mod gate;
mod gateway;
mod health;
mod list;
mod merge;
mod mock;
mod open_files;
mod process;
mod report;
mod signal;
mod toml_overlay;
