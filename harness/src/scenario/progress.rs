//! The live progress line: elapsed / total, users, req/s, p95 latency, errors, SLO state.
//! Drawn on stderr only when it is a terminal; hidden with `--quiet`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reports::RunResult;
use reports::model::{Interval, Metric};

/// The progress line of one run.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress line for a run of `total`.
    pub fn new(total: Duration, hidden: bool) -> Progress {
        let target = if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(total.as_secs().max(1)), target);
        let style = ProgressStyle::with_template("{spinner} {pos:>4}/{len}s [{bar:20}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Shows the state after the latest closed second.
    pub fn update(
        &self,
        elapsed: Duration,
        latest: Option<&Interval>,
        run: &RunResult,
        slo_lost: bool,
    ) {
        self.bar.set_position(elapsed.as_secs());
        let users = latest.map_or(0, |i| i.active_users);
        let rps = latest.map_or(0.0, Interval::rps);
        let p95 = latest
            .and_then(|i| i.histograms.percentile(Metric::Latency, 0.95))
            .map_or_else(
                || "-".to_owned(),
                |us| format!("{:.0}ms", us as f64 / 1000.0),
            );
        let errors = run.totals.errors.total();
        let rate = run.totals.error_rate().unwrap_or(0.0) * 100.0;
        let slo = if slo_lost { "SLO LOST" } else { "SLO ok" };
        self.bar.set_message(format!(
            "users {users} | {rps:.0} req/s | p95 {p95} | errors {errors} ({rate:.1}%) | {slo}"
        ));
    }

    /// Removes the line before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
