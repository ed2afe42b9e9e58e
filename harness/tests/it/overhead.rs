//! `harness overhead` end to end on loopback: a mock and the reference gateway started as
//! child processes, the same requests through the gateway and straight to the mock.
//!
//! A gateway told to spin 200 us per request (`[inject] busy_us = 200`) must show about 200 us
//! more added p50 latency at concurrency 1 than the unmodified gateway measured in the same
//! attempt, while the direct path of both measurements agrees within its interval. Bad flags
//! are one line and exit 1.

use std::path::{Path, PathBuf};

use reports::overhead::{Interval, OVERHEAD_HTML, OVERHEAD_JSON, OverheadReport};

use crate::common::{MACHINE, arg, one_line_error, run, scratch};

/// Added p50 at concurrency 1 (plain requests) and direct's own p50 interval, of one
/// measurement of the reference gateway configured with `overlay`.
fn measure(out: &Path, overlay: Option<&Path>) -> (Interval, Interval) {
    let mut args = vec![
        "overhead",
        "--concurrency",
        "1",
        "--stream",
        "off",
        "--rounds",
        "4",
        "--round-secs",
        "1",
        "--out",
        arg(out),
    ];
    if let Some(overlay) = overlay {
        args.extend(["--gateway-config", arg(overlay)]);
    }
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("added p50"), "{stdout}");
    assert!(stderr.contains("round 4/4"), "progress per round: {stderr}");
    let dir = std::fs::read_dir(out)
        .expect("out dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("overhead-"))
        })
        .expect("a run directory overhead-<UTC time>");
    assert!(dir.join(OVERHEAD_HTML).is_file());
    let report = OverheadReport::read(&dir.join(OVERHEAD_JSON)).expect("overhead.json reads");
    let _ = std::fs::remove_dir_all(out);
    let level = &report.levels[0];
    let gateway = &level.sides[0];
    assert_eq!(gateway.name, "gateway");
    assert_eq!(gateway.side.record.errors.total(), 0, "{stdout}");
    assert_eq!(level.direct.record.errors.total(), 0, "{stdout}");
    assert!(
        gateway.side.record.header_overhead.is_some(),
        "the reference gateway sends x-gateway-overhead-us"
    );
    (
        gateway.added_e2e.expect("four rounds").p50,
        level.direct.e2e_p50.expect("four rounds"),
    )
}

/// Attempts before the test gives up: a burst of load from elsewhere on a shared machine can
/// move one measurement, which is the machine's noise, not the measurement's error.
const ATTEMPTS: usize = 5;

#[test]
fn a_200us_spin_in_the_gateway_adds_200us_at_p50() {
    let _machine = MACHINE.blocking_write();
    let dir = scratch("busy");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let busy = dir.join("busy.toml");
    std::fs::write(&busy, "[inject]\nbusy_us = 200\n").expect("overlay written");
    let mut seen = Vec::new();
    for attempt in 0..ATTEMPTS {
        // Plain, busy, busy, plain: a drift of the machine during the attempt cancels out of
        // the mean raise, as it does between the sides within one measurement.
        let mut runs = Vec::new();
        for (slot, overlay) in [None, Some(&busy), Some(&busy), None]
            .into_iter()
            .enumerate()
        {
            let out = dir.join(format!("{attempt}-{slot}"));
            runs.push(measure(&out, overlay.map(PathBuf::as_path)));
        }
        let raise =
            (runs[1].0.estimate + runs[2].0.estimate - runs[0].0.estimate - runs[3].0.estimate)
                / 2.0;
        // Each busy run against the plain run next to it.
        let direct_agrees = runs[0].1.overlaps(&runs[1].1) && runs[2].1.overlaps(&runs[3].1);
        eprintln!("attempt {attempt}: raise {raise:.0} us, direct agrees: {direct_agrees}");
        for (added, direct) in &runs {
            eprintln!("  added p50 {added:?}, direct p50 {direct:?}");
        }
        if (150.0..=250.0).contains(&raise) && direct_agrees {
            return;
        }
        seen.push((raise, direct_agrees));
    }
    panic!(
        "no attempt raised the added p50 by 200 us ± 25% with direct p50 intervals that agree: \
         (raise in us, direct agrees): {seen:?}"
    );
}

#[test]
fn bad_flags_are_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (&["overhead", "--concurrency", "0"], "--concurrency"),
        (&["overhead", "--rounds", "1"], "--rounds"),
        (
            &["overhead", "--round-secs", "0.1", "--bare"],
            "--round-secs",
        ),
        (&["overhead", "--target", "http://127.0.0.1:9"], "--direct"),
    ];
    for (args, flag) in cases {
        let line = one_line_error(&run(args));
        assert!(line.contains(flag), "{args:?}: {line}");
    }
}
