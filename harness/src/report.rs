//! `harness report DIR`: a run directory's reports made again from its summary.

use std::path::Path;

use crate::scenario::summary;

/// `harness report DIR`: re-renders `report.html` from `summary.json` and returns the console
/// summary of the run.
pub fn rerender(dir: &Path) -> anyhow::Result<String> {
    let run = reports::run_dir::read_summary(&dir.join(reports::run_dir::SUMMARY_JSON))?;
    let html = reports::run_dir::rerender_report(dir)?;
    Ok(format!(
        "{}\n  report: {}\n",
        summary::render(&run, &summary::Extras::default()),
        html.display()
    ))
}
