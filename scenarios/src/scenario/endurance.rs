//! endurance: moderate load for a long time; gateway memory, tasks and connections must not
//! grow after warm-up.

use std::time::Duration;

use super::{Scenario, Upstream};
use crate::load::{Load, Stages};
use crate::workload::{Mix, PromptMix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        prompts: PromptMix::conversational().with_repeats(0.2, 50),
        upstream: Upstream::RealisticReliable,
        sample_every: Duration::from_secs(10),
        ..Scenario::new(
            "endurance",
            "20 users for 30 min (--duration to change); fails if gateway RSS, tasks or connections grow after warm-up",
            Load::Closed {
                stages: Stages::constant(20, Duration::from_secs(30 * 60)),
                think_time: None,
            },
            Mix::weighted(&[(RequestKind::Stream, 1), (RequestKind::Chat, 1)]),
            include_str!("../../slo/endurance.toml"),
        )
    }
}
