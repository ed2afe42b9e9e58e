//! The websocket scenario, briefly: against the embedded stack (its long streams), and against
//! a gateway given with `--target`; the console summary and `summary.json` say what it measured.

use std::path::Path;

use reports::model::Metric;

use crate::common::{
    MACHINE, Server, arg, assert_ran, mock_profile, run, run_dirs, scratch, summary,
};

/// Runs the websocket scenario with `extra` arguments into `out`; its stdout and its result.
fn run_websocket(out: &Path, extra: &[&str]) -> (String, reports::RunResult) {
    let args = [&["scenario", "websocket", "--out", arg(out)][..], extra].concat();
    let output = run(&args);
    assert_ran(&output, "websocket");
    let dir = run_dirs(out).into_iter().next().expect("one run");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        summary(&dir),
    )
}

/// Every request complete, with a TTFT and ITL gaps, and one connect time per connection.
fn assert_measured(run: &reports::RunResult, connections: u64) {
    let totals = &run.totals;
    assert!(totals.requests >= connections, "{totals:?}");
    assert_eq!(
        totals.ok, totals.requests,
        "every stream complete: {totals:?}"
    );
    assert!(totals.output_tokens > 0);
    let ttft = run.summary(Metric::Ttft).expect("TTFT recorded");
    assert_eq!(ttft.count, totals.requests);
    assert!(ttft.min > 0, "{ttft:?}");
    assert!(run.summary(Metric::Itl).is_some_and(|itl| itl.count > 0));
    let connect = run.summary(Metric::Connect).expect("connect time recorded");
    assert_eq!(connect.count, connections, "one connect per connection");
    assert!(connect.min > 0, "{connect:?}");
    assert_eq!(run.peak_users(), connections);
}

#[test]
fn the_embedded_stack_streams_over_held_connections() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("websocket-embedded");
    let (stdout, run) = run_websocket(&out, &["--duration", "3s", "--users", "10"]);
    assert_measured(&run, 10);
    // The embedded upstream's answers last 5 to 10 s.
    let latency = run.summary(Metric::Latency).expect("latency");
    assert!(latency.min >= 4_000_000, "{latency:?}");
    assert!(stdout.contains("connect time"), "{stdout}");
    assert!(stdout.contains("TTFT"), "{stdout}");
}

#[test]
fn a_target_gateway_is_driven_the_same_way() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("websocket-target");
    let mock = Server::mock(&mock_profile(&out));
    let gateway = Server::gateway(&mock.url);
    let (_, run) = run_websocket(
        &out,
        &["--target", &gateway.url, "--duration", "2s", "--users", "4"],
    );
    assert_measured(&run, 4);
}
