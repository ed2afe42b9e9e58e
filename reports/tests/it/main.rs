//! The reports crate's integration tests, one binary: each module drives the public API (the
//! result model, SLOs, the run directory's writers, compare, the load gate and the HTML pages,
//! one of them in headless Chromium). `common` builds a small run with exact values and the
//! gate's options for a quiet machine.

mod common;

mod chromium;
mod compare;
mod gate_power;
mod gate_report;
mod model;
mod report_html;
mod slo;
mod writers;
