//! Every file of the run directory: columns, values and round trips.

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use reports::model::{Metric, RunResult};
use reports::run_dir::{
    PERCENTILES_COLUMNS, TIMESERIES_COLUMNS, read_summary, write_bmf, write_hlog,
    write_percentiles, write_run_dir, write_summary, write_timeseries,
};
use reports::synthetic::synthetic_run;

use crate::common::{histogram, reported, small_run, tempdir};

fn text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).expect("writing to memory");
    String::from_utf8(out).expect("utf-8")
}

/// Rows of a CSV as maps from column name to cell.
fn rows(csv: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "row width: {line}");
            header
                .iter()
                .zip(cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1_000.0)
}

#[test]
fn timeseries_has_one_row_per_second_with_the_documented_columns() {
    let run = small_run();
    let csv = text(|out| write_timeseries(out, &run));
    assert_eq!(
        csv.lines().next(),
        Some(TIMESERIES_COLUMNS.join(",").as_str())
    );
    let rows = rows(&csv);
    assert_eq!(rows.len(), 3, "seconds 0, 1 (no requests) and 2");

    let r0 = &rows[0];
    assert_eq!(r0["second"], "0");
    assert_eq!(r0["rps"], "3");
    assert_eq!(r0["ok"], "2");
    assert_eq!(r0["active_users"], "2");
    assert_eq!(r0["latency_p50_ms"], ms(reported(100_000)));
    assert_eq!(r0["latency_p99_ms"], ms(reported(200_000)));
    assert_eq!(r0["ttft_p95_ms"], ms(reported(20_000)));
    assert_eq!(r0["errors"], "1");
    assert_eq!(r0["errors_http_5xx"], "1");
    assert_eq!(r0["errors_timeout"], "0");
    assert_eq!(r0["cache_hit_ratio"], "0.5000");
    assert_eq!(r0["output_tokens"], "30");
    assert_eq!(r0["gateway_rss_bytes"], "");

    let r1 = &rows[1];
    assert_eq!(r1["rps"], "0");
    assert_eq!(r1["active_users"], "", "no interval: unknown, not zero");
    assert_eq!(r1["latency_p50_ms"], "", "no requests: empty, not zero");
    assert_eq!(r1["gateway_rss_bytes"], "1000");
    assert_eq!(r1["gateway_cpu_percent"], "12.50");
    assert_eq!(r1["queue_depth"], "3");
    assert_eq!(r1["breaker_state"], "open");
    assert_eq!(r1["gateway_cache_hit_ratio"], "0.5000");

    let r2 = &rows[2];
    assert_eq!(r2["active_users"], "4");
    assert_eq!(r2["dropped_arrivals"], "2");
    assert_eq!(r2["latency_p95_ms"], ms(reported(50_000)));
    assert_eq!(r2["cache_hit_ratio"], "");
}

#[test]
fn percentiles_csv_has_one_row_per_metric_with_data() {
    let run = small_run();
    let csv = text(|out| write_percentiles(out, &run));
    assert_eq!(
        csv.lines().next(),
        Some(PERCENTILES_COLUMNS.join(",").as_str())
    );
    let rows = rows(&csv);
    let metrics: Vec<&str> = rows.iter().map(|r| r["metric"].as_str()).collect();
    assert_eq!(metrics, ["latency", "ttft"]);
    let latency = &rows[0];
    assert_eq!(latency["unit"], "ms");
    assert_eq!(latency["count"], "3");
    // 50, 100, 200 ms: nearest-rank p50 is the 2nd value, p90 and above the 3rd.
    assert_eq!(latency["p50"], ms(reported(100_000)));
    assert_eq!(latency["p90"], ms(reported(200_000)));
    assert_eq!(latency["p99.9"], ms(reported(200_000)));
    assert_eq!(latency["max"], ms(reported(200_000)));
}

#[test]
fn hlog_reads_back_through_hdrhistograms_reader() {
    let run = small_run();
    let log = text(|out| write_hlog(out, &run));
    assert!(log.contains("#[StartTime: 1700000000.000"), "{log}");

    let mut read = Vec::new();
    for entry in IntervalLogIterator::new(log.as_bytes()) {
        if let LogEntry::Interval(h) = entry.expect("a valid log line") {
            let bytes = base64_decode(h.encoded_histogram());
            let histogram: hdrhistogram::Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .expect("decodes");
            read.push((
                h.tag().map(|t| t.as_str().to_owned()),
                h.start_timestamp().as_secs(),
                h.duration().as_secs(),
                histogram,
            ));
        }
    }
    let expected: Vec<(Option<String>, u64, u64, hdrhistogram::Histogram<u64>)> = vec![
        (Some("latency".into()), 0, 1, histogram(&[100_000, 200_000])),
        (Some("ttft".into()), 0, 1, histogram(&[10_000, 20_000])),
        (Some("latency".into()), 2, 1, histogram(&[50_000])),
        (Some("ttft".into()), 2, 1, histogram(&[5_000])),
    ];
    assert_eq!(read.len(), expected.len());
    for (got, want) in read.iter().zip(&expected) {
        assert_eq!((&got.0, got.1, got.2), (&want.0, want.1, want.2));
        assert_eq!(got.3.len(), want.3.len());
        assert_eq!(got.3.max(), want.3.max());
        assert_eq!(got.3.value_at_quantile(0.5), want.3.value_at_quantile(0.5));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

#[test]
fn summary_json_round_trips() {
    let tmp = tempdir();
    let dir = tmp.path();
    let mut run = synthetic_run(30, 1);
    run.config.remove("api_key");
    let path = dir.join("summary.json");
    std::fs::write(&path, text(|out| write_summary(out, &run))).expect("write");
    let back: RunResult = read_summary(&path).expect("reads back");
    assert_eq!(back, run);
    assert_eq!(
        back.summary(Metric::Ttft).map(|s| s.p99),
        run.summary(Metric::Ttft).map(|s| s.p99)
    );
}

#[test]
fn summary_errors_name_the_file_and_the_problem() {
    let tmp = tempdir();
    let dir = tmp.path();
    let path = dir.join("summary.json");
    let run = small_run();
    let mut value = serde_json::to_value(&run).expect("to json");

    value["schema_version"] = 7.into();
    std::fs::write(&path, value.to_string()).expect("write");
    let error = read_summary(&path).expect_err("future version").to_string();
    assert!(
        error.contains("summary.json") && error.contains("schema version 7"),
        "{error}"
    );

    value["schema_version"] = 1.into();
    value["metrics"]["ttft"] = "garbage".into();
    std::fs::write(&path, value.to_string()).expect("write");
    let error = read_summary(&path).expect_err("bad histogram").to_string();
    assert!(error.contains("invalid encoded histogram"), "{error}");

    let mut value = serde_json::to_value(&run).expect("to json");
    value["intervals"][1]["second"] = 0.into();
    std::fs::write(&path, value.to_string()).expect("write");
    let error = read_summary(&path).expect_err("unordered").to_string();
    assert!(error.contains("not ordered"), "{error}");

    let error = read_summary(&dir.join("missing.json"))
        .expect_err("missing")
        .to_string();
    assert!(error.contains("missing.json"), "{error}");
}

#[test]
fn bencher_metric_format_has_the_percentiles_in_display_units() {
    let run = small_run();
    let doc: serde_json::Value =
        serde_json::from_str(&text(|out| write_bmf(out, &run))).expect("valid JSON");
    let latency = &doc["small/latency"];
    assert_eq!(latency["p50"]["value"], reported(100_000) as f64 / 1e3);
    // HdrHistogram reports the minimum as the bottom of its bucket.
    let min = histogram(&[50_000]).min();
    assert_eq!(latency["p50"]["lower_value"], min as f64 / 1e3);
    assert_eq!(latency["p99"]["value"], reported(200_000) as f64 / 1e3);
    assert_eq!(doc["small/run"]["error_rate"]["value"], 0.25);
    assert_eq!(doc["small/run"]["throughput"]["value"], 4.0 / 3.0);
    assert!(doc.get("small/itl").is_none(), "no data, no benchmark");
}

#[test]
fn run_directory_holds_every_file_and_a_redacted_config() {
    let tmp = tempdir();
    let dir = tmp.path();
    let run = synthetic_run(20, 3);
    let files = write_run_dir(dir, &run).expect("writes");
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for name in [
        "summary.json",
        "timeseries.csv",
        "percentiles.csv",
        "latency.hlog",
        "report.html",
        "config.toml",
        "bencher.json",
    ] {
        assert!(
            names.contains(&name.to_owned()),
            "{name} missing from {names:?}"
        );
    }
    let config = std::fs::read_to_string(dir.join("config.toml")).expect("config");
    let table: toml::Table = toml::from_str(&config).expect("config.toml is TOML");
    assert_eq!(table["api_key"].as_str(), Some("<redacted>"));
    assert_eq!(table["model"].as_str(), Some("gpt-4o-mini"));
    let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary");
    assert!(!summary.contains("sk-not-a-real-key"));

    reports::run_dir::rerender_report(dir).expect("re-renders from summary.json");
    let timeseries = std::fs::read_to_string(dir.join("timeseries.csv")).expect("csv");
    assert_eq!(timeseries.lines().count(), 21, "header and 20 seconds");
}

#[test]
fn a_run_without_requests_still_writes_every_file() {
    let tmp = tempdir();
    let dir = tmp.path();
    let run = RunResult::new(
        "empty",
        toml::Table::new(),
        reports::model::Environment::default(),
        chrono::Utc::now(),
    );
    write_run_dir(dir, &run).expect("writes");
    let percentiles = std::fs::read_to_string(dir.join("percentiles.csv")).expect("csv");
    assert_eq!(percentiles.lines().count(), 1, "header only");
}

#[test]
fn read_runs_takes_one_run_directory_or_a_directory_of_them() {
    let tmp = tempdir();
    let root = tmp.path();
    for (name, seed) in [("b-run", 2), ("a-run", 1)] {
        write_run_dir(&root.join(name), &synthetic_run(5, seed)).expect("writes");
    }
    std::fs::create_dir(root.join("not-a-run")).expect("mkdir");

    let one = reports::run_dir::read_runs(&root.join("a-run")).expect("one run");
    assert_eq!(one.len(), 1);
    let both = reports::run_dir::read_runs(root).expect("two runs");
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[0].intervals,
        synthetic_run(5, 1).intervals,
        "ordered by name"
    );

    let error = reports::run_dir::read_runs(&root.join("not-a-run"))
        .expect_err("empty")
        .to_string();
    assert!(
        error.contains("not-a-run") && error.contains("no summary.json"),
        "{error}"
    );
}
