//! The files of a run directory (docs/design.md, "Run directory").

mod bmf;
mod hlog;
mod percentiles;
mod summary;
mod timeseries;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use bmf::write_bmf;
pub use hlog::{MAX_VALUE_DIVISOR, write_hlog};
pub use percentiles::{PERCENTILES_COLUMNS, write_percentiles};
pub use summary::{read_summary, write_summary};
pub use timeseries::{TIMESERIES_COLUMNS, write_timeseries};

use crate::compare::Comparison;
use crate::error::ReportError;
use crate::html::{render_compare, render_report};
use crate::model::RunResult;
use crate::redact::redacted;

/// File names inside a run directory.
pub const SUMMARY_JSON: &str = "summary.json";
pub const TIMESERIES_CSV: &str = "timeseries.csv";
pub const PERCENTILES_CSV: &str = "percentiles.csv";
pub const LATENCY_HLOG: &str = "latency.hlog";
pub const REPORT_HTML: &str = "report.html";
pub const CONFIG_TOML: &str = "config.toml";
pub const BENCHER_JSON: &str = "bencher.json";
/// Written by `harness compare` into the candidate's directory.
pub const COMPARE_HTML: &str = "compare.html";

/// Writes every file of the run directory `dir` (created if missing) and returns their paths.
pub fn write_run_dir(dir: &Path, run: &RunResult) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let html = render_report(run)?;
    let config =
        toml::to_string_pretty(&redacted(&run.config)).map_err(|e| ReportError::Write {
            path: dir.join(CONFIG_TOML),
            source: std::io::Error::other(e),
        })?;
    let mut written = Vec::new();
    let mut write = |name: &str, body: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>| {
        let path = dir.join(name);
        write_file(&path, body)?;
        written.push(path);
        Ok::<_, ReportError>(())
    };
    write(SUMMARY_JSON, &|out| write_summary(out, run))?;
    write(TIMESERIES_CSV, &|out| write_timeseries(out, run))?;
    write(PERCENTILES_CSV, &|out| write_percentiles(out, run))?;
    write(LATENCY_HLOG, &|out| write_hlog(out, run))?;
    write(BENCHER_JSON, &|out| write_bmf(out, run))?;
    write(REPORT_HTML, &|out| out.write_all(html.as_bytes()))?;
    write(CONFIG_TOML, &|out| out.write_all(config.as_bytes()))?;
    Ok(written)
}

/// Re-renders `report.html` of a run directory from its `summary.json` (`harness report DIR`).
pub fn rerender_report(dir: &Path) -> Result<PathBuf, ReportError> {
    let run = read_summary(&dir.join(SUMMARY_JSON))?;
    let html = render_report(&run)?;
    let path = dir.join(REPORT_HTML);
    write_file(&path, &|out| out.write_all(html.as_bytes()))?;
    Ok(path)
}

/// Writes `compare.html` into `dir` and returns its path.
pub fn write_compare(
    dir: &Path,
    comparison: &Comparison,
    base: &[RunResult],
    cand: &[RunResult],
) -> Result<PathBuf, ReportError> {
    let html = render_compare(comparison, base, cand)?;
    let path = dir.join(COMPARE_HTML);
    write_file(&path, &|out| out.write_all(html.as_bytes()))?;
    Ok(path)
}

/// The runs at `path`: the run directory itself when it holds a `summary.json`, otherwise every
/// run directory directly inside it, ordered by name (run directories are named by start time).
pub fn read_runs(path: &Path) -> Result<Vec<RunResult>, ReportError> {
    let summary = path.join(SUMMARY_JSON);
    if summary.is_file() {
        return Ok(vec![read_summary(&summary)?]);
    }
    let read_error = |source| ReportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut summaries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let candidate = entry.map_err(read_error)?.path().join(SUMMARY_JSON);
        if candidate.is_file() {
            summaries.push(candidate);
        }
    }
    if summaries.is_empty() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {SUMMARY_JSON} in it or in any directory inside it"),
        )));
    }
    summaries.sort();
    summaries.iter().map(|p| read_summary(p)).collect()
}

/// Writes one file through a buffer, naming it in any error.
pub fn write_file(
    path: &Path,
    body: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), ReportError> {
    let error = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(error)?);
    body(&mut out).map_err(error)?;
    out.flush().map_err(error)
}
