//! `gate.html`: the gate's verdict, its table and one chart per metric, as one self-contained
//! file in the style of `report.html` (same base template and policy: nothing is loaded).

use serde::Serialize;

use super::metric::GateMetric;
use super::report::{GateReport, LevelGate, interval, p_value};
use super::rounds::Round;
use crate::error::ReportError;
use crate::html::svg::{Chart, Series, Style, XScale, YAxis};
use crate::html::{banner_class, cell_class};
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
    /// How the open-model rate was chosen, when a probe ran.
    probe: Option<String>,
    rows: Vec<RowView>,
    /// Per level: what no run measured, and the runs whose generator could not keep up.
    notes: Vec<String>,
    figures: Vec<FigureView>,
    method: String,
}

#[derive(Serialize)]
struct RowView {
    level: String,
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
        .judged()
        .map(|(l, m)| {
            let scale = m.metric.scale();
            RowView {
                level: l.level.to_string(),
                metric: m.metric.label(),
                tolerance: scale.margin(m.tolerance.fraction()),
                base: m.metric.format(m.base),
                cand: m.metric.format(m.cand),
                change: scale.format(m.ab.change),
                interval: interval(scale, m.ab.interval),
                aa_interval: interval(scale, m.aa.interval),
                p_worse: p_value(m.ab.p_worse),
                p_better: p_value(m.ab.p_better),
                verdict: m.verdict_label(),
                class: cell_class(m.verdict),
                reason: m.reason(),
            }
        })
        .collect();
    let figures = report
        .judged()
        .map(|(l, m)| FigureView {
            caption: format!("{} {} per round", l.level, m.metric.label()),
            svg: rounds_chart(l, m.metric).render(),
        })
        .collect();
    let mut notes = Vec::new();
    for level in &report.levels {
        if !level.not_measured.is_empty() {
            let names: Vec<&str> = level.not_measured.iter().map(|m| m.label()).collect();
            notes.push(format!(
                "{}: not measured by any run: {}.",
                level.level,
                names.join(", ")
            ));
        }
        if let Some(line) = level.saturation_line() {
            let runs: Vec<String> = level.saturated.iter().map(ToString::to_string).collect();
            notes.push(format!("{}: {line}: {}.", level.level, runs.join("; ")));
        }
        if let Some(line) = level.steal_line() {
            notes.push(format!("{}: {line}.", level.level));
        }
    }
    let subject = &report.subject;
    let rounds = report
        .levels
        .first()
        .map_or((0, 0), |l| (l.runs.ab.len(), l.runs.aa.len()));
    let levels: Vec<String> = report.levels.iter().map(|l| l.level.to_string()).collect();
    let view = GateView {
        title: "gatebench: performance gate".to_owned(),
        subtitle: format!(
            "base {} · candidate {} · {} A/B and {} A/A rounds · levels {}",
            subject.base,
            subject.cand,
            rounds.0,
            rounds.1,
            levels.join(", ")
        ),
        verdict: report.verdict.to_string(),
        banner_class: banner_class(report.verdict),
        summary: report.summary(),
        exit_code: report.exit_code(),
        probe: subject.probe.as_ref().map(ToString::to_string),
        rows,
        notes,
        figures,
        method: format!(
            "Base (A) and candidate (B) ran in rounds of four runs, A B B A, so that a drift of \
             the machine cancels out; every run measured each load level, straight to the \
             upstream and through the gateway with the same requests, and each level is judged \
             on its own. Added latency is the client's latency through the gateway minus \
             straight to the upstream; overhead is what the gateway reports in its header. Each \
             round gives the log-ratio of the geometric means of its two sides (for the error \
             rate, the difference of their means in points). The interval is a {confidence} \
             percentile bootstrap interval of the 20% trimmed mean of the rounds' changes ({} \
             resamples, seed {}); the p-values are exact one-sided Wilcoxon signed-rank tests \
             that the changes lie beyond the worse or the better edge of the tolerance band. A \
             metric is unchanged when its whole interval lies within its tolerance, and \
             inconclusive when the interval straddles an edge of it. It regressed only when its \
             whole interval is worse than the tolerance and than the A/A interval and p worse \
             is below {}; A/A rounds ran the base on both sides, so a change no larger than \
             what they moved is inconclusive instead. More errors than the base beyond that \
             noise is a regression whatever the speed.",
            report.settings.resamples,
            report.settings.seed,
            short((1.0 - report.settings.confidence.level()) / 2.0),
        ),
        confidence,
    };
    crate::html::render(NAME, view)
}

/// Both sides of every A/B and A/A round of one metric at one level, over the round number.
fn rounds_chart(level: &LevelGate, metric: GateMetric) -> Chart {
    let series = |rounds: &[Round], pick: fn((f64, f64)) -> f64| -> Vec<(f64, Option<f64>)> {
        rounds
            .iter()
            .enumerate()
            .map(|(i, round)| {
                let value = round.sides(metric).map(|s| metric.to_display(pick(s)));
                ((i + 1) as f64, value)
            })
            .collect()
    };
    Chart {
        title: format!("{} {} per round", level.level, metric.label()),
        x_label: "round".to_owned(),
        y_label: format!("{} ({})", metric.label(), metric.display_unit()),
        x_scale: XScale::Linear,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series: vec![
            Series::new("base", Style::dashed(0, 0), series(&level.runs.ab, |s| s.0)),
            Series::new(
                "candidate",
                Style::dashed(1, 0),
                series(&level.runs.ab, |s| s.1),
            ),
            Series::new(
                "A/A: runs 1, 4",
                Style::dashed(0, 2),
                series(&level.runs.aa, |s| s.0),
            ),
            Series::new(
                "A/A: runs 2, 3",
                Style::dashed(2, 2),
                series(&level.runs.aa, |s| s.1),
            ),
        ],
    }
}
