//! Scenarios against the embedded mocks and gateway: mid-run upstream changes come at their
//! share of the run and are reported, and repeated prompts are answered from the gateway's
//! cache.

use std::process::{Command, Output};

fn run(scenario: &str, out: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["scenario", scenario, "--duration", "6s", "--users", "8"])
        .args(["--out", out.to_str().expect("utf-8 path")])
        .output()
        .expect("harness runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gatebench-embedded-{}-{name}", std::process::id()))
}

#[test]
fn failover_reports_each_upstream_change_at_its_time() {
    let out = scratch("failover");
    let output = run("failover", &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    let out = scratch("cache");
    let output = run("cache", &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::read_dir(&out)
        .expect("run dir")
        .flatten()
        .next()
        .expect("one run")
        .path();
    let run: reports::RunResult =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("valid");
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
