//! The run directory: `<out>/<scenario>-<UTC timestamp>/`, written by `reports::run_dir`
//! (summary.json, timeseries.csv, percentiles.csv, latency.hlog, bencher.json, report.html and
//! the resolved config.toml).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use reports::{ReportError, RunResult};
use scenarios::load::Worker;

/// A fresh run directory under `out` for `scenario` started at `started_at` (not created
/// yet: the embedded stack creates it for its processes' files, the writers at the end).
///
/// A worker's directory is named for it too (`smoke-20260101T000000Z-worker-2-of-3`): workers
/// often share one results volume and start in the same second, and must never write into each
/// other's directory.
pub fn run_dir(out: &Path, scenario: &str, started_at: DateTime<Utc>, worker: Worker) -> PathBuf {
    let stamp = started_at.format("%Y%m%dT%H%M%SZ");
    let name = if worker == Worker::SOLE {
        format!("{scenario}-{stamp}")
    } else {
        format!(
            "{scenario}-{stamp}-worker-{}-of-{}",
            worker.index(),
            worker.count()
        )
    };
    unused_dir(out, &name)
}

/// Writes every file of `run` into `dir`.
pub fn write_run(dir: &Path, run: &RunResult) -> Result<(), ReportError> {
    reports::run_dir::write_run_dir(dir, run).map(drop)
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
