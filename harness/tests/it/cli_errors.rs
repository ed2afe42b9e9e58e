//! Usage errors: one clear line on stderr and exit code 1, never a panic; an impossible SLO
//! makes a run exit 2.

use crate::common::{
    MACHINE, Server, arg, assert_one_line_error, harness, run, run_dirs, scratch, summary,
};

#[test]
fn unknown_flag_is_one_line_and_exit_1() {
    let output = run(&["scenario", "smoke", "--userz", "3"]);
    assert_one_line_error(&output, "--userz");
}

#[test]
fn bad_flag_values_name_the_flag() {
    assert_one_line_error(&run(&["scenario", "smoke", "--stages", "30s100"]), "30s100");
    assert_one_line_error(&run(&["scenario", "smoke", "--duration", "soon"]), "soon");
    assert_one_line_error(
        &run(&["scenario", "smoke", "--max-users", "5"]),
        "max_users",
    );
    assert_one_line_error(&run(&["scenario", "nosuch"]), "unknown scenario");
}

#[test]
fn unreachable_target_is_one_line_and_exit_1() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let output = run(&["scenario", "smoke", "--target", &url, "--duration", "2s"]);
    assert_one_line_error(&output, "cannot reach target");
}

#[test]
fn a_missing_required_flag_is_named() {
    // clap puts the flag on the line below its message; the one line keeps it.
    let output = run(&["mock", "--cert-out", "mock.pem"]);
    assert_one_line_error(&output, "not provided: --tls");
}

#[test]
fn a_cause_is_said_once() {
    // The listen error's message ends with the OS's reason and hands that reason on as its
    // cause too: the line says it once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().expect("its address").port().to_string();
    for server in ["mock", "gateway"] {
        let output = run(&[server, "--port", &port]);
        assert_one_line_error(&output, "cannot listen on");
        let line = String::from_utf8_lossy(&output.stderr);
        assert_eq!(line.matches("in use").count(), 1, "{server}: {line}");
    }
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
    let output = run(&["scenario", "smoke", "--slo", arg(&path)]);
    assert_one_line_error(&output, "line 3");
}

#[test]
fn bad_config_file_names_the_key() {
    let dir = scratch("config");
    let path = dir.join("run.toml");
    std::fs::write(&path, "users = 2\nuserz = 3\n").expect("write");
    let output = run(&["scenario", "smoke", "--config", arg(&path)]);
    assert_one_line_error(&output, "userz");
}

#[test]
fn impossible_slo_exits_2_and_writes_the_run() {
    let _machine = MACHINE.blocking_read();
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
    let output = run(&[
        "scenario",
        "smoke",
        "--config",
        arg(&config_file),
        "--duration",
        "2s",
        "--slo",
        arg(&slo),
        "--out",
        arg(&out),
        "--quiet",
    ]);
    // 2; or 4 when a busy test machine starved the load generator in every second, so no
    // second is left to judge by (the SLO still failed, as the summary below shows).
    assert!(
        matches!(output.status.code(), Some(2 | 4)),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let [run_dir] = run_dirs(&out).try_into().expect("one run directory");
    let result = summary(&run_dir);
    assert!(!result.slos_passed());
    assert!(result.totals.requests > 0);
    let config = std::fs::read_to_string(run_dir.join("config.toml")).expect("config.toml");
    assert!(config.contains("stages = \"0s:2,2s:2\""), "{config}");
    let cost = reports::cost::estimate(&result).expect("the run config prices its model");
    assert!(cost.total > 0.0 && cost.output_tokens > 0, "{cost:?}");
}

#[test]
fn list_names_every_scenario() {
    let output = run(&["list"]);
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

/// `harness gateway --config FILE` listens where the file's `server.listen` says unless
/// `--port` or `--bind` is given.
#[test]
fn a_gateway_listens_where_its_config_file_says() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let port = closed_port();
    let dir = scratch("listen");
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n"
        ),
    )
    .expect("write");
    let mut child = harness()
        .args(["gateway", "--config", arg(&path)])
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness runs");
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("piped stderr"))
        .read_line(&mut line)
        .expect("address line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}")),
        "not on the configured port {port}: {line}"
    );
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
        let mut child = harness()
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
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM)
        };
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

/// A loopback port nothing listens on: bound and let go, so (almost certainly) closed.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The harness run as `sh -c 'ulimit LIMITS && exec harness ARGS'`: with open-file limits of
/// its own, whatever the test process has.
fn under_limits(limits: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("sh runs the harness")
}

#[test]
fn users_past_the_hard_open_file_limit_are_refused_up_front() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let args = ["scenario", "smoke", "--target", &url, "--users", "300"];
    let output = under_limits("-n 200", &args);
    assert_one_line_error(&output, "300 users need about 556 open files");
    assert_one_line_error(&output, "at most 200 (`ulimit -Hn`)");
}

/// A soft limit below the users' connections is raised to what they need: 300 users under a
/// soft limit of 200 connect without one "Too many open files".
#[test]
fn a_low_soft_open_file_limit_is_raised_for_the_run() {
    let _machine = MACHINE.blocking_read();
    let mock = Server::start(&["mock", "--port", "0", "--profile", "fast"]);
    let out = scratch("open-files");
    let args = [
        "scenario",
        "smoke",
        "--target",
        &mock.url,
        "--users",
        "300",
        "--duration",
        "2s",
        "--quiet",
        "--out",
        arg(&out),
    ];
    let output = under_limits("-Sn 200", &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let dir = run_dirs(&out).into_iter().next().expect("one run");
    let run = summary(&dir);
    assert!(run.totals.requests >= 300, "{:?}", run.totals);
    assert_eq!(run.totals.errors.connect, 0, "{stderr}");
    assert_eq!(run.totals.ok, run.totals.requests, "{:?}", run.totals);
}
