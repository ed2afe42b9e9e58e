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
            "users double in held steps, 50 -> 1600 (130 s): the highest step within the SLOs",
            Load::Closed {
                stages: "5s:50,15s:50,5s:100,15s:100,5s:200,15s:200,5s:400,15s:400,5s:800,15s:800,5s:1600,15s:1600,10s:0"
                    .parse()
                    .expect("the stress stages are valid"),
                think_time: None,
            },
            Mix::weighted(&[(RequestKind::Stream, 3), (RequestKind::Chat, 1)]),
            include_str!("../../slo/stress.toml"),
        )
    }
}
