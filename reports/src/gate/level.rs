//! The load levels a gate measures each build at.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::overhead::Load;

/// One load level of a gate: how the requests arrive, and whether they are streamed.
///
/// A gate measures every build at a few levels, each judged on its own: one request at a time
/// shows the cost of a request on an idle gateway; an open-model rate near half the base's
/// capacity shows it under load, where queueing and contention appear.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateLevel {
    pub load: Load,
    pub stream: bool,
}

impl fmt::Display for GateLevel {
    /// `c=1 plain`, `250/s streamed`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.stream { "streamed" } else { "plain" };
        write!(f, "{} {mode}", self.load)
    }
}
