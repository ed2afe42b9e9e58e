//! `harness gate` end to end: real gateway processes against a real mock, real scenario runs.
//!
//! An A/A gate (the embedded gateway on both sides) must never report a regression, must write
//! a `gate.json` that reads back with every round, and must exit with its verdict's code.
//! Too few rounds for the confidence is refused before anything runs.

use std::path::PathBuf;
use std::process::{Command, Output};

use reports::gate::{GATE_HTML, GATE_JSON, GateReport, Verdict};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("harness runs")
}

/// A fresh scratch directory unique to this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("gate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn identical_gateways_are_never_a_regression() {
    let out = scratch("aa");
    let out_arg = out.to_str().expect("utf-8 path");
    // Three rounds is the fewest any confidence allows; 0.6 is a level at which three suffice.
    let output = harness(&[
        "gate",
        "--base",
        "embedded",
        "--cand",
        "embedded",
        "--scenario",
        "smoke",
        "--rounds",
        "3",
        "--confidence",
        "0.6",
        "--duration",
        "1s",
        "--out",
        out_arg,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    assert!(
        matches!(code, Some(0 | 4)),
        "exit {code:?}\nstdout: {stdout}\nstderr: {stderr}"
    );

    let json = std::fs::read_to_string(out.join(GATE_JSON)).expect("gate.json written");
    let report: GateReport = serde_json::from_str(&json).expect("gate.json parses");
    assert_ne!(report.verdict, Verdict::Regression, "{stdout}");
    assert_eq!(Some(i32::from(report.exit_code())), code);
    assert_eq!((report.runs.ab.len(), report.runs.aa.len()), (3, 3));
    assert_eq!(report.subject.scenario, "smoke");
    assert!(
        report.metrics.iter().any(|m| m.base > 0.0 && m.cand > 0.0),
        "no metric measured: {json}"
    );
    assert!(out.join(GATE_HTML).is_file());
    // One run directory per run: 3 rounds x 2 kinds x 4 runs.
    let runs = std::fs::read_dir(out.join("runs"))
        .expect("runs dir")
        .count();
    assert_eq!(runs, 24);
    assert!(stdout.contains("throughput"), "verdict table: {stdout}");
}

#[test]
fn too_few_rounds_are_refused_before_running() {
    let out = scratch("few");
    let output = harness(&[
        "gate",
        "--base",
        "embedded",
        "--cand",
        "embedded",
        "--scenario",
        "smoke",
        "--rounds",
        "2",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--rounds 2 is too few"), "{stderr}");
    assert!(!out.exists(), "nothing may run or be written");
}

#[test]
fn a_missing_gateway_binary_is_one_line() {
    let output = harness(&[
        "gate",
        "--base",
        "/nonexistent/gateway",
        "--cand",
        "embedded",
        "--scenario",
        "smoke",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/gateway"), "{stderr}");
}
