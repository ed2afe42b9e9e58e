//! Scenarios against the embedded mocks and gateway: mid-run upstream changes come at their
//! share of the run and are reported, repeated prompts are answered from the gateway's cache,
//! a starved load generator is flagged, and the stress sweep judges each rate.

use std::path::Path;

use reports::model::{Limit, Offered};

use crate::common::{MACHINE, arg, assert_ran, run, run_dirs, scratch, summary};

/// Runs `scenario` for 6 s with 8 users into `out`; its stdout, once it ran to the end.
fn run_short(scenario: &str, out: &Path) -> String {
    let args = ["scenario", scenario, "--duration", "6s", "--users", "8"];
    let output = run(&[&args[..], &["--out", arg(out)]].concat());
    assert_ran(&output, scenario);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn failover_reports_each_upstream_change_at_its_time() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("embedded-failover");
    let stdout = run_short("failover", &out);
    assert!(stdout.contains("upstream changes"), "{stdout}");
    assert!(
        stdout.contains("at    2s  primary fails with 500"),
        "{stdout}"
    );
    assert!(stdout.contains("at    4s  primary recovers"), "{stdout}");
}

/// Repeated prompts are answered from the gateway's cache, and the gateway's own counters
/// tell the story the answers' `x-cache` headers tell.
#[test]
fn repeated_prompts_hit_the_gateway_cache() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("embedded-cache");
    let args = ["scenario", "cache", "--duration", "12s", "--users", "20"];
    let output = run(&[&args[..], &["--out", arg(&out)]].concat());
    assert_ran(&output, "cache");
    let stdout = String::from_utf8_lossy(&output.stdout);
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

    // Once the hot prompts are cached (from second 6): the fresh prompts, two in five, bypass
    // the cache (no temperature counts as 1.0, above its limit), and neither count takes them
    // for lookups.
    const WARM: u32 = 6;
    let mut warm = reports::model::Counters::default();
    for interval in run.intervals.iter().filter(|i| i.second >= WARM) {
        warm.merge(&interval.counters);
    }
    let headers = warm.cache.hit_ratio().expect("lookups after warm-up");
    assert!(
        headers > 0.5,
        "x-cache hit ratio {headers:.2} after warm-up"
    );
    let sampled: Vec<f64> = run
        .gateway
        .iter()
        .filter(|s| s.second > WARM)
        .filter_map(|s| s.cache_hit_ratio)
        .collect();
    assert!(sampled.len() >= 3, "{sampled:?}");
    let gateway = sampled.iter().sum::<f64>() / sampled.len() as f64;
    assert!(
        (gateway - headers).abs() < 0.15,
        "gateway /metrics {gateway:.2} against x-cache {headers:.2} after warm-up"
    );
}

/// Processes that spin on CPU 0 until dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn on_cpu0(count: usize) -> Hogs {
        Hogs(
            (0..count)
                .map(|_| {
                    std::process::Command::new("taskset")
                        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                        .spawn()
                        .expect("taskset and sh run")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// A load generator starved of CPU (pinned to one core with the gateway and mocks it drives,
/// its threads at the lowest priority and two spinning processes beside it once its load
/// starts) is flagged as saturated, and since its SLO verdict then rests on those seconds, the
/// run exits 4 with the explanation.
#[test]
fn a_starved_generator_is_flagged_and_exits_4() {
    let _machine = MACHINE.blocking_write();
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let out = scratch("embedded-starved");
    // TTFT, not ITL: a starved reader takes a stream's events in bursts, one read each, and
    // times the gaps inside a burst as 0 (counted as burst gaps), so its ITL percentiles can
    // pass; its first reads still come seconds late.
    let slo = out.join("ttft.toml");
    std::fs::write(
        &slo,
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p99\"\nop = \"<\"\nvalue = \"250ms\"\n",
    )
    .expect("write");
    let mut child = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_harness")])
        .args([
            "scenario",
            "smoke",
            "--duration",
            "4s",
            "--users",
            "24",
            "--quiet",
        ])
        // Met when the generator keeps up (the embedded mock's TTFT has a median of 50 ms and
        // a p99 near 90 ms); a starved one stalls for seconds.
        .args(["--slo", arg(&slo), "--out", arg(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness runs under taskset");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut seen = String::new();
    // The banner comes once everything is started: starve only the load, not the start-up.
    while stderr.read_line(&mut seen).expect("stderr") > 0 {
        if seen.contains("gatebench smoke:") {
            break;
        }
    }
    // Every thread of the harness (Linux sets priorities per thread), not its mocks and
    // gateway: only the load generator is starved.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .expect("the harness's threads")
        .flatten()
        .map(|task| task.file_name().to_string_lossy().into_owned())
        .collect();
    let reniced = Command::new("renice")
        .args(["-n", "19", "-p"])
        .args(&threads)
        .output()
        .expect("renice runs");
    assert!(reniced.status.success(), "{reniced:?}");
    let hogs = Hogs::on_cpu0(2);
    stderr.read_to_string(&mut seen).expect("stderr");
    let status = child.wait().expect("harness ends");
    drop(hogs);

    assert_eq!(status.code(), Some(4), "{seen}");
    assert!(seen.contains("inconclusive"), "{seen}");
    assert!(seen.contains("SLOs failed"), "{seen}");
    let dir = run_dirs(&out).into_iter().next().expect("one run");
    let run = summary(&dir);
    assert!(!run.saturated_seconds().is_empty(), "{:?}", run.generator);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("load generator saturated")),
        "{:?}",
        run.warnings
    );
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(
        report.contains("class=\"saturated\""),
        "saturated seconds are shaded"
    );
}

/// The stress scenario's rate sweep: a synchronous level, a throughput probe with `--max-users`
/// users, then the requested number of rising open-model rates, each judged alone; the report
/// draws the knee, and the exit code follows the sweep's verdict (4 when the generator
/// saturated first, else 2 for a capacity SLO no gateway here can meet).
#[test]
fn stress_sweeps_rates_and_judges_each() {
    let _machine = MACHINE.blocking_read();
    let out = scratch("embedded-sweep");
    let slo = out.join("sweep.toml");
    std::fs::write(
        &slo,
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"2s\"\n\n\
         [[slo]]\nmetric = \"capacity\"\nstat = \"rate\"\nop = \">=\"\nvalue = 100000\n",
    )
    .expect("write");
    let args = [
        "scenario",
        "stress",
        "--duration",
        "16s",
        "--max-users",
        "16",
        "--sweep-rates",
        "3",
        "--quiet",
    ];
    let output = run(&[&args[..], &["--slo", arg(&slo), "--out", arg(&out)]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let dir = run_dirs(&out).into_iter().next().expect("one run");
    let run = summary(&dir);
    let sweep = run.sweep.as_ref().expect("a sweep was recorded");
    let offered: Vec<Offered> = sweep.levels.iter().map(|l| l.offered).collect();
    assert_eq!(offered.len(), 5, "{offered:?}");
    assert_eq!(offered[0], Offered::Synchronous);
    assert_eq!(offered[1], Offered::Throughput { users: 16 });
    let rates: Vec<f64> = offered.iter().filter_map(|o| o.rate()).collect();
    assert!(rates.windows(2).all(|w| w[0] < w[1]), "{rates:?}");
    assert!(sweep.levels.iter().all(|l| l.requests > 0), "{sweep:?}");
    assert!(
        sweep.levels.windows(2).all(|w| w[0].end == w[1].start),
        "levels tile the run: {sweep:?}"
    );
    // Only the capacity SLO judges the run; the TTFT one judged each level.
    assert_eq!(run.slo_results.len(), 1);
    assert!(!run.slo_results[0].passed());
    let expected = if sweep.limit() == Limit::Generator {
        4
    } else {
        2
    };
    assert_eq!(output.status.code(), Some(expected), "{stderr}");
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(report.contains("Goodput by offered rate"), "the knee chart");
    assert!(
        report.contains("throughput probe (16 users)"),
        "the level table"
    );
}
