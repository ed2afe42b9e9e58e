//! Coordinated omission: the mock stalls for one second once during an open-model run at
//! 100 req/s. The harness measures from each arrival's intended start, so p99 shows the stall
//! (>= 500 ms), and the arrivals that found every user busy are counted and printed.

use std::time::Duration;

use reports::model::Metric;

use crate::common::paced::{quick_mock, stall_one_second};
use crate::common::{MACHINE, arg, assert_ran, run_dirs, scratch, spawn, summary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_stall_shows_in_p99_and_dropped_arrivals_are_reported() {
    let _machine = MACHINE.read().await;
    let mock = quick_mock().await;
    let out = scratch("coordinated-omission");
    let run = spawn(&[
        "scenario",
        "streaming",
        "--target",
        mock.url(),
        "--rate",
        "100",
        "--max-users",
        "40",
        "--duration",
        "6s",
        "--out",
        arg(&out),
    ]);
    // Stall from about 2 s to 3 s into the run (the harness starts within a second).
    stall_one_second(&mock, Duration::from_millis(2_500)).await;
    let output = run.await.expect("joins");

    assert_ran(&output, "open-model run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = run_dirs(&out).into_iter().next().expect("one run");
    let run = summary(&dir);
    let latency = run.summary(Metric::Latency).expect("latency");
    assert!(
        latency.p99 >= 500_000,
        "p99 {} us hides the stall",
        latency.p99
    );
    assert!(run.totals.dropped_arrivals > 0, "no arrival was dropped");
    let arrivals = run.totals.requests + run.totals.dropped_arrivals;
    assert!(
        (560..=610).contains(&arrivals),
        "{arrivals} arrivals at 100/s for 6 s"
    );
    let shown = format!("dropped {}", run.totals.dropped_arrivals);
    assert!(
        stdout.contains(&shown),
        "summary must show `{shown}`:\n{stdout}"
    );
    assert!(stdout.contains("late sends"), "{stdout}");
}
