//! `harness overhead` end to end on loopback: a mock and the reference gateway started as
//! child processes, the same requests through the gateway and straight to the mock.
//!
//! A gateway told to spin 200 us per request (`[inject] busy_us = 200`, a `--variant`) must
//! show about 200 us more added p50 latency at concurrency 1 than the unmodified gateway
//! measured in the same rounds against the same direct path, and spend about 200 us more CPU
//! a request in its process. Bad flags are one line and exit 1.

use std::path::{Path, PathBuf};

use reports::overhead::{Interval, OVERHEAD_HTML, OVERHEAD_JSON, OverheadReport};

use crate::common::{
    MACHINE, Server, arg, groups_by_session, mock_profile, one_line_error, run, scratch,
};

/// Rounds per measurement: each pairs the plain and the busy gateway once.
///
/// With debug binaries the gateway's per-round p50 at concurrency 1 moves by about 100 us
/// between rounds, so the raise needs this many rounds of this length (about 25 s) for its
/// trimmed mean to land within 30 us or so of the truth. Sixteen rounds of 0.2 s per side came
/// out between 170 and 470 us on the same machine.
const ROUNDS: usize = 16;

/// Seconds per round, shared by the direct path, the gateway and the busy variant.
const ROUND_SECS: &str = "1.2";

/// What one `harness overhead --variant busy` measured.
struct Measured {
    /// The busy variant's p50 against the plain gateway's, paired round by round by the report.
    raise: Interval,
    /// What the gateways said they spent: the busy one's `x-gateway-overhead-us` p50 minus the
    /// plain one's.
    header_raise: i64,
    /// The direct path's p50: how fast the machine was during the measurement.
    direct_p50: f64,
    /// The busy gateway's CPU microseconds per request minus the plain one's, read from their
    /// processes.
    cpu_raise: f64,
}

/// One `harness overhead --variant busy`, checked: the busy variant and the plain gateway ran
/// in the same rounds against the same direct path, so the report's pairing of the two is the
/// raise in added p50 with the machine's drift paired out.
fn measure(out: &Path, busy: &Path) -> Measured {
    let rounds = ROUNDS.to_string();
    let output = run(&[
        "overhead",
        "--concurrency",
        "1",
        "--stream",
        "off",
        "--rounds",
        &rounds,
        "--round-secs",
        ROUND_SECS,
        "--variant",
        arg(busy),
        "--out",
        arg(out),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("added p50"), "{stdout}");
    assert!(
        stdout.contains("c=1 plain: gateway+busy against gateway: p50 +"),
        "the paired difference is printed: {stdout}"
    );
    assert!(
        stderr.contains(&format!("round {ROUNDS}/{ROUNDS}")),
        "progress per round: {stderr}"
    );
    let dir = run_dir(out);
    let html = std::fs::read_to_string(dir.join(OVERHEAD_HTML)).expect("overhead.html");
    assert!(
        html.contains("gateway+busy against gateway: p50 +"),
        "{html}"
    );
    assert!(
        dir.join("gateway-busy.toml").is_file(),
        "the variant's config"
    );
    let report = OverheadReport::read(&dir.join(OVERHEAD_JSON)).expect("overhead.json reads");
    let level = report.levels.into_iter().next().expect("one level");
    assert_eq!(level.direct.record.errors.total(), 0, "{stdout}");
    let names: Vec<&str> = level.sides.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gateway", "gateway+busy"], "{stdout}");
    for side in &level.sides {
        let record = &side.side.record;
        assert_eq!(record.errors.total(), 0, "{stdout}");
        assert_eq!(record.rounds.len(), ROUNDS);
        assert!(
            record.header_overhead.is_some(),
            "the reference gateway sends x-gateway-overhead-us"
        );
    }
    let cpu = |record: &reports::overhead::SideRecord| {
        record
            .cpu_per_request_us()
            .filter(|us| *us > 0.0)
            .unwrap_or_else(|| panic!("the processes' CPU per request is read: {stdout}"))
    };
    cpu(&level.direct.record);
    assert!(
        stdout.contains("cpu us/req side/direct"),
        "the table has the CPU column: {stdout}"
    );
    assert_eq!(level.sides[0].against_first, None, "{stdout}");
    let header_p50 = |index: usize| {
        level.sides[index]
            .side
            .record
            .header_overhead
            .as_ref()
            .expect("checked above")
            .p50 as i64
    };
    Measured {
        raise: level.sides[1].against_first.expect("paired rounds").p50,
        header_raise: header_p50(1) - header_p50(0),
        direct_p50: level.direct.e2e_p50.map_or(f64::NAN, |p50| p50.estimate),
        cpu_raise: cpu(&level.sides[1].side.record) - cpu(&level.sides[0].side.record),
    }
}

/// Attempts before the test gives up. Beyond a burst of load from elsewhere, this machine has
/// slow spells of minutes (the direct path's p50 at 800 us instead of 630) in which a 200 us
/// spin costs the client 300 to 460 us while the gateway's own header still says about 210 us
/// more: the extra is the machine's, outside the gateway, and what the client really waits.
/// Attempts half a minute apart let a spell pass; the failure message shows all three figures.
const ATTEMPTS: usize = 5;

#[test]
fn a_200us_spin_in_the_gateway_adds_200us_at_p50() {
    let _machine = MACHINE.blocking_write();
    let dir = scratch("busy");
    let busy = dir.join("busy.toml");
    std::fs::write(&busy, "[inject]\nbusy_us = 200\n").expect("overlay written");
    let mut seen = Vec::new();
    for attempt in 0..ATTEMPTS {
        let Measured {
            raise,
            header_raise,
            direct_p50,
            cpu_raise,
        } = measure(&dir.join(attempt.to_string()), &busy);
        let line = format!(
            "attempt {attempt}: raise {:+.0} [{:.0}, {:.0}] us, header raise {header_raise:+} us, \
             direct p50 {direct_p50:.0} us, CPU per request raise {cpu_raise:+.0} us",
            raise.estimate, raise.low, raise.high
        );
        eprintln!("{line}");
        // The spin is CPU time too: the gateway's process spends it on every request.
        let within = |us: f64| (150.0..=250.0).contains(&us);
        if within(raise.estimate) && within(cpu_raise) {
            return;
        }
        seen.push(line);
    }
    panic!(
        "no attempt raised the added p50 and the CPU per request by 200 us ± 25%:\n{}",
        seen.join("\n")
    );
}

/// The run directory `overhead-<UTC time>` the command wrote into `out`.
fn run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .expect("out dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("overhead-"))
        })
        .expect("a run directory overhead-<UTC time>")
}

/// A gateway someone else runs, from another terminal, measured with `--gateway-pid`: its CPU
/// per request is read from its process, and direct's from `--direct-pid`'s, or not at all
/// without it; where the kernel groups by session, the gateway's own session is noted.
#[test]
fn an_external_gateway_is_measured_with_its_cpu() {
    let _machine = MACHINE.blocking_read();
    let dir = scratch("overhead-external");
    let mock = Server::mock(&mock_profile(&dir));
    let gateway = Server::in_own_session(&["gateway", "--upstream", &mock.url, "--port", "0"]);
    let pid = gateway.pid().to_string();
    let mock_pid = mock.pid().to_string();
    for (index, direct_pid) in [None, Some(mock_pid.as_str())].into_iter().enumerate() {
        let out = dir.join(index.to_string());
        let mut args = vec![
            "overhead",
            "--target",
            &gateway.url,
            "--direct",
            &mock.url,
            "--gateway-pid",
            &pid,
            "--concurrency",
            "1",
            "--stream",
            "off",
            "--rounds",
            "2",
            "--round-secs",
            "0.6",
            "--out",
            arg(&out),
        ];
        args.extend(
            direct_pid
                .map(|pid| ["--direct-pid", pid])
                .into_iter()
                .flatten(),
        );
        let output = run(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        let report =
            OverheadReport::read(&run_dir(&out).join(OVERHEAD_JSON)).expect("overhead.json reads");
        let level = &report.levels[0];
        let gateway_cpu = level.sides[0].side.record.cpu_per_request_us();
        assert!(gateway_cpu.is_some_and(|us| us > 0.0), "{stdout}");
        let direct_cpu = level.direct.record.cpu_per_request_us();
        assert_eq!(direct_cpu.is_some(), direct_pid.is_some(), "{stdout}");
        assert_eq!(
            stdout.contains("/-  "),
            direct_pid.is_none(),
            "direct's CPU is a dash unless read: {stdout}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let note = format!("note: process {pid} runs in another session");
        assert_eq!(stderr.contains(&note), groups_by_session(), "{stderr}");
    }
}

#[test]
fn bad_flags_are_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 8] = [
        (&["overhead", "--concurrency", "0"], "--concurrency"),
        (&["overhead", "--rounds", "1"], "--rounds"),
        (
            &["overhead", "--round-secs", "0.1", "--bare"],
            "--round-secs",
        ),
        (&["overhead", "--target", "http://127.0.0.1:9"], "--direct"),
        (&["overhead", "--gateway-pid", "1"], "--target"),
        (&["overhead", "--direct-pid", "1"], "--direct"),
        (
            &[
                "overhead",
                "--target",
                "http://127.0.0.1:9",
                "--direct",
                "http://127.0.0.1:9",
                "--gateway-pid",
                "4294967295",
            ],
            "--gateway-pid",
        ),
        (
            &[
                "overhead",
                "--variant",
                "a/busy.toml",
                "--variant",
                "b/busy.toml",
            ],
            "--variant",
        ),
    ];
    for (args, flag) in cases {
        let line = one_line_error(&run(args));
        assert!(line.contains(flag), "{args:?}: {line}");
    }
}
