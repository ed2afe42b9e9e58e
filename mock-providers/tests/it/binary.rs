//! The `mock-providers` binary: prints where it listens (and its certificate), serves, and exits 0
//! soon after SIGTERM, as a container's PID 1 must.

use std::process::Stdio;
use std::time::Duration;

use http::Version;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{self, exchange, https_client, json_post, openai_request};

/// Starts the binary with `args` and returns it with the first line it printed.
async fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-providers"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("prints its address in time")
    .expect("stdout readable");
    (child, line.trim_end().to_owned())
}

/// Sends SIGTERM and returns the exit status, which must come within a few seconds.
async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().expect("still running") as libc::pid_t;
    // SAFETY: `kill` has no memory effects; `pid` is our own child, not yet reaped.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0);
    tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s of SIGTERM")
        .expect("exit status")
}

#[tokio::test]
async fn tls_binary_prints_its_certificate_serves_and_stops_on_sigterm() {
    let (child, line) = spawn(&["--port", "0", "--tls", "--profile", "fast"]).await;
    let rest = line
        .strip_prefix("mock-providers listening on https://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let (port, path) = rest
        .split_once(" (certificate: ")
        .unwrap_or_else(|| panic!("no certificate path in: {line}"));
    let path = path.strip_suffix(')').expect("closing parenthesis");
    let port: u16 = port.parse().expect("port");
    // The default file: named after the port, in the system temp directory.
    assert_eq!(
        std::path::Path::new(path),
        std::env::temp_dir().join(format!("mock-providers-{port}.pem"))
    );
    let pem = std::fs::read_to_string(path).expect("certificate written");

    let client = https_client(Some(&pem), Version::HTTP_2);
    let url = format!("https://127.0.0.1:{port}/v1/chat/completions");
    let a = exchange(&client, json_post(&url, &[], &openai_request(true, false)))
        .await
        .expect("served");
    assert_eq!((a.status, a.version), (200, Version::HTTP_2));
    assert!(a.body.ends_with("data: [DONE]\n\n"), "{}", a.body);
    drop(client);

    let status = terminate(child).await;
    std::fs::remove_file(path).expect("certificate file removed");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn plain_binary_takes_the_old_host_flag_a_key_and_stops_on_sigterm() {
    let (child, line) = spawn(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--require-key",
        "sk-bin",
    ])
    .await;
    let base = line
        .strip_prefix("mock-providers listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let models = format!("{base}/v1/models");
    let client = reqwest::Client::new();
    let get = |key: &'static str| {
        client
            .get(&models)
            .bearer_auth(key)
            .timeout(common::REQUEST_TIMEOUT)
            .send()
    };
    assert_eq!(get("sk-bin").await.expect("served").status(), 200);
    assert_eq!(get("sk-nope").await.expect("served").status(), 401);
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn cert_out_without_tls_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_mock-providers"))
        .args(["--port", "0", "--cert-out", "x.pem"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("exits in time")
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tls"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
