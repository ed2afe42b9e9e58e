//! Result model, SLO evaluation, run comparison and the HTML, CSV and JSON writers.
//!
//! The harness records a [`model::RunResult`]; this crate judges it ([`slo`]), writes the run
//! directory ([`run_dir`]), renders the HTML pages ([`html`]) and compares runs ([`mod@compare`],
//! [`gate`]) with one set of statistics ([`stats`]).

pub mod compare;
pub mod cost;
mod error;
pub mod gate;
pub mod html;
pub mod merge;
pub mod model;
pub mod overhead;
pub mod redact;
pub mod run_dir;
pub mod slo;
pub mod stats;
pub mod synthetic;
mod text_table;
pub mod timeline;

pub use compare::{Comparison, compare};
pub use error::ReportError;
pub use model::RunResult;
