//! `harness scenario NAME`: one run of a scenario, from its options to its exit code.
//!
//! The options (flags over a `--config` file, see [`options`]) are checked into a `Plan`
//! (`plan`); `run` starts the embedded stack when there is no `--target` (`stack`), drives the
//! load, samples the gateway (`sampler`) and the load generator's own health, and writes the run
//! directory (`output`); `conclude` prints the summary (`summary`) and turns the verdict into the
//! exit code.

/// Serde for option values through their command-line text (`FromStr` and `Display`), so a
/// `--config` file says `duration = "30s"` exactly as the flag does.
macro_rules! serde_as_text {
    ($($ty:ty),+) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

pub mod options;
mod output;
mod plan;
mod progress;
mod run;
mod sampler;
mod stack;
pub mod stdout_guard;
pub(crate) mod summary;
mod worker;

use std::path::Path;

use reports::RunResult;

use crate::exit;
use options::RunOptions;
pub(crate) use output::unused_dir;
pub(crate) use plan::{DEFAULT_MODEL, DEFAULT_OUT, PlanError, client_options};

/// Runs the scenario `name` with `flags` over the options of `config` (a TOML file), prints
/// it, and returns its exit code.
pub async fn command(name: &str, flags: RunOptions, config: Option<&Path>) -> anyhow::Result<i32> {
    let options = match config {
        Some(path) => RunOptions::load(path)?.overridden_by(flags)?,
        None => flags,
    };
    let plan = plan::resolve(name, options)?;
    crate::open_files::provide(plan.attack.load.worker_peak_users(plan.worker))?;
    let print = Print {
        json: plan.json(),
        quiet: plan.quiet(),
    };
    // One worker's share is not the load its SLOs are about: it exits 0 once its run
    // directory is written, and `harness merge` gives the verdict of the whole.
    let share_only = plan.worker.count() > 1;
    let outcome = run::run(plan).await?;
    let extras = summary::Extras {
        stages: outcome.stages.as_deref(),
        changes: &outcome.changes,
        cache_latency: Some(&outcome.cache_latency),
    };
    let code = conclude(&outcome.result, &outcome.dir, print, &extras)?;
    Ok(if share_only { exit::OK } else { code })
}

/// How a finished run is printed on stdout.
#[derive(Clone, Copy)]
pub(crate) struct Print {
    /// The whole result as JSON.
    pub json: bool,
    /// Nothing but the verdict line (on stderr).
    pub quiet: bool,
}

/// Prints a finished (or merged) run and returns its exit code: 0 when every SLO was met.
pub(crate) fn conclude(
    result: &RunResult,
    dir: &Path,
    print: Print,
    extras: &summary::Extras<'_>,
) -> anyhow::Result<i32> {
    if print.json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else if !print.quiet {
        print!("{}", summary::render(result, extras));
    }
    eprintln!("{}", summary::verdict(result, dir));
    let code = exit::of_run(result);
    if code == exit::INCONCLUSIVE && result.sweep.is_some() {
        eprintln!(
            "inconclusive: the load generator saturated at or below the first rate that failed \
             (exit 4), so the top rates describe the client; sweep with fewer --max-users, with \
             the target on another machine, or on a machine whose CPUs are its own (no steal)"
        );
    } else if code == exit::INCONCLUSIVE {
        eprintln!(
            "inconclusive: the SLOs failed only from the second the load generator saturated \
             (exit 4); run with less load, with the target on another machine, or on a machine \
             whose CPUs are its own (no steal)"
        );
    }
    Ok(code)
}
