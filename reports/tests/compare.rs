//! Comparing runs: verdicts, intervals, the one-run caveat, the printed table and the page.

use reports::compare::{CompareOptions, Measure, Verdict, compare, compare_with};
use reports::html::render_compare;
use reports::model::{Metric, RunResult};
use reports::synthetic::synthetic_run;

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

const TTFT_P50: Measure = Measure::Percentile(Metric::Ttft, 500);

#[test]
fn one_run_per_side_claims_no_significance() {
    let base = synthetic_run(20, 1);
    let cand = slowed(&base, 1.5);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&cand));
    assert!(!comparison.significance_possible());
    let ttft = row(&comparison, TTFT_P50);
    let change = ttft.change.expect("both sides have TTFT");
    assert!((change - 0.5).abs() < 0.01, "{change}");
    assert_eq!(ttft.verdict, Verdict::NotSignificant);
    assert!(ttft.interval.is_none());
    assert!(!comparison.regressed());
    let table = comparison.to_string();
    assert!(
        table.contains("One run per side: no significance can be claimed"),
        "{table}"
    );

    // One run on either side is enough to rule significance out.
    let uneven = compare(std::slice::from_ref(&base), &[cand.clone(), cand]);
    assert_eq!(row(&uneven, TTFT_P50).verdict, Verdict::NotSignificant);
    assert!(uneven.note().contains("no significance can be claimed"));
}

#[test]
fn several_runs_per_side_detect_a_regression_with_an_interval() {
    let base: Vec<RunResult> = (0..3).map(|seed| synthetic_run(20, seed)).collect();
    let cand: Vec<RunResult> = (10..13)
        .map(|seed| slowed(&synthetic_run(20, seed), 1.3))
        .collect();
    let comparison = compare(&base, &cand);
    assert!(comparison.significance_possible());
    let ttft = row(&comparison, TTFT_P50);
    let (low, high) = ttft.interval.expect("interval with three runs per side");
    assert!(low > 0.05 && high < 0.6 && low <= high, "[{low}, {high}]");
    assert_eq!(ttft.verdict, Verdict::Worse);
    assert!(comparison.regressed());
    // Throughput did not change (same request counts), so it must not be called worse.
    assert_ne!(
        row(&comparison, Measure::Throughput).verdict,
        Verdict::Worse
    );
}

#[test]
fn identical_sides_are_unchanged_and_the_result_is_reproducible() {
    let runs: Vec<RunResult> = (0..3).map(|seed| synthetic_run(20, seed)).collect();
    let options = CompareOptions::default();
    let first = compare_with(&runs, &runs, &options);
    let again = compare_with(&runs, &runs, &options);
    assert_eq!(first, again, "seeded bootstrap");
    let ttft = row(&first, TTFT_P50);
    assert_eq!(ttft.change, Some(0.0));
    assert_eq!(ttft.verdict, Verdict::Unchanged);
    assert!(!first.regressed());
}

#[test]
fn noisy_sides_are_inconclusive_not_a_false_alarm() {
    let base = vec![synthetic_run(20, 1), slowed(&synthetic_run(20, 2), 1.6)];
    let cand = vec![
        slowed(&synthetic_run(20, 3), 1.1),
        slowed(&synthetic_run(20, 4), 1.5),
    ];
    let comparison = compare(&base, &cand);
    assert_eq!(row(&comparison, TTFT_P50).verdict, Verdict::Inconclusive);
}

#[test]
fn printed_table_has_a_row_per_measure_and_aligned_columns() {
    let base = synthetic_run(10, 1);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&base));
    let table = comparison.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("metric"), "{table}");
    for column in ["base", "candidate", "change", "interval", "verdict"] {
        assert!(lines[0].contains(column), "{column}: {table}");
    }
    assert_eq!(lines.len(), 1 + Measure::TABLE.len() + 1, "{table}");
    assert!(lines.iter().any(|l| l.starts_with("ttft p95")), "{table}");
    let change_column = lines[0].find("change").expect("column");
    assert!(
        lines[1..=Measure::TABLE.len()]
            .iter()
            .all(|l| l.len() >= change_column)
    );
}

#[test]
fn compare_page_overlays_both_sides() {
    let base = synthetic_run(15, 1);
    let cand = slowed(&base, 1.2);
    let comparison = compare(std::slice::from_ref(&base), std::slice::from_ref(&cand));
    let html = render_compare(&comparison, &[base], &[cand]).expect("renders");
    assert!(html.contains("One run per side: no significance can be claimed"));
    assert!(html.contains("TTFT distribution"));
    // Each overlaid distribution has a base and a candidate line.
    let distributions = html
        .split("<h2>Distributions")
        .nth(1)
        .and_then(|rest| rest.split("<h2>").next())
        .expect("distribution section");
    assert!(distributions.matches(r#"class="series""#).count() >= 10);
    assert!(!html.contains("<script"));

    let dir = tempfile::tempdir().expect("temp dir");
    let path = reports::run_dir::write_compare(dir.path(), &comparison, &[], &[]).expect("writes");
    assert!(path.ends_with("compare.html") && path.is_file());
}
