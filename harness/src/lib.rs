//! The gatebench command line as a library: options, orchestration of a run, console output.
//!
//! The binary (`src/main.rs`) only parses arguments, picks a command and maps the outcome to an
//! exit code; everything else lives here so it can be tested in-process.

mod child;
pub mod cli;
pub mod commands;
pub mod gate;
pub mod health;
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
    use reports::RunResult;
    use reports::slo::{Slo, SloResult, evaluate};

    /// Every SLO met.
    pub const OK: i32 = 0;
    /// Usage or runtime error.
    pub const ERROR: i32 = 1;
    /// An SLO failed.
    pub const SLO_FAILED: i32 = 2;
    /// A comparison found a measure worse beyond its tolerance.
    pub const REGRESSION: i32 = 3;
    /// Inconclusive: the failed SLOs rest on seconds in which the load generator was saturated
    /// (or a gate was too noisy to decide).
    pub const INCONCLUSIVE: i32 = 4;

    /// The exit code of a judged run: 0 every SLO met, 2 one failed, 4 when SLOs failed but
    /// the part of the run before the load generator first saturated met them, or there is no
    /// such part: the failure may be the client's, not the target's. A run that met its SLOs
    /// exits 0 even when the generator saturated (the summary warns about it).
    pub fn of_run(result: &RunResult) -> i32 {
        if result.slos_passed() {
            return OK;
        }
        if result.saturated_seconds().is_empty() {
            return SLO_FAILED;
        }
        let slos: Vec<Slo> = result.slo_results.iter().map(|r| r.slo.clone()).collect();
        let before = result.before_saturation();
        if before.intervals.is_empty() || evaluate(&slos, &before).iter().all(SloResult::passed) {
            INCONCLUSIVE
        } else {
            SLO_FAILED
        }
    }
}
