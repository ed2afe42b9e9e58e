//! `harness merge DIR... --out DIR`: the run directories of the workers of one load
//! (`harness scenario NAME --worker I/N`) merged into one run directory.
//!
//! The merge itself is `reports::merge`'s (histograms added, counters summed, seconds aligned by
//! wall clock, SLOs judged again). This side finds the runs, checks they are the N distinct
//! workers of one configuration, and writes the merged run like any other.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use reports::RunResult;
use reports::run_dir::{SUMMARY_JSON, read_summary, write_run_dir};
use reports::slo::{evaluate, load_slos};
use scenarios::load::Worker;

/// Config keys that may differ between the workers of one load: where each writes and how it
/// prints, and which worker it is. The merged run's config has none of them, so its
/// `config.toml` repeats the whole load in one process.
const PER_WORKER_KEYS: [&str; 4] = ["worker", "out", "quiet", "json"];

/// What to merge.
#[derive(Clone, Debug)]
pub struct MergePlan {
    /// Worker run directories, or directories whose subdirectories are worker run directories.
    pub dirs: Vec<PathBuf>,
    /// The merged run directory (created if missing, its files replaced).
    pub out: PathBuf,
    /// An SLO file to judge the merged run by instead of the workers' SLOs.
    pub slo: Option<PathBuf>,
}

/// A merged run, written.
pub struct Merged {
    pub result: RunResult,
    pub dir: PathBuf,
    /// How many workers it was merged from.
    pub workers: usize,
}

/// One worker's run and where it was read from.
struct WorkerRun {
    dir: PathBuf,
    worker: Worker,
    run: RunResult,
}

/// Reads, checks, merges and writes; every error is one line naming the directory at fault.
pub fn merge(plan: &MergePlan) -> anyhow::Result<Merged> {
    let mut runs = Vec::new();
    for dir in run_dirs(&plan.dirs)? {
        let run = read_summary(&dir.join(SUMMARY_JSON))?;
        let worker = worker_of(&dir, &run)?;
        runs.push(WorkerRun { dir, worker, run });
    }
    runs.sort_by_key(|r| r.worker);
    check_complete(&runs)?;
    let results: Vec<RunResult> = runs.iter().map(|r| r.run.clone()).collect();
    let mut merged = reports::merge::merge(&results).map_err(|e| match e.run() {
        Some(at) => anyhow!("{}: {e}", runs[at].dir.display()),
        None => anyhow!("{e}"),
    })?;
    check_same_config(&runs)?;
    for key in PER_WORKER_KEYS {
        merged.config.remove(key);
    }
    if let Some(path) = &plan.slo {
        let slos = load_slos(path)?;
        merged.slo_results = evaluate(&slos, &merged);
        merged
            .config
            .insert("slo".to_owned(), path.display().to_string().into());
    }
    write_run_dir(&plan.out, &merged)?;
    Ok(Merged {
        result: merged,
        dir: plan.out.clone(),
        workers: runs.len(),
    })
}

/// The run directories `dirs` name: each one itself when it holds a `summary.json`, otherwise
/// every subdirectory of it that does, in name order.
fn run_dirs(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in dirs {
        if !dir.exists() {
            bail!("{}: no such directory", dir.display());
        }
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        if dir.join(SUMMARY_JSON).is_file() {
            found.push(dir.clone());
            continue;
        }
        let mut inside = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.join(SUMMARY_JSON).is_file() {
                inside.push(path);
            }
        }
        if inside.is_empty() {
            bail!(
                "{} holds no {SUMMARY_JSON}, nor do any of its subdirectories: not a run directory",
                dir.display()
            );
        }
        inside.sort();
        found.extend(inside);
    }
    Ok(found)
}

/// The worker a run was, from the `worker` its config records.
fn worker_of(dir: &Path, run: &RunResult) -> anyhow::Result<Worker> {
    let value = run.config.get("worker").ok_or_else(|| {
        anyhow!(
            "{} is not a worker run (its config has no `worker`; run workers with --worker I/N)",
            dir.display()
        )
    })?;
    value
        .as_str()
        .ok_or_else(|| anyhow!("{}: `worker` is not a string", dir.display()))?
        .parse()
        .with_context(|| format!("{}: config `worker`", dir.display()))
}

/// Workers `1/N` to `N/N`, each exactly once.
fn check_complete(runs: &[WorkerRun]) -> anyhow::Result<()> {
    let Some(first) = runs.first() else {
        bail!("no runs to merge");
    };
    let count = first.worker.count();
    for pair in runs.windows(2) {
        if pair[0].worker == pair[1].worker {
            bail!(
                "{} and {} are both worker {}",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].worker
            );
        }
    }
    if let Some(other) = runs.iter().find(|r| r.worker.count() != count) {
        bail!(
            "{} is worker {}, {} is worker {}: not the workers of one load",
            other.dir.display(),
            other.worker,
            first.dir.display(),
            first.worker
        );
    }
    let missing: Vec<String> = (1..=count)
        .filter_map(|index| Worker::new(index, count))
        .filter(|worker| !runs.iter().any(|r| r.worker == *worker))
        .map(|worker| worker.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "worker {} missing: a merge needs every worker of the load",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Every worker ran the same configuration, apart from [`PER_WORKER_KEYS`].
fn check_same_config(runs: &[WorkerRun]) -> anyhow::Result<()> {
    let Some((first, rest)) = runs.split_first() else {
        return Ok(());
    };
    let shared = |run: &RunResult| {
        let mut config = run.config.clone();
        for key in PER_WORKER_KEYS {
            config.remove(key);
        }
        config
    };
    let expected = shared(&first.run);
    for other in rest {
        let config = shared(&other.run);
        if config == expected {
            continue;
        }
        let key = expected
            .keys()
            .chain(config.keys())
            .find(|key| expected.get(*key) != config.get(*key))
            .map_or_else(String::new, |key| format!(" in `{key}`"));
        bail!(
            "{}: its config differs from {}'s{key}: not the same load",
            other.dir.display(),
            first.dir.display()
        );
    }
    Ok(())
}
