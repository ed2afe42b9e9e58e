//! Coordinated omission: the mock stalls for one second during an open-model run at 100 req/s.
//! Latency is measured from each arrival's intended start, so the stall shows in the tail, and
//! arrivals that found every user busy are counted as dropped instead of silently vanishing.

use std::sync::Arc;
use std::time::Duration;

use reports::model::Metric;
use scenarios::load::{Arrivals, Load};

use crate::common::paced::{quick_mock, stall_one_second};
use crate::common::{MACHINE, attack, stream_plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_stall_shows_in_p99_and_in_dropped_arrivals() {
    let _machine = MACHINE.read().await;
    let mock = Arc::new(quick_mock().await);
    let load = Load::Open {
        rate: 100.0,
        arrivals: Arrivals::Constant,
        max_users: 40,
        duration: Duration::from_secs(6),
    };
    let stall = {
        let mock = Arc::clone(&mock);
        tokio::spawn(async move { stall_one_second(&mock, Duration::from_secs(2)).await })
    };
    let run = attack("open", mock.url(), stream_plan(load, 3)).await;
    stall.await.expect("stall task");

    let totals = run.totals;
    let arrivals = totals.requests + totals.dropped_arrivals;
    assert!(
        (560..=610).contains(&arrivals),
        "6 s at 100/s: {arrivals} arrivals"
    );
    assert!(
        totals.dropped_arrivals >= 20,
        "dropped: {}",
        totals.dropped_arrivals
    );
    let latency = run.summary(Metric::Latency).expect("latency");
    assert!(
        latency.p99 >= 500_000,
        "p99 {} us must show the stall",
        latency.p99
    );
    assert!(
        latency.p50 < 100_000,
        "p50 {} us is the quick path",
        latency.p50
    );
}
