//! Usage errors: one clear line on stderr and exit code 1, never a panic; an impossible SLO
//! makes a run exit 2.

mod common;

use std::process::{Command, Output};

use common::{run as harness, scratch};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_one_line_error(output: &Output, needle: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {text}");
    assert!(lines[0].starts_with("error: "), "{text}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn unknown_flag_is_one_line_and_exit_1() {
    let output = harness(&["scenario", "smoke", "--userz", "3"]);
    assert_one_line_error(&output, "--userz");
}

#[test]
fn bad_flag_values_name_the_flag() {
    assert_one_line_error(
        &harness(&["scenario", "smoke", "--stages", "30s100"]),
        "30s100",
    );
    assert_one_line_error(
        &harness(&["scenario", "smoke", "--duration", "soon"]),
        "soon",
    );
    assert_one_line_error(
        &harness(&["scenario", "smoke", "--max-users", "5"]),
        "max_users",
    );
    assert_one_line_error(&harness(&["scenario", "nosuch"]), "unknown scenario");
}

#[test]
fn unreachable_target_is_one_line_and_exit_1() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = harness(&["scenario", "smoke", "--target", &url, "--duration", "2s"]);
    assert_one_line_error(&output, "cannot reach target");
}

#[test]
fn malformed_slo_file_names_the_line() {
    let dir = scratch("slo");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p77\"\nop = \"<\"\nvalue = \"1s\"\n",
    )
    .expect("write");
    let output = harness(&[
        "scenario",
        "smoke",
        "--slo",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_one_line_error(&output, "line 3");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_config_file_names_the_key() {
    let dir = scratch("config");
    let path = dir.join("run.toml");
    std::fs::write(&path, "users = 2\nuserz = 3\n").expect("write");
    let output = harness(&[
        "scenario",
        "smoke",
        "--config",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_one_line_error(&output, "userz");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn impossible_slo_exits_2_and_writes_the_run() {
    let dir = scratch("impossible");
    let slo = dir.join("impossible.toml");
    std::fs::write(
        &slo,
        "[[slo]]\nmetric = \"latency\"\nstat = \"p50\"\nop = \"<\"\nvalue = \"1us\"\n",
    )
    .expect("write");
    let out = dir.join("runs");
    // Prices come from the config file only; the report prices the model that ran.
    let config_file = dir.join("run.toml");
    std::fs::write(
        &config_file,
        "[prices.\"gpt-4o-mini\"]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.60\n",
    )
    .expect("write");
    let output = harness(&[
        "scenario",
        "smoke",
        "--config",
        config_file.to_str().expect("utf-8 path"),
        "--duration",
        "2s",
        "--slo",
        slo.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    // 2; or 4 when a busy test machine starved the load generator in every second, so no
    // second is left to judge by (the SLO still failed, as the summary below shows).
    assert!(
        matches!(output.status.code(), Some(2 | 4)),
        "stderr: {}",
        stderr(&output)
    );
    let runs: Vec<_> = std::fs::read_dir(&out)
        .expect("run dir")
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let run_dir = runs[0].path();
    let summary = std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json");
    let result: reports::RunResult = serde_json::from_str(&summary).expect("valid summary");
    assert!(!result.slos_passed());
    assert!(result.totals.requests > 0);
    let config = std::fs::read_to_string(run_dir.join("config.toml")).expect("config.toml");
    assert!(config.contains("stages = \"0s:2,2s:2\""), "{config}");
    let cost = reports::cost::estimate(&result).expect("the run config prices its model");
    assert!(cost.total > 0.0 && cost.output_tokens > 0, "{cost:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn list_names_every_scenario() {
    let output = harness(&["list"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "smoke",
        "chat",
        "streaming",
        "mixed",
        "cache",
        "failover",
        "spike",
        "stress",
        "endurance",
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
}

/// `harness mock`, `harness gateway` and `harness bare-proxy` stop cleanly (exit 0) on SIGTERM,
/// also when it comes right after they print their address.
#[test]
fn servers_exit_0_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    for args in [
        &["mock", "--port", "0", "--profile", "fast"][..],
        &["gateway", "--port", "0", "--upstream", "http://127.0.0.1:9"][..],
        &[
            "bare-proxy",
            "--port",
            "0",
            "--upstream",
            "http://127.0.0.1:9",
        ][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("harness runs");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("address line");
        assert!(line.contains("http://127.0.0.1:"), "{args:?}: {line}");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) with the pid of a child this test spawned and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "{args:?} still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?}");
    }
}
