//! spike: steady load, a sudden tenfold jump in users, then back.

use super::Scenario;
use crate::load::Load;
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario::new(
        "spike",
        "10 users, a sudden jump to 100 for 20 s, back to 10 (70 s)",
        Load::Closed {
            stages: "0s:10,20s:10,0s:100,20s:100,0s:10,30s:10"
                .parse()
                .expect("the spike stages are valid"),
            think_time: None,
        },
        Mix::weighted(&[(RequestKind::Stream, 3), (RequestKind::Chat, 1)]),
        include_str!("../../slo/spike.toml"),
    )
}
