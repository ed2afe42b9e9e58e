//! chat: non-streaming conversations with a realistic mix of prompt and answer lengths.

use std::time::Duration;

use super::Scenario;
use crate::load::{Load, Stages};
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario::new(
        "chat",
        "20 users for 60 s of non-streaming chat with mixed prompt and answer lengths",
        Load::Closed {
            stages: Stages::constant(20, Duration::from_secs(60)),
            think_time: None,
        },
        Mix::only(RequestKind::Chat),
        include_str!("../../slo/chat.toml"),
    )
}
