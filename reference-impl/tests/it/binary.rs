//! The `gateway` binary: flags, a clean stop on SIGTERM, one-line config errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn gateway(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the gateway binary")
}

/// The URL from the `gateway listening on URL` line, read within 20 s.
fn listening_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = send.send(line);
    });
    let line = receive
        .recv_timeout(Duration::from_secs(20))
        .expect("the gateway prints its address");
    line.trim()
        .strip_prefix("gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}

/// The exit status within `within`, or `None` if it is still running.
fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills the child if a check failed before it exited, so no process outlives the test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_gateway_cleanly_and_bind_sets_the_address() {
    let mut child = Reaped(gateway(&["--port", "0", "--bind", "127.0.0.1"]));
    let url = listening_url(&mut child.0);
    let addr = url.strip_prefix("http://").expect("http URL");
    assert!(addr.starts_with("127.0.0.1:"), "{url}");

    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    tcp.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let pid = i32::try_from(child.0.id()).expect("pid");
    // SAFETY: sends a signal to the child this test started and has not yet reaped.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = exit_within(&mut child.0, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
}

#[test]
fn an_absurd_config_value_is_one_line_naming_the_field() {
    let path = std::env::temp_dir().join(format!("gateway-absurd-{}.toml", std::process::id()));
    std::fs::write(&path, "[routing]\ndeadline_ms = 18446744073709551615\n").expect("write");
    let mut child = Reaped(gateway(&["--config", path.to_str().expect("utf-8 path")]));
    let status = exit_within(&mut child.0, Duration::from_secs(10));
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let _ = std::fs::remove_file(&path);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("routing.deadline_ms"), "{stderr}");
}
