//! The run directory: `<out>/<scenario>-<UTC timestamp>/`, written by `reports::run_dir`
//! (summary.json, timeseries.csv, percentiles.csv, latency.hlog, bencher.json, report.html and
//! the resolved config.toml).

use std::path::{Path, PathBuf};

use reports::{ReportError, RunResult};

/// Creates a fresh run directory under `out` and writes every file of the run into it.
pub fn write_run(out: &Path, run: &RunResult) -> Result<PathBuf, ReportError> {
    let stamp = run.started_at.format("%Y%m%dT%H%M%SZ");
    let mut dir = out.join(format!("{}-{stamp}", run.scenario));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{}-{stamp}-{n}", run.scenario));
    }
    reports::run_dir::write_run_dir(&dir, run)?;
    Ok(dir)
}
