//! streaming: SSE chat completions; the scenario for TTFT, ITL and TPOT.

use std::time::Duration;

use super::Scenario;
use crate::load::{Load, Stages};
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario::new(
        "streaming",
        "20 users for 60 s of streaming chat: TTFT, ITL and TPOT",
        Load::Closed {
            stages: Stages::constant(20, Duration::from_secs(60)),
            think_time: None,
        },
        Mix::only(RequestKind::Stream),
        include_str!("../../slo/streaming.toml"),
    )
}
