//! The statistics behind every verdict on two builds: `harness compare` ([`mod@crate::compare`])
//! and `harness gate` ([`crate::gate`]) both estimate a change with a seeded percentile
//! bootstrap interval of their own estimator and judge it with one equivalence rule
//! ([`Verdict::judge`]), so the two commands cannot disagree about what an interval means.

mod bootstrap;
mod centre;
mod scale;
mod signed_rank;
mod verdict;

pub use bootstrap::Resampling;
pub(crate) use bootstrap::bootstrap;
pub(crate) use centre::{mean, trimmed_mean};
pub use scale::Scale;
pub(crate) use scale::percent;
pub(crate) use signed_rank::signed_rank_above_zero;
pub(crate) use verdict::clears;
pub use verdict::{Direction, Verdict};
