//! Opens a generated `report.html` in real headless Chromium: it must load nothing from the
//! network, and every chart must have drawn data. Skips (with a message) only when Chromium is
//! not installed and `CI` is not set; under CI a missing browser fails the test.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reports::html::render_report;
use reports::slo::{evaluate, parse_slos};
use reports::synthetic::synthetic_run;

use crate::common::browser::{chromium_or_skip, headless};
use crate::common::tempdir;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// What one headless Chromium invocation printed.
struct BrowserOutput {
    stdout: String,
    stderr: String,
}

fn run_chromium(browser: &Path, profile: &Path, extra: &[String], page: &Path) -> BrowserOutput {
    let mut child = headless(browser, profile)
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waits").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    BrowserOutput {
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Every `<svg class="chart">…</svg>` of a page.
fn charts(dom: &str) -> Vec<&str> {
    dom.split(r#"<svg class="chart""#)
        .skip(1)
        .map(|rest| rest.split("</svg>").next().unwrap_or(""))
        .collect()
}

/// Number of points of the longest drawn series of a chart.
fn drawn_points(svg: &str) -> usize {
    svg.split(r#"class="series" d=""#)
        .skip(1)
        .map(|rest| {
            let d = rest.split('"').next().unwrap_or("");
            let coordinates: Vec<f64> = d
                .split(['M', 'L', ' '])
                .filter(|t| !t.is_empty())
                .filter_map(|t| t.parse().ok())
                .collect();
            let well_formed =
                coordinates.len().is_multiple_of(2) && coordinates.iter().all(|c| c.is_finite());
            if well_formed {
                coordinates.len() / 2
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// Attributes and CSS that would make a browser fetch something.
fn external_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for attribute in ["src=", "href=", "srcset=", "action=", "poster=", "data="] {
        for quote in ['"', '\''] {
            let needle = format!("{attribute}{quote}");
            for (at, _) in lower.match_indices(&needle) {
                let value = &lower[at + needle.len()..];
                let value = value.split(quote).next().unwrap_or("");
                if !value.starts_with("data:") && !value.starts_with('#') {
                    found.push(format!("{attribute}{value}"));
                }
            }
        }
    }
    for construct in [
        "<script", "<link", "@import", "url(", "<iframe", "<object", "<embed",
    ] {
        if lower.contains(construct) {
            found.push(construct.to_owned());
        }
    }
    found
}

#[test]
fn report_opens_in_headless_chromium_without_network_and_draws_every_chart() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };

    let mut run = synthetic_run(180, 42);
    let slos = parse_slos(
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"250ms\"\n\
         [[slo]]\nmetric = \"error_rate\"\nstat = \"ratio\"\nop = \"<\"\nvalue = \"1%\"\n\
         [[slo]]\nmetric = \"throughput\"\nstat = \"rate\"\nop = \">=\"\nvalue = 50\n",
    )
    .expect("valid SLOs");
    run.slo_results = evaluate(&slos, &run);
    let html = render_report(&run).expect("renders");

    // Nothing in the file points outside it.
    assert_eq!(external_references(&html), Vec::<String>::new());
    assert!(html.contains("Content-Security-Policy"));

    let work = tempdir();
    let page = work.path().join("report.html");
    std::fs::write(&page, &html).expect("write report");

    // The DOM as Chromium built it.
    let loaded = run_chromium(
        &browser,
        &work.path().join("profile-dom"),
        &["--dump-dom".to_owned()],
        &page,
    );
    assert!(
        loaded.stdout.contains("gatebench: synthetic"),
        "page did not load"
    );
    let svgs = charts(&loaded.stdout);
    assert!(svgs.len() >= 14, "only {} charts in the DOM", svgs.len());
    for (n, svg) in svgs.iter().enumerate() {
        let points = drawn_points(svg);
        assert!(points >= 10, "chart {n} draws {points} points: {svg:.300}");
    }
    assert!(
        !loaded.stderr.contains("Content Security Policy"),
        "the report tried to load something:\n{}",
        loaded.stderr
    );

    // A screenshot, kept for people to look at.
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &browser,
        &work.path().join("profile-shot"),
        &[
            "--window-size=1280,4400".to_owned(),
            format!("--screenshot={}", screenshot.display()),
        ],
        &page,
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 1280);
    assert!(
        png.len() > 100_000,
        "a blank page compresses to little: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());
}

/// The check above relies on the page's Content-Security-Policy; this shows it really stops a
/// load and that Chromium reports it: a probe image pointing at a local listener is blocked,
/// reported, and the listener sees no connection.
#[test]
fn the_content_security_policy_blocks_and_reports_external_loads() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let probe = format!("http://{}/probe.png", listener.local_addr().expect("addr"));

    let html = render_report(&synthetic_run(20, 1)).expect("renders");
    let tampered = html.replacen("<main>", &format!(r#"<main><img src="{probe}" alt="">"#), 1);
    assert_eq!(external_references(&tampered), vec![format!("src={probe}")]);
    let work = tempdir();
    let page = work.path().join("tampered.html");
    std::fs::write(&page, tampered).expect("write");

    let loaded = run_chromium(
        &browser,
        &work.path().join("profile"),
        &["--dump-dom".to_owned()],
        &page,
    );
    assert!(
        loaded.stderr.contains("Content Security Policy") && loaded.stderr.contains(&probe),
        "the blocked load is reported:\n{}",
        loaded.stderr
    );
    assert!(
        listener.accept().is_err(),
        "the probe was fetched despite the policy"
    );
}
