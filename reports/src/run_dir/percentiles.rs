//! `percentiles.csv`: the distribution of every metric over the whole run.

use std::io::Write;

use crate::model::{Metric, RunResult};

/// The header row. Values are in each metric's display unit (`unit` column).
pub const PERCENTILES_COLUMNS: [&str; 10] = [
    "metric", "unit", "p50", "p90", "p95", "p99", "p99.9", "max", "mean", "count",
];

/// Writes `percentiles.csv`: one row per metric that has data.
pub fn write_percentiles(out: &mut impl Write, run: &RunResult) -> std::io::Result<()> {
    writeln!(out, "{}", PERCENTILES_COLUMNS.join(","))?;
    for metric in Metric::ALL {
        let Some(s) = run.summary(metric) else {
            continue;
        };
        let unit = metric.unit();
        let v = |recorded: f64| format!("{:.3}", unit.to_display(recorded));
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            metric.name(),
            unit.display_name(),
            v(s.p50 as f64),
            v(s.p90 as f64),
            v(s.p95 as f64),
            v(s.p99 as f64),
            v(s.p999 as f64),
            v(s.max as f64),
            v(s.mean),
            s.count
        )?;
    }
    Ok(())
}
