//! `harness gate` end to end: real gateway processes against a real mock, real load.
//!
//! An A/A gate (the embedded gateway on both sides) must never report a regression, must write
//! a `gate.json` that reads back with every round of every level, and must exit with its
//! verdict's code. A candidate that answers 503 to some requests is a regression whatever its
//! speed. Command templates start any gateway as a process group and stop all of it. Bad input
//! is refused before anything runs.

use std::path::Path;
use std::process::Output;

use mock_providers::{MockConfig, MockServer, Profile};
use reports::gate::{GATE_HTML, GATE_JSON, GateMetric, GateReport, Verdict};

use crate::common::{MACHINE, arg, one_line_error, run, scratch};

/// The default confidence (95%) with the fewest rounds it allows (6), each level measured
/// briefly: a regression needs all six rounds to agree. With fewer rounds at a lower
/// confidence, an A/A gate of some twenty verdicts raised false alarms on a busy machine.
const SHORT: [&str; 6] = [
    "--rounds",
    "6",
    "--confidence",
    "0.95",
    "--duration",
    "200ms",
];

fn report(out: &Path, output: &Output) -> GateReport {
    let json = std::fs::read_to_string(out.join(GATE_JSON)).unwrap_or_else(|e| {
        panic!(
            "gate.json not written ({e})\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(&json).expect("gate.json parses")
}

#[test]
fn identical_gateways_are_never_a_regression() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("aa");
    let mut args = vec!["gate", "--base", "embedded", "--cand", "embedded"];
    args.extend(SHORT);
    args.extend(["--out", arg(&out)]);
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let code = output.status.code();
    let report = report(&out, &output);
    assert!(matches!(code, Some(0 | 4)), "exit {code:?}\n{stdout}");
    assert_ne!(report.verdict, Verdict::Regression, "{stdout}");
    assert_eq!(Some(i32::from(report.exit_code())), code);

    // The probe ran on the base and set the open levels' rate to half its capacity.
    let probe = report.subject.probe.expect("a capacity probe");
    assert!(probe.capacity > 0.0 && (probe.rate - probe.capacity / 2.0).abs() <= 1.0);
    let levels: Vec<String> = report.levels.iter().map(|l| l.level.to_string()).collect();
    let rate = reports::model::short(probe.rate);
    assert_eq!(
        levels,
        [
            "c=1 plain".to_owned(),
            format!("{rate}/s plain"),
            format!("{rate}/s streamed")
        ]
    );
    for level in &report.levels {
        assert_eq!((level.runs.ab.len(), level.runs.aa.len()), (6, 6));
        let judged: Vec<GateMetric> = level.metrics.iter().map(|m| m.metric).collect();
        // Measured from the client, and from the reference gateway's own header.
        for metric in [
            GateMetric::Throughput,
            GateMetric::ErrorRate,
            GateMetric::AddedP50,
            GateMetric::AddedP99,
            GateMetric::OverheadP50,
        ] {
            assert!(judged.contains(&metric), "{}: {judged:?}", level.level);
        }
        assert_eq!(
            judged.contains(&GateMetric::TtftP50),
            level.level.stream,
            "{}",
            level.level
        );
    }
    assert!(out.join(GATE_HTML).is_file());
    // One log per gateway started: the probe and 6 rounds x 2 kinds x 4 runs.
    let logs = std::fs::read_dir(out.join("logs"))
        .expect("logs dir")
        .count();
    assert_eq!(logs, 1 + 48 + 1, "gateways and the mock");
    assert!(stdout.contains("added p50"), "verdict table: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_answers_503_to_some_requests_is_a_regression() {
    let _machine = MACHINE.read().await;
    let mut profile = Profile::fast();
    profile.faults.http_503 = 0.2;
    let faulty = MockServer::start(MockConfig::new(profile))
        .await
        .expect("faulty mock");
    let out = scratch("errors");
    // The candidate's only provider (the name the models route to) fails a fifth of its
    // requests, and it does not retry.
    let overlay = out.join("faulty.toml");
    std::fs::write(
        &overlay,
        format!(
            "[[providers]]\nname = \"mock\"\nkind = \"openai\"\nbase_url = \"{}\"\n\n\
             [routing]\nmax_attempts = 1\n",
            faulty.url()
        ),
    )
    .expect("overlay");
    let (overlay_arg, out_arg) = (arg(&overlay).to_owned(), arg(&out).to_owned());
    let output = tokio::task::spawn_blocking(move || {
        let mut args = vec!["gate", "--base", "embedded", "--cand", "embedded"];
        args.extend(["--cand-config", &overlay_arg, "--levels", "c1"]);
        args.extend(SHORT);
        args.extend(["--out", &out_arg]);
        run(&args)
    })
    .await
    .expect("gate ran");
    faulty.shutdown().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = report(&out, &output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert_eq!(report.verdict, Verdict::Regression);
    let errors = report.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == GateMetric::ErrorRate)
        .expect("errors judged");
    assert_eq!(errors.verdict, Verdict::Regression, "{stdout}");
    assert!(errors.base == 0.0 && errors.cand > 0.1, "{errors:?}");
    assert!(stdout.contains("c=1 plain errors:"), "{stdout}");
}

#[test]
fn command_templates_start_any_gateway_and_stop_its_whole_process_group() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("cmd");
    let pids = out.join("pids");
    let upstreams = out.join("upstreams");
    // `sh` starts the server in the background and waits: stopping only the shell would leave
    // the server running.
    let template = format!(
        "echo {{upstream}} >> '{}'; '{}' mock --profile fast --port {{port}} & echo $! >> '{}'; wait",
        arg(&upstreams),
        env!("CARGO_BIN_EXE_harness"),
        arg(&pids)
    );
    let mut args = vec!["gate", "--base-cmd", &template, "--cand-cmd", &template];
    args.extend(["--levels", "c1"]);
    args.extend(SHORT);
    args.extend(["--out", arg(&out)]);
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = report(&out, &output);
    assert!(matches!(output.status.code(), Some(0 | 4)), "{stdout}");
    assert!(
        report
            .subject
            .base
            .contains("mock --profile fast --port {port}")
    );
    // The mock sends no overhead header: the gate judges the client's figures alone.
    let level = &report.levels[0];
    assert!(level.not_measured.contains(&GateMetric::OverheadP50));
    assert!(
        level
            .metrics
            .iter()
            .any(|m| m.metric == GateMetric::AddedP50)
    );

    let started: Vec<i32> = std::fs::read_to_string(&pids)
        .expect("pid file")
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    assert_eq!(started.len(), 48, "one server per run");
    for pid in started {
        // SAFETY: signal 0 only asks whether the process exists.
        #[allow(unsafe_code)]
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "server {pid} outlived its run");
    }
    let upstream = std::fs::read_to_string(&upstreams).expect("upstream file");
    assert!(
        upstream.lines().all(|l| l.starts_with("http://127.0.0.1:")),
        "{upstream}"
    );
}

#[test]
fn a_command_that_never_listens_is_one_line_naming_it() {
    let out = scratch("dead");
    let output = run(&[
        "gate",
        "--base",
        "embedded",
        "--cand-cmd",
        "echo no such gateway; exit 7 # {port}",
        "--levels",
        "c1",
        "--rounds",
        "3",
        "--confidence",
        "0.6",
        "--duration",
        "100ms",
        "--out",
        arg(&out),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("`echo no such gateway; exit 7 # ")
            && last.contains("exited (exit status: 7) before listening on 127.0.0.1:")
            && last.contains("its last output: no such gateway"),
        "{stderr}"
    );
    assert!(!out.join(GATE_JSON).exists());
}

/// The one line of a gate refused before anything ran.
fn refused(args: &[&str]) -> String {
    one_line_error(&run(args))
}

#[test]
fn bad_flags_are_refused_before_running() {
    let out = scratch("few");
    let both = ["gate", "--base", "embedded", "--cand", "embedded"];
    let stderr = refused(&[&both[..], &["--rounds", "2", "--out", arg(&out)]].concat());
    assert!(stderr.contains("--rounds 2 is too few"), "{stderr}");
    assert!(!out.join("logs").exists(), "nothing may run");

    let stderr = refused(&[
        "gate",
        "--base",
        "embedded",
        "--cand-cmd",
        "gateway --port 8080",
    ]);
    assert!(stderr.contains("has no {port}"), "{stderr}");

    let stderr = refused(&[&both[..], &["--rate", "0"]].concat());
    assert!(stderr.contains("--rate: 0 is not a rate"), "{stderr}");

    for (flag, says) in [
        ("added_p99=2", "tolerance `2` is not a fraction"),
        ("latency=5%", "unknown metric `latency`"),
        ("throughput", "is not METRIC=TOLERANCE"),
    ] {
        let stderr = refused(&[&both[..], &["--tolerance", flag]].concat());
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}

#[test]
fn a_missing_gateway_binary_is_one_line() {
    let out = scratch("missing");
    let stderr = refused(&[
        "gate",
        "--base",
        "/nonexistent/gateway",
        "--cand",
        "embedded",
        "--out",
        arg(&out),
    ]);
    assert!(
        stderr.starts_with("error: --base: `/nonexistent/gateway` is neither a gateway executable"),
        "{stderr}"
    );
    assert!(!out.join("logs").exists(), "nothing may run");
}
