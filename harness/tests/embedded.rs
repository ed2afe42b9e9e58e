//! Scenarios against the embedded mocks and gateway: mid-run upstream changes come at their
//! share of the run and are reported, and repeated prompts are answered from the gateway's
//! cache.

mod common;

use std::path::Path;

use common::{arg, assert_ran, run, run_dirs, scratch, summary};

/// Runs `scenario` for 6 s with 8 users into `out`; its stdout, once it ran to the end.
fn run_short(scenario: &str, out: &Path) -> String {
    let args = ["scenario", scenario, "--duration", "6s", "--users", "8"];
    let output = run(&[&args[..], &["--out", arg(out)]].concat());
    assert_ran(&output, scenario);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn failover_reports_each_upstream_change_at_its_time() {
    let out = scratch("embedded-failover");
    let stdout = run_short("failover", &out);
    assert!(stdout.contains("upstream changes"), "{stdout}");
    assert!(
        stdout.contains("at    2s  primary fails with 500"),
        "{stdout}"
    );
    assert!(stdout.contains("at    4s  primary recovers"), "{stdout}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn repeated_prompts_hit_the_gateway_cache() {
    let out = scratch("embedded-cache");
    let stdout = run_short("cache", &out);
    let dir = run_dirs(&out).into_iter().next().expect("one run");
    let run = summary(&dir);
    assert!(run.totals.cache.hit > 0, "{:?}", run.totals.cache);
    assert!(stdout.contains("cache latency"), "{stdout}");
    for file in [
        "report.html",
        "timeseries.csv",
        "percentiles.csv",
        "latency.hlog",
        "config.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let _ = std::fs::remove_dir_all(out);
}
