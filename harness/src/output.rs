//! The run directory: `<out>/<scenario>-<UTC timestamp>/`, written by `reports::run_dir`
//! (summary.json, timeseries.csv, percentiles.csv, latency.hlog, bencher.json, report.html and
//! the resolved config.toml).

use std::path::{Path, PathBuf};

use reports::{ReportError, RunResult};
use scenarios::load::Worker;

/// Creates a fresh run directory under `out` and writes every file of the run into it.
///
/// A worker's directory is named for it too (`smoke-20260101T000000Z-worker-2-of-3`): workers
/// often share one results volume and start in the same second, and must never write into each
/// other's directory.
pub fn write_run(out: &Path, run: &RunResult, worker: Worker) -> Result<PathBuf, ReportError> {
    let stamp = run.started_at.format("%Y%m%dT%H%M%SZ");
    let name = if worker == Worker::SOLE {
        format!("{}-{stamp}", run.scenario)
    } else {
        format!(
            "{}-{stamp}-worker-{}-of-{}",
            run.scenario,
            worker.index(),
            worker.count()
        )
    };
    let dir = unused_dir(out, &name);
    reports::run_dir::write_run_dir(&dir, run)?;
    Ok(dir)
}

/// `out/name`, or `out/name-2`, `-3`, ... when that exists: runs started in the same second
/// never share a directory.
pub fn unused_dir(out: &Path, name: &str) -> PathBuf {
    let mut dir = out.join(name);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{name}-{n}"));
    }
    dir
}
