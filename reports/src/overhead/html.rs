//! `overhead.html`: the table and the added latency and throughput ratio over load, as one
//! self-contained file in the style of `report.html` (same base template and policy: nothing is
//! loaded, no script).

use serde::Serialize;

use super::estimate::Interval;
use super::report::{ComparedSide, LevelResult, OverheadReport};
use super::table::{COLUMNS, HEADER, stream_label};
use crate::error::ReportError;
use crate::html::svg::{Chart, Series, Style, XScale, YAxis};
use crate::model::short;

const NAME: &str = "overhead.html";

#[derive(Serialize)]
struct OverheadView {
    title: String,
    subtitle: String,
    facts: Vec<FactView>,
    confidence: String,
    header: [&'static str; COLUMNS],
    rows: Vec<[String; COLUMNS]>,
    /// The highest rates within the p99 bound, and later sides against the first.
    notes: Vec<String>,
    figures: Vec<FigureView>,
    method: String,
}

#[derive(Serialize)]
struct FactView {
    label: &'static str,
    value: String,
}

#[derive(Serialize)]
struct FigureView {
    caption: String,
    /// Markup from [`Chart::render`], which escapes every text it writes.
    svg: String,
}

/// Renders `overhead.html`.
pub fn render_overhead(report: &OverheadReport) -> Result<String, ReportError> {
    let confidence = format!("{}%", short(report.confidence * 100.0));
    let settings = &report.settings;
    let mut facts = vec![FactView {
        label: "direct (the upstream)",
        value: report.subject.direct.clone(),
    }];
    facts.extend(report.subject.sides.iter().map(|s| FactView {
        label: "through",
        value: format!("{} {}", s.name, s.url),
    }));
    facts.push(FactView {
        label: "rounds",
        value: format!(
            "{} of {} s per level",
            settings.rounds,
            short(settings.round_secs)
        ),
    });
    facts.push(FactView {
        label: "requests",
        value: format!(
            "{} {}, seed {}",
            settings.api, settings.model, settings.seed
        ),
    });
    let view = OverheadView {
        title: "gatebench: gateway overhead".to_owned(),
        subtitle: format!(
            "measured from the client, paired with direct requests · {}",
            report.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        facts,
        header: HEADER,
        rows: report.rows(),
        notes: report.notes(),
        figures: figures(report),
        method: format!(
            "Every level ran {} rounds. In each round every side (direct to the upstream, then \
             through each proxy) got the same requests, with the same bodies in the same order, \
             for an equal share of the round; the order of the sides reverses from one round to \
             the next, so a drift of the machine hits every side alike. Latency runs from the \
             send (closed levels) or the intended start (open levels) to the last byte of the \
             response; TTFT to the first content event of a stream. An added time is a side's \
             nearest-rank percentile minus direct's in the same round; the table gives the 20% \
             trimmed mean over rounds and its {confidence} percentile bootstrap interval ({} \
             resamples). The throughput ratio is the trimmed mean of per-round log-ratios of \
             successful requests per second. Header p50/p99 is what the target reports about \
             itself in x-gateway-overhead-us, where it sends it.",
            settings.rounds, report.resamples
        ),
        confidence,
    };
    crate::html::render(NAME, view)
}

/// Per model (closed, open) and stream mode: added p50 and p99 latency, added TTFT p50 when
/// streamed, and the throughput ratio of the closed levels.
fn figures(report: &OverheadReport) -> Vec<FigureView> {
    let mut figures = Vec::new();
    for open in [false, true] {
        for stream in [false, true] {
            let levels: Vec<&LevelResult> = report
                .levels
                .iter()
                .filter(|l| l.load.is_open() == open && l.stream == stream)
                .collect();
            if levels.is_empty() {
                continue;
            }
            let x_label = if open {
                "arrivals per second"
            } else {
                "concurrency"
            };
            let mode = format!(
                "{}, {}",
                if open { "open model" } else { "closed model" },
                stream_label(stream)
            );
            let charts = [
                ("added latency p50", "us", pick_e2e_p50 as Pick),
                ("added latency p99", "us", pick_e2e_p99),
                ("added TTFT p50", "us", pick_ttft_p50),
                ("throughput ratio", "side / direct", pick_ratio),
            ];
            for (what, unit, pick) in charts {
                let chart = chart(
                    report,
                    &levels,
                    pick,
                    format!("{what}, {mode}"),
                    x_label,
                    unit,
                );
                if chart.has_data() {
                    figures.push(FigureView {
                        caption: chart.title.clone(),
                        svg: chart.render(),
                    });
                }
            }
        }
    }
    figures
}

type Pick = fn(&ComparedSide) -> Option<Interval>;

fn pick_e2e_p50(side: &ComparedSide) -> Option<Interval> {
    side.added_e2e.map(|a| a.p50)
}

fn pick_e2e_p99(side: &ComparedSide) -> Option<Interval> {
    side.added_e2e.map(|a| a.p99)
}

fn pick_ttft_p50(side: &ComparedSide) -> Option<Interval> {
    side.added_ttft.map(|a| a.p50)
}

fn pick_ratio(side: &ComparedSide) -> Option<Interval> {
    side.throughput_ratio
}

/// One chart over `levels`: per proxy side its estimate (solid) and the interval's edges
/// (dotted, same colour).
fn chart(
    report: &OverheadReport,
    levels: &[&LevelResult],
    pick: Pick,
    title: String,
    x_label: &str,
    unit: &str,
) -> Chart {
    let mut series = Vec::new();
    for (index, label) in report.subject.sides.iter().enumerate() {
        let points = |edge: fn(&Interval) -> f64| -> Vec<(f64, Option<f64>)> {
            levels
                .iter()
                .map(|l| (l.load.amount(), pick(&l.sides[index]).map(|i| edge(&i))))
                .collect()
        };
        series.push(Series::new(
            label.name.clone(),
            Style::dashed(index, 0),
            points(|i| i.estimate),
        ));
        for (edge, at) in [
            ("low", (|i| i.low) as fn(&Interval) -> f64),
            ("high", |i| i.high),
        ] {
            series.push(Series::new(
                format!("{} interval {edge}", label.name),
                Style::dashed(index, 2),
                points(at),
            ));
        }
    }
    Chart {
        y_label: format!("{} ({unit})", title.split(',').next().unwrap_or_default()),
        title,
        x_label: x_label.to_owned(),
        x_scale: XScale::Linear,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series,
    }
}
