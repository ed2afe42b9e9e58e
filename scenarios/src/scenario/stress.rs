//! stress: users ramp and hold in doubling steps until an SLO breaks; the report names the
//! highest step that still met every SLO.

use super::Scenario;
use crate::load::Load;
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        capacity_by_stage: true,
        ..Scenario::new(
            "stress",
            "ramp 25 -> 50 -> 100 -> 200 -> 400 users in held steps (170 s): highest step within SLOs",
            Load::Closed {
                stages: "10s:25,20s:25,10s:50,20s:50,10s:100,20s:100,10s:200,20s:200,10s:400,20s:400,10s:0"
                    .parse()
                    .expect("the stress stages are valid"),
                think_time: None,
            },
            Mix::weighted(&[(RequestKind::Stream, 3), (RequestKind::Chat, 1)]),
            include_str!("../../slo/stress.toml"),
        )
    }
}
