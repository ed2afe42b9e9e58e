//! `harness compare`: a candidate's runs against a baseline's.

use std::path::PathBuf;

use anyhow::Context;

/// `harness compare`: the comparison table and `compare.html` in the first candidate
/// directory, and the verdict's exit code.
///
/// Every directory is read (a run directory, or the run directories inside it), and every run
/// must be of one scenario: runs of different workloads would compare the workloads.
pub fn compare(base: &[PathBuf], candidate: &[PathBuf]) -> anyhow::Result<(String, u8)> {
    let mut scenario: Option<(String, PathBuf)> = None;
    let mut read = |dirs: &[PathBuf]| -> anyhow::Result<Vec<reports::RunResult>> {
        let mut runs = Vec::new();
        for dir in dirs {
            for run in reports::run_dir::read_runs(dir)? {
                match &scenario {
                    Some((name, first)) if *name != run.scenario => anyhow::bail!(
                        "runs of different scenarios: {} holds `{name}`, {} holds `{}`; compare runs of one scenario",
                        first.display(),
                        dir.display(),
                        run.scenario
                    ),
                    Some(_) => {}
                    None => scenario = Some((run.scenario.clone(), dir.clone())),
                }
                runs.push(run);
            }
        }
        Ok(runs)
    };
    let base_runs = read(base)?;
    let cand_runs = read(candidate)?;
    let comparison = reports::compare(&base_runs, &cand_runs);
    let out = candidate.first().context("no candidate directory given")?;
    let html = reports::run_dir::write_compare(out, &comparison, &base_runs, &cand_runs)?;
    let text = format!("{comparison}compare.html: {}\n", html.display());
    Ok((text, comparison.exit_code()))
}
