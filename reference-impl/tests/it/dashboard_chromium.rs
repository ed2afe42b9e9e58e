//! The dashboard in real headless Chromium, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and 4, so no
//! WebSocket client is needed): the page opens with the token, goes live on the event feed,
//! its figures move while requests flow, and its Content-Security-Policy blocks a load from
//! anywhere else. Skips (with a message) only when Chromium is not installed and `CI` is not
//! set; under CI a missing browser fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use mock_providers::{MockConfig, MockServer, Profile};
use serde_json::{Value, json};

use crate::common::browser::{chromium_or_skip, headless};
use crate::common::{self, chat, openai, start};

const TOKEN: &str = "chromium-s3cret";
/// Longest wait for any one answer or change on the page.
const PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium with a DevTools pipe, killed when dropped.
struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    replies: mpsc::Receiver<Value>,
    /// What the browser logs; taken by [`Browser::close`].
    stderr: Option<std::thread::JoinHandle<String>>,
    next_id: u64,
}

impl Browser {
    fn launch(binary: &Path, profile: &Path, url: &str) -> Self {
        let (commands_read, commands) = std::io::pipe().expect("pipe");
        let (replies_read, replies_write) = std::io::pipe().expect("pipe");
        let (into_browser, from_browser) = (commands_read.as_raw_fd(), replies_write.as_raw_fd());
        let mut command = headless(binary, profile);
        command
            .args(["--window-size=1280,1100", "--remote-debugging-pipe"])
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2) are made.
        // The pipe ends are first copied above 9 so that the dup2 onto 3 and 4 never meets one
        // of them already sitting there.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                let high_in = libc::fcntl(into_browser, libc::F_DUPFD, 10);
                let high_out = libc::fcntl(from_browser, libc::F_DUPFD, 10);
                if high_in < 0
                    || high_out < 0
                    || libc::dup2(high_in, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("chromium starts");
        drop((commands_read, replies_write));
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies_read);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Self {
            child,
            commands,
            replies,
            stderr: Some(stderr),
            next_id: 0,
        }
    }

    /// Sends one DevTools command (to the page's session when given) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within {PATIENCE:?}"));
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The page's value of a JavaScript expression (promises are awaited).
    fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Attaches to the first page once it shows `url_part`.
    fn attach_to_page(&mut self, url_part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let targets = self.call(None, "Target.getTargets", json!({}));
            let page = targets["targetInfos"].as_array().and_then(|all| {
                all.iter()
                    .find(|t| {
                        t["type"] == "page"
                            && t["url"].as_str().is_some_and(|u| u.contains(url_part))
                    })
                    .cloned()
            });
            if let Some(page) = page {
                let attached = self.call(
                    None,
                    "Target.attachToTarget",
                    json!({ "targetId": page["targetId"], "flatten": true }),
                );
                return attached["sessionId"].as_str().expect("session").to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no page at {url_part}: {targets}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the browser and returns what it logged.
    fn close(mut self) -> String {
        self.next_id += 1;
        let close = json!({ "id": self.next_id, "method": "Browser.close" });
        let mut bytes = serde_json::to_vec(&close).expect("json");
        bytes.push(0);
        let _ = self.commands.write_all(&bytes);
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|log| log.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of each element with one of `ids`, as the page shows it now.
fn figures(browser: &mut Browser, session: &str, ids: &[&str]) -> Vec<String> {
    let list = serde_json::to_string(ids).expect("json");
    let value = browser.eval(
        session,
        &format!("{list}.map((id) => document.getElementById(id)?.textContent ?? \"\")"),
    );
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls the page until `done` holds for its figures; the last figures seen.
fn wait_for(
    browser: &mut Browser,
    session: &str,
    ids: &[&str],
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = figures(browser, session, ids);
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the page never got there: {ids:?} = {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn number(text: &str) -> f64 {
    text.replace(',', "").parse().unwrap_or(0.0)
}

#[test]
fn the_dashboard_goes_live_in_chromium_and_its_policy_blocks_outside_loads() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = runtime.block_on(async {
        MockServer::start(MockConfig::new(Profile::fast()))
            .await
            .expect("mock starts")
    });
    let gw = runtime.block_on(start(vec![openai("up", upstream.url())], |c| {
        c.admin.token = Some(TOKEN.to_owned());
        c.cache.enabled = true;
    }));
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dashboard-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let url = format!("{}/admin/dashboard?token={TOKEN}", gw.url());
    let mut browser = Browser::launch(&binary, &profile, &url);
    let page = browser.attach_to_page("/admin/dashboard");

    // Live: the token was traded for the cookie, the feed is open, samples arrive.
    let ids = [
        "status",
        "samples",
        "requests-total",
        "rps",
        "latency-p50",
        "cache-hit",
    ];
    let before = wait_for(&mut browser, &page, &ids, |f| {
        f[0] == "live" && number(&f[1]) >= 1.0
    });
    let address = browser.eval(&page, "location.href");
    assert_eq!(
        address,
        format!("{}/admin/dashboard", gw.url()),
        "the token left the address"
    );
    assert_eq!(before[2], "0", "{before:?}");
    let dom_before = browser.eval(&page, "document.documentElement.outerHTML");

    // Load: 40 requests over about two seconds, a quarter of them repeats the cache answers.
    let load = runtime.spawn({
        let base = gw.url().to_owned();
        async move {
            let client = common::client();
            for i in 0..40 {
                let mut body = chat("gpt-4o", false);
                body["temperature"] = 0.into();
                if i % 4 != 0 {
                    body["messages"][1]["content"] = format!("question {i}").into();
                }
                let response = client
                    .post(format!("{base}/v1/chat/completions"))
                    .json(&body)
                    .send()
                    .await
                    .expect("answer");
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let during = wait_for(&mut browser, &page, &ids, |f| {
        number(&f[2]) > 0.0 && number(&f[3]) > 0.0
    });
    runtime.block_on(load).expect("load");
    let after = wait_for(&mut browser, &page, &ids, |f| f[2] == "40");
    println!("figures before {before:?}, during {during:?}, after {after:?}");
    assert!(
        number(&after[1]) > number(&before[1]),
        "more samples arrived"
    );
    assert_ne!(
        after[4], "\u{2013}",
        "a latency percentile is shown: {after:?}"
    );
    assert!(
        after[5].ends_with('%'),
        "a cache hit ratio is shown: {after:?}"
    );
    let dom_after = browser.eval(&page, "document.documentElement.outerHTML");
    assert_ne!(dom_before, dom_after);
    let dom = dom_after.as_str().expect("html");
    assert!(dom.contains("<td>up</td>"), "the provider row is drawn");
    assert!(
        dom.contains(r#"<td class="closed">closed</td>"#),
        "its breaker state is drawn"
    );
    let drawn = browser.eval(
        &page,
        "document.querySelector('#spark-rps polyline').getAttribute('points').split(' ').length",
    );
    assert!(
        drawn.as_u64().unwrap_or(0) >= 2,
        "the rate sparkline has points: {drawn}"
    );

    // A screenshot, kept for people to look at.
    let shot = browser.call(
        Some(&page),
        "Page.captureScreenshot",
        json!({ "format": "png" }),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("data"))
        .expect("base64");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&screenshot, &png).expect("write screenshot");
    eprintln!("screenshot: {}", screenshot.display());

    // The policy: an image, a script and a fetch aimed at another origin are all refused, and
    // that origin sees no connection.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let probe = format!("http://{}", listener.local_addr().expect("addr"));
    let blocked = browser.eval(
        &page,
        &format!(
            r#"new Promise((resolve) => {{
                const seen = [];
                document.addEventListener("securitypolicyviolation", (e) => {{
                    seen.push(e.effectiveDirective + " " + e.blockedURI);
                    if (seen.length === 3) resolve(seen.sort());
                }});
                const img = new Image(); img.src = "{probe}/probe.png"; document.body.append(img);
                const s = document.createElement("script"); s.src = "{probe}/probe.js"; document.body.append(s);
                fetch("{probe}/probe.json").catch(() => {{}});
                setTimeout(() => resolve(seen.sort()), 5000);
            }})"#
        ),
    );
    assert_eq!(
        blocked,
        json!([
            format!("connect-src {probe}/probe.json"),
            format!("img-src {probe}/probe.png"),
            format!("script-src-elem {probe}/probe.js"),
        ]),
    );
    assert!(
        listener.accept().is_err(),
        "the probe origin was contacted despite the policy"
    );

    let log = browser.close();
    let page_violations: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Content Security Policy") && !l.contains(&probe))
        .collect();
    assert!(
        page_violations.is_empty(),
        "the page itself broke its policy: {page_violations:#?}"
    );
    runtime.block_on(gw.shutdown());
    let _ = std::fs::remove_dir_all(&profile);
}
