//! Gateway overhead measured from the client: what a proxy adds over sending the same requests
//! straight to its upstream (`harness overhead`).
//!
//! The harness sends the same requests (same bodies, same order) directly to the upstream and
//! through each proxy, in short rounds whose side order reverses every round, at several load
//! levels, and records per side and round the p50/p90/p99 of latency and TTFT and the
//! throughput ([`LevelRecord`]). [`evaluate`] pairs the sides round by round: an added time is
//! the proxy's percentile minus direct's in the same round, so a drift of the machine cancels;
//! over rounds it takes the 20% trimmed mean with a seeded bootstrap interval. Throughput
//! ratios come from per-round log-ratios. The highest open-model rate whose added p99 stays
//! within a bound is found per side.
//!
//! ```
//! use chrono::Utc;
//! use reports::model::ErrorCounts;
//! use reports::overhead::{
//!     LevelRecord, Load, OverheadSettings, OverheadSubject, Quantiles, RoundFigures, SideLabel,
//!     SideRecord, evaluate,
//! };
//!
//! let side = |p50: u64| SideRecord {
//!     rounds: (0..6)
//!         .map(|i| RoundFigures {
//!             e2e: Some(Quantiles { p50: p50 + i, p90: p50 + 20, p99: p50 + 50 }),
//!             ttft: None,
//!             ok: 1_000,
//!             failed: 0,
//!             secs: 1.0,
//!             steal_percent: None,
//!             cpu_secs: None,
//!         })
//!         .collect(),
//!     e2e: None,
//!     ttft: None,
//!     header_overhead: None,
//!     errors: ErrorCounts::default(),
//!     dropped: 0,
//! };
//! let level = LevelRecord {
//!     load: Load::Closed { concurrency: 1 },
//!     stream: false,
//!     direct: side(100),
//!     through: vec![side(220)],
//! };
//! let subject = OverheadSubject {
//!     direct: "http://127.0.0.1:9000".into(),
//!     sides: vec![SideLabel { name: "gateway".into(), url: "http://127.0.0.1:8080".into() }],
//! };
//! let settings = OverheadSettings {
//!     rounds: 6,
//!     round_secs: 2.0,
//!     seed: 42,
//!     model: "gpt-4o-mini".into(),
//!     api: "openai".into(),
//!     p99_bound_us: 1_000,
//! };
//! let report = evaluate(Utc::now(), subject, settings, vec![level])?;
//! let added = report.levels[0].sides[0].added_e2e.expect("six rounds");
//! assert_eq!(added.p50.estimate, 120.0);
//! # Ok::<(), reports::overhead::OverheadError>(())
//! ```

mod estimate;
mod html;
mod record;
mod report;
mod table;

pub use estimate::{Added, CONFIDENCE, Interval, RESAMPLES};
pub use html::render_overhead;
pub use record::{LevelRecord, Load, Quantiles, RoundFigures, SideRecord};
pub use report::{
    ComparedSide, LevelResult, OverheadReport, OverheadSettings, OverheadSubject, RateBound,
    SideLabel, SideResult, evaluate,
};

/// File name of the serialized [`OverheadReport`] in the run directory.
pub const OVERHEAD_JSON: &str = "overhead.json";
/// File name of the rendered report.
pub const OVERHEAD_HTML: &str = "overhead.html";
/// Version of the `overhead.json` schema.
pub const OVERHEAD_SCHEMA_VERSION: u32 = 1;

/// Measurements that cannot be judged; each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum OverheadError {
    #[error("no load level was measured")]
    NoLevels,
    #[error("level {level} has {got} proxy sides, the subject names {expected}")]
    Sides {
        level: String,
        expected: usize,
        got: usize,
    },
}
