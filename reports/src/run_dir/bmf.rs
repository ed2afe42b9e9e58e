//! Bencher Metric Format JSON, for dashboards that track runs over time.
//!
//! One benchmark per metric, named `<scenario>/<metric>`, with measures `p50`, `p95`, `p99` (in
//! milliseconds, or tokens/s); plus `<scenario>/run` with `throughput`, `goodput` (requests/s)
//! and `error_rate` (a fraction). See <https://bencher.dev/docs/reference/bencher-metric-format/>.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::model::{Metric, RunResult};

#[derive(Serialize)]
struct Measure {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

impl Measure {
    fn value(value: f64) -> Measure {
        Measure {
            value,
            lower_value: None,
            upper_value: None,
        }
    }
}

/// Writes the Bencher Metric Format document.
pub fn write_bmf(out: &mut impl Write, run: &RunResult) -> std::io::Result<()> {
    let mut doc: BTreeMap<String, BTreeMap<&str, Measure>> = BTreeMap::new();
    for metric in Metric::ALL {
        let Some(s) = run.summary(metric) else {
            continue;
        };
        let unit = metric.unit();
        let v = |recorded: u64| unit.to_display(recorded as f64);
        let measures = BTreeMap::from([
            (
                "p50",
                Measure {
                    value: v(s.p50),
                    lower_value: Some(v(s.min)),
                    upper_value: Some(v(s.max)),
                },
            ),
            ("p95", Measure::value(v(s.p95))),
            ("p99", Measure::value(v(s.p99))),
        ]);
        doc.insert(format!("{}/{}", run.scenario, metric.name()), measures);
    }
    let mut totals = BTreeMap::new();
    if let Some(rps) = run.throughput() {
        totals.insert("throughput", Measure::value(rps));
    }
    if let Some(rps) = run.goodput() {
        totals.insert("goodput", Measure::value(rps));
    }
    if let Some(rate) = run.totals.error_rate() {
        totals.insert("error_rate", Measure::value(rate));
    }
    if !totals.is_empty() {
        doc.insert(format!("{}/run", run.scenario), totals);
    }
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}
