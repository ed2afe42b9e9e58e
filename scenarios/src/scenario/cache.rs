//! cache: a controlled share of repeated prompts, to measure hit ratio and hit vs miss latency.

use std::time::Duration;

use super::{Scenario, Upstream};
use crate::load::{Load, Stages};
use crate::workload::{Mix, PromptMix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        prompts: PromptMix::conversational().with_repeats(0.6, 30),
        upstream: Upstream::RealisticReliable,
        ..Scenario::new(
            "cache",
            "20 users for 60 s of chat where 60% of prompts repeat one of 30: cache hit ratio",
            Load::Closed {
                stages: Stages::constant(20, Duration::from_secs(60)),
                think_time: None,
            },
            Mix::only(RequestKind::Chat),
            include_str!("../../slo/cache.toml"),
        )
    }
}
