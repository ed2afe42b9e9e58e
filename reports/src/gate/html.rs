//! `gate.html`: the gate's verdict, its table and one chart per metric, as one self-contained
//! file in the style of `report.html` (same base template and policy: nothing is loaded).

use minijinja::Environment;
use serde::Serialize;

use super::metric::GateMetric;
use super::report::{GateReport, interval, p_value};
use super::rounds::Round;
use super::verdict::Verdict;
use crate::compare::percent;
use crate::error::ReportError;
use crate::html::svg::{Chart, Series, Style, XScale, YAxis};
use crate::model::short;

const NAME: &str = "gate.html";

#[derive(Serialize)]
struct GateView {
    title: String,
    subtitle: String,
    verdict: String,
    banner_class: &'static str,
    summary: String,
    exit_code: u8,
    confidence: String,
    rows: Vec<RowView>,
    not_measured: String,
    figures: Vec<FigureView>,
    method: String,
}

#[derive(Serialize)]
struct RowView {
    metric: &'static str,
    tolerance: String,
    base: String,
    cand: String,
    change: String,
    interval: String,
    aa_interval: String,
    p_worse: String,
    p_better: String,
    verdict: String,
    class: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct FigureView {
    caption: String,
    /// Markup from [`Chart::render`], which escapes every text it writes.
    svg: String,
}

/// Renders `gate.html`.
pub fn render_gate(report: &GateReport) -> Result<String, ReportError> {
    let confidence = format!("{}%", short(report.settings.confidence.level() * 100.0));
    let rows = report
        .metrics
        .iter()
        .map(|m| RowView {
            metric: m.metric.label(),
            tolerance: format!("±{}", m.tolerance),
            base: m.metric.format(m.base),
            cand: m.metric.format(m.cand),
            change: percent(m.ab.change),
            interval: interval(m.ab.interval),
            aa_interval: interval(m.aa.interval),
            p_worse: p_value(m.ab.p_worse),
            p_better: p_value(m.ab.p_better),
            verdict: m.verdict.to_string(),
            class: match m.verdict {
                Verdict::Regression => "fail",
                Verdict::Improvement => "pass",
                Verdict::Unchanged | Verdict::Inconclusive => "",
            },
            reason: m.reason(),
        })
        .collect();
    let figures = report
        .metrics
        .iter()
        .map(|m| FigureView {
            caption: format!("{} per round", m.metric.label()),
            svg: rounds_chart(report, m.metric).render(),
        })
        .collect();
    let subject = &report.subject;
    let view = GateView {
        title: "gatebench: performance gate".to_owned(),
        subtitle: format!(
            "scenario {} · base {} · candidate {} · {} A/B and {} A/A rounds",
            subject.scenario,
            subject.base,
            subject.cand,
            report.runs.ab.len(),
            report.runs.aa.len()
        ),
        verdict: report.verdict.to_string(),
        banner_class: match report.verdict {
            Verdict::Regression => "fail",
            Verdict::Improvement | Verdict::Unchanged => "pass",
            Verdict::Inconclusive => "none",
        },
        summary: report.summary(),
        exit_code: report.exit_code(),
        rows,
        not_measured: report
            .not_measured
            .iter()
            .map(|m| m.label())
            .collect::<Vec<_>>()
            .join(", "),
        figures,
        method: format!(
            "Base (A) and candidate (B) ran in rounds of four runs, A B B A, so that a drift of \
             the machine cancels out. Each round gives the log-ratio of the geometric means of its \
             two sides. The interval is a {confidence} percentile bootstrap interval of the 20% \
             trimmed mean of the log-ratios ({} resamples, seed {}), shown as a relative change; the p-values are exact \
             one-sided Wilcoxon signed-rank tests that the log-ratios lie beyond the worse or the \
             better edge of the tolerance band. A metric regressed only when its whole interval is \
             worse than the tolerance and p worse is below {}; A/A rounds ran the base on both \
             sides, and when their interval reaches beyond the tolerance the machine was too \
             noisy, so the metric is inconclusive instead.",
            report.settings.resamples,
            report.settings.seed,
            short((1.0 - report.settings.confidence.level()) / 2.0),
        ),
        confidence,
    };
    let mut env = Environment::new();
    let templates = [
        ("base.html", include_str!("../../templates/base.html")),
        (NAME, include_str!("gate.html")),
    ];
    for (template, source) in templates {
        env.add_template(template, source)
            .map_err(|source| ReportError::Render { name: NAME, source })?;
    }
    env.get_template(NAME)
        .and_then(|template| template.render(view))
        .map_err(|source| ReportError::Render { name: NAME, source })
}

/// Both sides of every A/B and A/A round of one metric, over the round number.
fn rounds_chart(report: &GateReport, metric: GateMetric) -> Chart {
    let series = |rounds: &[Round], pick: fn((f64, f64)) -> f64| -> Vec<(f64, Option<f64>)> {
        rounds
            .iter()
            .enumerate()
            .map(|(i, round)| {
                let value = round.geomeans(metric).map(|s| metric.to_display(pick(s)));
                ((i + 1) as f64, value)
            })
            .collect()
    };
    Chart {
        title: format!("{} per round", metric.label()),
        x_label: "round".to_owned(),
        y_label: format!("{} ({})", metric.label(), metric.display_unit()),
        x_scale: XScale::Linear,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series: vec![
            Series::new(
                "base",
                Style::dashed(0, 0),
                series(&report.runs.ab, |s| s.0),
            ),
            Series::new(
                "candidate",
                Style::dashed(1, 0),
                series(&report.runs.ab, |s| s.1),
            ),
            Series::new(
                "A/A: runs 1, 4",
                Style::dashed(0, 2),
                series(&report.runs.aa, |s| s.0),
            ),
            Series::new(
                "A/A: runs 2, 3",
                Style::dashed(2, 2),
                series(&report.runs.aa, |s| s.1),
            ),
        ],
    }
}
