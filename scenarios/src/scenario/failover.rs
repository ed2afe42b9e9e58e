//! failover: the primary provider turns to 500s a third of the way in and recovers at two
//! thirds; the breaker should open, the fallback serve, and the primary come back.

use std::time::Duration;

use super::{Scenario, TimedChange, Upstream, UpstreamChange};
use crate::load::{Load, Stages};
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        upstream: Upstream::RealisticReliable,
        changes: vec![
            TimedChange {
                at: 1.0 / 3.0,
                change: UpstreamChange::PrimaryFails { status: 500 },
            },
            TimedChange {
                at: 2.0 / 3.0,
                change: UpstreamChange::PrimaryRecovers,
            },
        ],
        ..Scenario::new(
            "failover",
            "20 users for 60 s; the primary fails with 500s from 1/3 to 2/3 of the run",
            Load::Closed {
                stages: Stages::constant(20, Duration::from_secs(60)),
                think_time: None,
            },
            Mix::weighted(&[(RequestKind::Stream, 1), (RequestKind::Chat, 1)]),
            include_str!("../../slo/failover.toml"),
        )
    }
}
