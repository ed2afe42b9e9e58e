//! stress: a rate sweep (a synchronous baseline, a throughput probe, then open-model rates up to
//! the probe's); the capacity is the highest rate that met every SLO. `--stages` gives the
//! closed-model steps instead, judged step by step.

use std::time::Duration;

use super::Scenario;
use crate::load::{Arrivals, Load, Sweep};
use crate::workload::{Mix, RequestKind};

pub fn scenario() -> Scenario {
    Scenario {
        capacity_by_stage: true,
        ..Scenario::new(
            "stress",
            "rate sweep: baseline, throughput probe (400 users), 8 rates up to it (126 s): the \
             highest rate within the SLOs",
            Load::Sweep(Sweep {
                baseline: Duration::from_secs(10),
                probe: Duration::from_secs(20),
                rates: 8,
                per_rate: Duration::from_secs(12),
                arrivals: Arrivals::Constant,
                users: 400,
            }),
            Mix::weighted(&[(RequestKind::Stream, 3), (RequestKind::Chat, 1)]),
            include_str!("../../slo/stress.toml"),
        )
    }
}
