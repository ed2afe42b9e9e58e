//! The gatebench command line as a library: options, orchestration of a run, console output.
//!
//! The binary (`src/main.rs`) only parses arguments, picks a command and maps the outcome to an
//! exit code; everything else lives here so it can be tested in-process.

pub mod cli;
pub mod commands;
pub mod gate;
pub mod merge;
pub mod options;
pub mod output;
pub mod overhead;
pub mod progress;
pub mod resolve;
pub mod run;
pub mod sampler;
pub mod stack;
pub mod stdout_guard;
pub mod summary;
pub mod worker;

/// Exit codes (docs/design.md).
pub mod exit {
    /// Every SLO met.
    pub const OK: i32 = 0;
    /// Usage or runtime error.
    pub const ERROR: i32 = 1;
    /// An SLO failed.
    pub const SLO_FAILED: i32 = 2;
    /// A comparison found a measure worse beyond its tolerance.
    pub const REGRESSION: i32 = 3;
}
