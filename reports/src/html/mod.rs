//! `report.html` and `compare.html`: single self-contained files.
//!
//! Templates are rendered with minijinja; charts are inline SVG from [`svg`]. The pages carry a
//! Content-Security-Policy that forbids every load (`default-src 'none'`) except inline styles
//! and `data:` images, so nothing can reach the network when they are opened, and they use no
//! script, so they read the same with JavaScript off.

mod charts;
mod compare_page;
mod report_page;
pub mod svg;

use minijinja::Environment;
use serde::Serialize;

pub use compare_page::render_compare;
pub use report_page::render_report;

use crate::error::ReportError;
use crate::stats::Verdict;

/// A chart ready for the template, or the reason there is none.
#[derive(Serialize)]
struct Figure {
    caption: String,
    /// SVG markup produced by [`svg::Chart::render`] (trusted: every text in it is escaped).
    svg: Option<String>,
    note: Option<String>,
}

impl Figure {
    fn of(chart: svg::Chart) -> Figure {
        Figure::shaded(chart, &[])
    }

    /// A chart over time with `spans` (seconds) shaded: where the load generator was saturated.
    fn shaded(chart: svg::Chart, spans: &[(f64, f64)]) -> Figure {
        if chart.has_data() {
            Figure {
                caption: chart.title.clone(),
                svg: Some(chart.render_shaded(spans)),
                note: (!spans.is_empty()).then(|| {
                    "Shaded: seconds in which the load generator was saturated; figures there \
                     describe the client, not the target."
                        .to_owned()
                }),
            }
        } else {
            Figure {
                caption: chart.title.clone(),
                svg: None,
                note: Some("Nothing was recorded for this chart in this run.".to_owned()),
            }
        }
    }
}

/// The style of a verdict in a table cell: a claim is marked, the rest is plain.
pub(crate) fn cell_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "fail",
        Verdict::Improvement => "pass",
        Verdict::Unchanged | Verdict::Inconclusive => "",
    }
}

/// The style of the banner that gives a page's verdict.
pub(crate) fn banner_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "fail",
        Verdict::Improvement | Verdict::Unchanged => "pass",
        Verdict::Inconclusive => "none",
    }
}

/// A label and a formatted value.
#[derive(Serialize)]
struct Fact {
    label: String,
    value: String,
}

fn fact(label: impl Into<String>, value: impl Into<String>) -> Fact {
    Fact {
        label: label.into(),
        value: value.into(),
    }
}

/// Renders the page template `name` (every page extends `base.html`: one style, one CSP).
pub(crate) fn render(name: &'static str, context: impl Serialize) -> Result<String, ReportError> {
    let mut env = Environment::new();
    let templates = [
        ("base.html", include_str!("../../templates/base.html")),
        ("figures.html", include_str!("../../templates/figures.html")),
        ("report.html", include_str!("../../templates/report.html")),
        ("compare.html", include_str!("../../templates/compare.html")),
        ("gate.html", include_str!("../../templates/gate.html")),
        (
            "overhead.html",
            include_str!("../../templates/overhead.html"),
        ),
    ];
    for (template, source) in templates {
        env.add_template(template, source)
            .map_err(|source| ReportError::Render { name, source })?;
    }
    env.get_template(name)
        .and_then(|template| template.render(context))
        .map_err(|source| ReportError::Render { name, source })
}
