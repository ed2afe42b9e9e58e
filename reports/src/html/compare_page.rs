//! The view of a comparison that `compare.html` renders.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::svg::{Chart, Series, Style, XScale, YAxis};
use super::{Figure, banner_class, cell_class, charts, render};
use crate::compare::Comparison;
use crate::error::ReportError;
use crate::model::{Histograms, Metric, RunResult};
use crate::timeline::{Second, timeline};

#[derive(Serialize)]
struct CompareView {
    title: String,
    subtitle: String,
    verdict: String,
    banner_class: &'static str,
    exit_code: u8,
    note: String,
    rows: Vec<RowView>,
    distributions: Vec<Figure>,
    base_label: String,
    cand_label: String,
    base_series: Vec<Figure>,
    cand_series: Vec<Figure>,
}

#[derive(Serialize)]
struct RowView {
    metric: String,
    margin: String,
    base: String,
    cand: String,
    change: String,
    interval: String,
    verdict: String,
    class: &'static str,
}

const BASE: usize = 0;
const CAND: usize = 1;

/// Renders `compare.html`: the comparison table, both sides' distributions overlaid, and each
/// side's time series next to the other's.
pub fn render_compare(
    comparison: &Comparison,
    base: &[RunResult],
    cand: &[RunResult],
) -> Result<String, ReportError> {
    let side_label = |runs: &[RunResult], side: &str| match runs {
        [one] => format!(
            "{side}: {} {}",
            one.scenario,
            one.started_at.format("%Y-%m-%d %H:%M")
        ),
        runs => format!("{side}: {} runs", runs.len()),
    };
    let (base_label, cand_label) = (side_label(base, "base"), side_label(cand, "candidate"));
    let merged_base = merged(base);
    let merged_cand = merged(cand);
    let distributions = [
        Metric::Ttft,
        Metric::Itl,
        Metric::Tpot,
        Metric::Latency,
        Metric::Overhead,
    ]
    .into_iter()
    .filter_map(|metric| {
        let sides: Vec<(String, Style, Histogram<u64>)> = [
            ("base", Style::dashed(BASE, 0), merged_base.get(metric)),
            ("candidate", Style::dashed(CAND, 1), merged_cand.get(metric)),
        ]
        .into_iter()
        .filter_map(|(name, style, h)| Some((name.to_owned(), style, h?)))
        .collect();
        (!sides.is_empty()).then(|| Figure::of(charts::distribution(metric, &sides)))
    })
    .collect();
    let (base_series, cand_series) = side_by_side(base, cand);
    let rows = comparison
        .rows
        .iter()
        .map(|row| {
            let [metric, margin, base, cand, change, interval, verdict] = row.cells();
            RowView {
                metric,
                margin,
                base,
                cand,
                change,
                interval,
                verdict,
                class: row.judged.as_ref().map_or("", |j| cell_class(j.verdict)),
            }
        })
        .collect();
    let view = CompareView {
        title: "gatebench: comparison".to_owned(),
        subtitle: format!("{base_label} \u{b7} {cand_label}"),
        verdict: comparison.verdict.to_string(),
        banner_class: banner_class(comparison.verdict),
        exit_code: comparison.exit_code(),
        note: comparison.note(),
        rows,
        distributions,
        base_series,
        cand_series,
        base_label,
        cand_label,
    };
    render("compare.html", view)
}

/// The histograms of all runs of one side, added together.
fn merged(runs: &[RunResult]) -> Histograms {
    let mut all = Histograms::new();
    for run in runs {
        all.merge(&run.metrics);
    }
    all
}

/// A quantity drawn over time for every run of both sides.
struct OverTime {
    title: &'static str,
    y_label: &'static str,
    value: fn(&Second) -> Option<f64>,
}

const OVER_TIME: [OverTime; 3] = [
    OverTime {
        title: "Throughput",
        y_label: "requests per second (1/s)",
        value: |s| Some(s.requests as f64),
    },
    OverTime {
        title: "e2e latency p99 per second",
        y_label: "e2e latency p99 (ms)",
        value: |s| s.latency.map(|p| p.p99 as f64 / 1_000.0),
    },
    OverTime {
        title: "TTFT p99 per second",
        y_label: "TTFT p99 (ms)",
        value: |s| s.ttft.map(|p| p.p99 as f64 / 1_000.0),
    },
];

/// The time series of both sides, one line per run, each pair of charts on one y scale.
fn side_by_side(base: &[RunResult], cand: &[RunResult]) -> (Vec<Figure>, Vec<Figure>) {
    let base: Vec<Vec<Second>> = base.iter().map(timeline).collect();
    let cand: Vec<Vec<Second>> = cand.iter().map(timeline).collect();
    let last_second = base
        .iter()
        .chain(&cand)
        .filter_map(|seconds| seconds.last())
        .map(|s| f64::from(s.second))
        .fold(0.0, f64::max);
    let mut figures = (Vec::new(), Vec::new());
    for quantity in &OVER_TIME {
        let max = base
            .iter()
            .chain(&cand)
            .flatten()
            .filter_map(quantity.value)
            .fold(0.0_f64, f64::max);
        let chart = |runs: &[Vec<Second>], side: usize| {
            Figure::of(Chart {
                title: quantity.title.to_owned(),
                x_label: "time since start (s)".to_owned(),
                y_label: quantity.y_label.to_owned(),
                x_scale: XScale::Linear,
                x_bounds: Some((0.0, last_second)),
                y_axis: YAxis::AtLeast(max),
                series: runs
                    .iter()
                    .enumerate()
                    .map(|(n, seconds)| {
                        let points = seconds
                            .iter()
                            .map(|s| (f64::from(s.second), (quantity.value)(s)))
                            .collect();
                        Series::new(
                            format!("run {}", n + 1),
                            Style::dashed(side + 2 * n, n),
                            points,
                        )
                    })
                    .collect(),
            })
        };
        figures.0.push(chart(&base, BASE));
        figures.1.push(chart(&cand, CAND));
    }
    figures
}
