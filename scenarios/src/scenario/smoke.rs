//! smoke: two users for ten seconds; the CI gate that the whole path works.

use std::time::Duration;

use super::{Scenario, Upstream};
use crate::load::{Load, Stages};
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        upstream: Upstream::RealisticReliable,
        ..Scenario::new(
            "smoke",
            "2 users for 10 s, streaming and plain chat: the end-to-end check CI runs",
            Load::Closed {
                stages: Stages::constant(2, Duration::from_secs(10)),
                think_time: None,
            },
            Mix::weighted(&[(RequestKind::Stream, 3), (RequestKind::Chat, 1)]),
            include_str!("../../slo/smoke.toml"),
        )
    }
}
