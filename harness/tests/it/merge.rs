//! Distributed load: three worker processes (`--worker I/3`) against one standalone mock and
//! gateway, merged with `harness merge`, against one process sending the same total load.
//!
//! The load is the open model with constant arrivals for a fixed time: the arrival slots are
//! fixed by rate and duration alone (30/s for 4 s is 120 slots), and the workers take every
//! third slot of that same schedule, so both sides must send exactly the same number of
//! requests whatever the machine's speed (the pool of 150 users never runs out, so no arrival is
//! dropped). A closed model would not do: its request count depends on how fast responses come.

use std::path::Path;
use std::process::Stdio;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use reports::model::{EncodedHistogram, Metric, new_histogram};

use crate::common::{
    MACHINE, Server, arg, assert_one_line_error, assert_ran, harness, mock_profile, run, run_dirs,
    scratch, summary,
};

const LOAD: [&str; 8] = [
    "--rate",
    "30",
    "--arrivals",
    "constant",
    "--duration",
    "4s",
    "--max-users",
    "150",
];

/// Adds every interval histogram tagged `metric` in a run's `latency.hlog` to `into`: the
/// samples of the run, read from the interval log rather than from `summary.json`.
fn add_hlog(dir: &Path, metric: Metric, into: &mut Histogram<u64>) {
    let bytes = std::fs::read(dir.join("latency.hlog")).expect("latency.hlog");
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.expect("valid log entry") else {
            continue;
        };
        if interval.tag().map(|t| t.as_str()) != Some(metric.name()) {
            continue;
        }
        let histogram = EncodedHistogram::from_base64(interval.encoded_histogram())
            .expect("valid histogram")
            .decode();
        into.add(&histogram).expect("adds");
    }
}

#[test]
fn three_workers_merge_into_what_one_process_measures() {
    let _machine = MACHINE.blocking_read();
    let dir = scratch("merge");
    let mock = Server::mock(&mock_profile(&dir));
    let gateway = Server::gateway(&mock.url);
    let scenario = |extra: &[&str]| {
        let mut command = harness();
        command
            .args(["scenario", "streaming", "--target", &gateway.url, "--quiet"])
            .args(LOAD)
            .args(extra);
        command
    };

    let workers_out = dir.join("workers");
    // The three workers run at the same time, as they would on three machines.
    let workers: Vec<_> = (1..=3)
        .map(|i| {
            scenario(&["--worker", &format!("{i}/3"), "--out", arg(&workers_out)])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("worker starts")
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        let output = worker.wait_with_output().expect("worker finishes");
        assert_ran(&output, &format!("worker {}", i + 1));
    }
    let single_out = dir.join("single");
    let single = scenario(&["--out", arg(&single_out)])
        .output()
        .expect("harness runs");
    assert_ran(&single, "single process");
    let merged_dir = dir.join("merged");
    let merge = run(&["merge", arg(&workers_out), "--out", arg(&merged_dir)]);
    assert_ran(&merge, "merge");

    let worker_dirs = run_dirs(&workers_out);
    let mut worker_runs: Vec<_> = worker_dirs.iter().map(|d| summary(d)).collect();
    worker_runs.sort_by_key(|r| r.config.get("worker").map(ToString::to_string));
    let recorded: Vec<Option<&str>> = worker_runs
        .iter()
        .map(|r| r.config.get("worker").and_then(|w| w.as_str()))
        .collect();
    assert_eq!(recorded, [Some("1/3"), Some("2/3"), Some("3/3")]);
    let merged = summary(&merged_dir);
    let single = summary(&run_dirs(&single_out)[0]);
    assert!(!merged.config.contains_key("worker"), "{:?}", merged.config);

    // Counts: the same 120 arrivals on both sides, all sent.
    let shares: Vec<u64> = worker_runs.iter().map(|r| r.totals.requests).collect();
    eprintln!(
        "requests: workers {shares:?}, merged {}, single process {}",
        merged.totals.requests, single.totals.requests
    );
    assert_eq!(shares, [40, 40, 40]);
    assert_eq!(merged.totals.requests, 120);
    assert_eq!(single.totals.requests, 120);
    assert_eq!(
        merged.totals.dropped_arrivals + single.totals.dropped_arrivals,
        0
    );
    assert_eq!(
        merged
            .intervals
            .iter()
            .map(|i| i.counters.requests)
            .sum::<u64>(),
        120,
        "the merged seconds hold every request"
    );

    // Percentiles: the merged run's are those of all the workers' samples added directly.
    for metric in [Metric::Latency, Metric::Ttft, Metric::Itl] {
        let mut direct = new_histogram();
        for dir in &worker_dirs {
            add_hlog(dir, metric, &mut direct);
        }
        let summary = merged.summary(metric).expect("merged metric");
        assert_eq!(summary.count, direct.len(), "{metric:?} count");
        for (q, merged_value) in [(0.5, summary.p50), (0.99, summary.p99)] {
            let direct_value = direct.value_at_quantile(q);
            eprintln!(
                "{} p{}: merged {merged_value} us, direct {direct_value} us, single process {} us",
                metric.name(),
                q * 100.0,
                single.percentile(metric, q).unwrap_or_default()
            );
            assert!(
                direct.equivalent(merged_value, direct_value),
                "{metric:?} p{q}: merged {merged_value} vs direct {direct_value}"
            );
        }
    }
    assert_eq!(merged.slo_results.len(), single.slo_results.len());
    for file in [
        "report.html",
        "timeseries.csv",
        "percentiles.csv",
        "latency.hlog",
    ] {
        assert!(merged_dir.join(file).is_file(), "{file} missing");
    }
    drop(gateway);
    drop(mock);
}

/// Writes worker `worker`'s run directory of a generated run of `scenario`.
fn worker_dir(parent: &Path, scenario: &str, worker: Option<&str>) -> std::path::PathBuf {
    let mut run = reports::synthetic::synthetic_run(5, 1);
    run.scenario = scenario.to_owned();
    run.config.remove("worker");
    if let Some(worker) = worker {
        run.config.insert("worker".to_owned(), worker.into());
    }
    let dir = parent.join(format!(
        "{scenario}-{}",
        worker.unwrap_or("whole").replace('/', "-of-")
    ));
    reports::run_dir::write_run_dir(&dir, &run).expect("run dir written");
    dir
}

#[test]
fn merge_refuses_what_is_not_one_load_in_one_line() {
    let dir = scratch("merge-errors");
    let one = worker_dir(&dir, "chat", Some("1/2"));
    let two = worker_dir(&dir, "chat", Some("2/2"));
    let smoke = worker_dir(&dir, "smoke", Some("2/2"));
    let whole = worker_dir(&dir, "chat", None);
    let other_count = worker_dir(&dir, "chat", Some("2/3"));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    let out = dir.join("out");
    let merge = |dirs: &[&Path]| {
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(|d| arg(d)));
        args.extend(["--out", arg(&out)]);
        run(&args)
    };

    assert_one_line_error(&merge(&[&one, &smoke]), "scenario is `smoke`");
    assert_one_line_error(&merge(&[&one, &dir.join("nowhere")]), "no such directory");
    assert_one_line_error(&merge(&[&one, &empty]), "holds no summary.json");
    assert_one_line_error(&merge(&[&one, &whole]), "is not a worker run");
    assert_one_line_error(&merge(&[&one]), "worker 2/2 missing");
    assert_one_line_error(&merge(&[&one, &two, &two]), "are both worker 2/2");
    assert_one_line_error(&merge(&[&one, &other_count]), "not the workers of one load");
    assert!(!out.exists(), "nothing is written for a refused merge");

    let merged = merge(&[&one, &two]);
    assert_ran(&merged, "merge");
    let merged = summary(&out);
    let one = summary(&one);
    assert_eq!(merged.totals.requests, 2 * one.totals.requests);
}

#[test]
fn bad_worker_values_are_one_line() {
    let dir = scratch("worker-flags");
    for bad in ["0/3", "4/3", "x", "auto/0"] {
        let output = run(&["scenario", "chat", "--worker", bad]);
        assert_one_line_error(&output, bad);
    }
    let config = dir.join("run.toml");
    std::fs::write(&config, "users = 3\nworker = \"5/4\"\n").expect("config written");
    assert_one_line_error(&run(&["scenario", "chat", "--config", arg(&config)]), "5/4");
    assert_one_line_error(
        &run(&["scenario", "chat", "--users", "2", "--worker", "3/3"]),
        "worker: worker 3/3 gets no users",
    );
    let auto = harness()
        .args(["scenario", "chat", "--worker", "auto/3"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("harness runs");
    assert_one_line_error(&auto, "JOB_COMPLETION_INDEX");
}
