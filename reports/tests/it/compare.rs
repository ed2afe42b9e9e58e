//! Comparing runs: verdicts by the shared equivalence rule, intervals, one run a side, the
//! printed table and the page.

use reports::compare::{Measure, Resampling, Verdict, compare, compare_with};
use reports::html::render_compare;
use reports::model::{Metric, RunResult};
use reports::synthetic::synthetic_run;

use crate::common::tempdir;

/// A copy of `run` whose every recorded time is scaled by `factor`.
fn slowed(run: &RunResult, factor: f64) -> RunResult {
    let mut slow = RunResult::new(
        run.scenario.clone(),
        run.config.clone(),
        run.environment.clone(),
        run.started_at,
    );
    for interval in &run.intervals {
        let mut scaled = interval.clone();
        for metric in interval.histograms.metrics() {
            let Some(h) = interval.histograms.get(metric) else {
                continue;
            };
            let mut out = reports::model::new_histogram();
            for v in h.iter_recorded() {
                let value = (v.value_iterated_to() as f64 * factor) as u64;
                out.record_n(value.max(1), v.count_at_value())
                    .expect("fits");
            }
            scaled.histograms.insert(metric, &out);
        }
        slow.push_interval(scaled);
    }
    slow.finish(run.ended_at, run.wall_time);
    slow
}

fn row(comparison: &reports::Comparison, measure: Measure) -> &reports::compare::Row {
    comparison
        .rows
        .iter()
        .find(|r| r.measure == measure)
        .expect("measure in table")
}

fn judged(comparison: &reports::Comparison, measure: Measure) -> &reports::compare::Judged {
    row(comparison, measure)
        .judged
        .as_ref()
        .expect("both sides have the measure")
}

const TTFT_P50: Measure = Measure::Percentile(Metric::Ttft, 500);

#[test]
fn one_run_a_side_shows_the_change_and_claims_nothing() {
    let base = synthetic_run(20, 1);
    let cand = slowed(&base, 1.5);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&cand));
    assert!(!comparison.significance_possible());
    let ttft = judged(&comparison, TTFT_P50);
    assert!((ttft.change - 0.5).abs() < 0.01, "{ttft:?}");
    assert_eq!(ttft.verdict, Verdict::Inconclusive);
    assert!(ttft.interval.is_none());
    // Even a row that did not move: one run shows nothing of the noise between runs.
    assert_eq!(
        judged(&comparison, Measure::Throughput).verdict,
        Verdict::Inconclusive
    );
    assert_eq!(comparison.verdict, Verdict::Inconclusive);
    assert_eq!(comparison.exit_code(), 4);
    let table = comparison.to_string();
    assert!(
        table.contains("one run on a side shows nothing of how much a build moves"),
        "{table}"
    );

    // One run on either side is enough to rule intervals out.
    let uneven = compare(std::slice::from_ref(&base), &[cand.clone(), cand]);
    assert_eq!(judged(&uneven, TTFT_P50).verdict, Verdict::Inconclusive);
    assert!(judged(&uneven, TTFT_P50).interval.is_none());
}

#[test]
fn several_runs_a_side_detect_a_regression_with_an_interval() {
    let base: Vec<RunResult> = (0..3).map(|seed| synthetic_run(20, seed)).collect();
    let cand: Vec<RunResult> = (10..13)
        .map(|seed| slowed(&synthetic_run(20, seed), 1.3))
        .collect();
    let comparison = compare(&base, &cand);
    assert!(comparison.significance_possible());
    let ttft = judged(&comparison, TTFT_P50);
    let (low, high) = ttft.interval.expect("interval with three runs a side");
    assert!(low > 0.05 && high < 0.6 && low <= high, "[{low}, {high}]");
    assert_eq!(ttft.verdict, Verdict::Regression);
    assert_eq!(comparison.verdict, Verdict::Regression);
    assert_eq!(comparison.exit_code(), 3);
    // Throughput did not change (same request counts), so it must not be called a regression.
    assert_ne!(
        judged(&comparison, Measure::Throughput).verdict,
        Verdict::Regression
    );
    // The other way round it is an improvement.
    let reverse = compare(&cand, &base);
    assert_eq!(judged(&reverse, TTFT_P50).verdict, Verdict::Improvement);
}

#[test]
fn identical_sides_are_unchanged_and_the_result_is_reproducible() {
    let runs: Vec<RunResult> = (0..3).map(|seed| synthetic_run(20, seed)).collect();
    let resampling = Resampling::default();
    let first = compare_with(&runs, &runs, &resampling);
    let again = compare_with(&runs, &runs, &resampling);
    assert_eq!(first, again, "seeded bootstrap");
    let ttft = judged(&first, TTFT_P50);
    assert_eq!(ttft.change, 0.0);
    assert_eq!(ttft.verdict, Verdict::Unchanged);
    assert_eq!(
        judged(&first, Measure::ErrorRate).verdict,
        Verdict::Unchanged
    );
    assert_eq!(first.verdict, Verdict::Unchanged);
    assert_eq!(first.exit_code(), 0);
}

#[test]
fn noisy_sides_are_inconclusive_not_a_false_alarm() {
    let base = vec![synthetic_run(20, 1), slowed(&synthetic_run(20, 2), 1.6)];
    let cand = vec![
        slowed(&synthetic_run(20, 3), 1.1),
        slowed(&synthetic_run(20, 4), 1.5),
    ];
    let comparison = compare(&base, &cand);
    assert_eq!(judged(&comparison, TTFT_P50).verdict, Verdict::Inconclusive);
    assert_eq!(comparison.exit_code(), 4);
}

#[test]
fn printed_table_has_a_row_per_measure_and_aligned_columns() {
    let base = synthetic_run(10, 1);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&base));
    let table = comparison.to_string();
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[0], "metric", "{table}");
    assert_eq!(
        header[1..],
        [
            "margin",
            "base",
            "candidate",
            "change",
            "interval",
            "verdict"
        ]
    );
    // Header, one row per measure, the note and the verdict line.
    assert_eq!(lines.len(), 1 + Measure::TABLE.len() + 2, "{table}");
    assert!(lines.iter().any(|l| l.starts_with("ttft p95")), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error rate") && l.contains("±0.5 pp")),
        "{table}"
    );
    let change_column = lines[0].find("change").expect("column");
    assert!(
        lines[1..=Measure::TABLE.len()]
            .iter()
            .all(|l| l.len() >= change_column)
    );
    assert_eq!(lines.last(), Some(&"INCONCLUSIVE (exit 4)"), "{table}");
}

#[test]
fn compare_page_overlays_both_sides() {
    let base = synthetic_run(15, 1);
    let cand = slowed(&base, 1.2);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&cand));
    let html = render_compare(&comparison, &[base], &[cand]).expect("renders");
    assert!(html.contains("one run on a side shows nothing"));
    assert!(html.contains("INCONCLUSIVE") && html.contains("exit 4"));
    assert!(html.contains("TTFT distribution"));
    // Each overlaid distribution has a base and a candidate line.
    let distributions = html
        .split("<h2>Distributions")
        .nth(1)
        .and_then(|rest| rest.split("<h2>").next())
        .expect("distribution section");
    assert!(distributions.matches(r#"class="series""#).count() >= 10);
    assert!(!html.contains("<script"));

    let dir = tempdir();
    let path = reports::run_dir::write_compare(dir.path(), &comparison, &[], &[]).expect("writes");
    assert!(path.ends_with("compare.html") && path.is_file());
}
