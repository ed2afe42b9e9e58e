//! mixed: the traffic of a shared gateway, every route it serves at once, with some repeated
//! prompts.

use std::time::Duration;

use super::Scenario;
use crate::load::{Load, Stages};
use crate::workload::{Mix, PromptMix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        prompts: PromptMix::conversational().with_repeats(0.15, 20),
        ..Scenario::new(
            "mixed",
            "30 users for 60 s: streaming, chat, embeddings and models, 15% repeated prompts",
            Load::Closed {
                stages: Stages::constant(30, Duration::from_secs(60)),
                think_time: None,
            },
            Mix::weighted(&[
                (RequestKind::Stream, 45),
                (RequestKind::Chat, 35),
                (RequestKind::Embeddings, 10),
                (RequestKind::Models, 10),
            ]),
            include_str!("../../slo/mixed.toml"),
        )
    }
}
