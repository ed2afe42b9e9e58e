//! The load gate's report: input validation, `gate.json`, `gate.html`, the console table and
//! the exit codes the harness returns.

use reports::gate::{
    GateError, GateMetric, GateOptions, GateReport, GateRuns, GateSubject, Measurements, Round,
    RoundKind, Tolerance, Verdict, evaluate,
};

/// Throughput and overhead p99 of one run.
fn run(rps: f64, p99_us: f64) -> Measurements {
    Measurements::new()
        .with(GateMetric::Throughput, rps)
        .and_then(|m| m.with(GateMetric::OverheadP99, p99_us))
        .expect("positive values")
}

/// Six rounds whose candidate side is `cand_rps` and `cand_p99`, with a little spread.
fn rounds(cand_rps: f64, cand_p99: f64) -> Vec<Round> {
    (0..6)
        .map(|i| {
            let wobble = 1.0 + f64::from(i % 3) * 0.002;
            Round::abba(
                run(1_000.0 * wobble, 900.0),
                run(cand_rps * wobble, cand_p99),
                run(cand_rps * 1.001, cand_p99 * wobble),
                run(1_001.0, 905.0 * wobble),
            )
        })
        .collect()
}

fn gate(cand_rps: f64, cand_p99: f64) -> GateReport {
    evaluate(
        GateSubject::new("smoke", "main@1a2b3c", "feature@4d5e6f"),
        GateRuns {
            ab: rounds(cand_rps, cand_p99),
            aa: rounds(1_000.0, 900.0),
        },
        &GateOptions::default(),
    )
    .expect("a complete gate")
}

#[test]
fn verdicts_map_to_the_design_exit_codes() {
    let slower = gate(880.0, 900.0);
    assert_eq!(slower.verdict, Verdict::Regression);
    assert_eq!(slower.exit_code(), 3);
    let throughput = &slower.metrics[0];
    assert_eq!(throughput.metric, GateMetric::Throughput);
    assert!((throughput.ab.change + 0.12).abs() < 0.01, "{throughput:?}");
    assert!(throughput.ab.interval.1 < -0.03);
    assert_eq!(slower.metrics[1].verdict, Verdict::Unchanged);

    let faster = gate(1_000.0, 700.0);
    assert_eq!(faster.verdict, Verdict::Improvement);
    assert_eq!(faster.exit_code(), 0);
    assert_eq!(gate(1_000.0, 900.0).verdict, Verdict::Unchanged);
    assert_eq!(gate(1_000.0, 900.0).exit_code(), 0);
}

#[test]
fn a_noisy_self_check_makes_the_gate_inconclusive() {
    let mut runs = GateRuns {
        ab: rounds(880.0, 900.0),
        aa: rounds(1_000.0, 900.0),
    };
    // The A/A rounds swing by ±15% between sides.
    for (i, round) in runs.aa.iter_mut().enumerate() {
        let swing = if i % 2 == 0 { 1.15 } else { 0.85 };
        round.b = [run(1_000.0 * swing, 900.0), run(1_000.0 * swing, 900.0)];
    }
    let report = evaluate(
        GateSubject::new("smoke", "a", "b"),
        runs,
        &GateOptions::default(),
    )
    .expect("a complete gate");
    assert_eq!(report.metrics[0].verdict, Verdict::Inconclusive);
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert_eq!(report.exit_code(), 4);
    assert!(
        report.summary().contains("too noisy"),
        "{}",
        report.summary()
    );
}

#[test]
fn gate_json_round_trips_and_gate_html_is_self_contained() {
    let report = gate(880.0, 900.0);
    let dir = tempfile::tempdir().expect("temp dir");
    report.write(dir.path()).expect("written");

    let json = std::fs::read_to_string(dir.path().join("gate.json")).expect("gate.json");
    let read: GateReport = serde_json::from_str(&json).expect("valid gate.json");
    // JSON keeps every number to within a unit in the last place.
    assert_eq!(read.verdict, report.verdict);
    assert_eq!(read.settings, report.settings);
    for (read, written) in read.metrics.iter().zip(&report.metrics) {
        assert_eq!(
            (read.metric, read.verdict),
            (written.metric, written.verdict)
        );
        assert!((read.ab.change - written.ab.change).abs() < 1e-12);
        assert!((read.aa.interval.1 - written.aa.interval.1).abs() < 1e-12);
    }
    assert_eq!(read.runs.ab.len(), 6);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["verdict"], "regression");
    assert_eq!(value["metrics"][0]["metric"], "throughput");
    assert_eq!(value["settings"]["tolerances"]["throughput"], 0.03);
    assert_eq!(value["runs"]["ab"][0]["a"][0]["throughput"], 1_000.0);
    assert_eq!(value["not_measured"][0], "overhead_p50");

    let html = std::fs::read_to_string(dir.path().join("gate.html")).expect("gate.html");
    assert!(html.contains("default-src 'none'"));
    for loader in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(loader), "gate.html contains {loader}");
    }
    assert!(html.contains("REGRESSION"));
    assert!(html.contains("main@1a2b3c") && html.contains("feature@4d5e6f"));
    assert_eq!(html.matches("<svg").count(), report.metrics.len());
    assert!(html.contains("Not measured by any run: overhead p50, ttft p50, ttft p99"));
}

#[test]
fn gate_json_with_an_impossible_value_is_rejected() {
    let report = gate(880.0, 900.0);
    let json = serde_json::to_string(&report)
        .expect("serializes")
        .replacen("\"throughput\":1000.0", "\"throughput\":-1.0", 1);
    let error = serde_json::from_str::<GateReport>(&json).expect_err("negative throughput");
    assert!(
        error.to_string().contains("not a positive finite number"),
        "{error}"
    );
}

#[test]
fn the_console_table_names_every_metric_and_ends_with_the_verdict() {
    let text = gate(880.0, 900.0).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("gate smoke: base main@1a2b3c vs candidate feature@4d5e6f"));
    assert!(lines[1].starts_with("metric") && lines[1].contains("A/A interval"));
    assert!(lines[2].starts_with("throughput") && lines[2].ends_with("REGRESSION"));
    assert!(lines[3].starts_with("overhead p99") && lines[3].ends_with("unchanged"));
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("REGRESSION (exit 3): throughput: -12"))
    );
}

#[test]
fn the_same_runs_give_the_same_report() {
    assert_eq!(gate(950.0, 930.0), gate(950.0, 930.0));
}

#[test]
fn bad_input_gets_an_error_naming_it() {
    let options = GateOptions::default();
    let subject = || GateSubject::new("smoke", "a", "b");

    let few = GateRuns {
        ab: rounds(1_000.0, 900.0)[..5].to_vec(),
        aa: rounds(1_000.0, 900.0),
    };
    let error = evaluate(subject(), few, &options).expect_err("5 rounds");
    assert!(matches!(
        error,
        GateError::TooFewRounds {
            kind: RoundKind::Ab,
            got: 5,
            need: 6,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "5 A/B rounds are too few: at 95% confidence the gate needs at least 6"
    );

    let mut partial = GateRuns {
        ab: rounds(1_000.0, 900.0),
        aa: rounds(1_000.0, 900.0),
    };
    partial.aa[2].b[1] = Measurements::new()
        .with(GateMetric::Throughput, 1_000.0)
        .expect("positive");
    let error = evaluate(subject(), partial, &options).expect_err("a run without overhead");
    assert_eq!(
        error.to_string(),
        "A/A round 3, run 3 has no overhead p99, but other runs of the gate have it"
    );

    let error = Measurements::new()
        .with(GateMetric::TtftP99, f64::NAN)
        .expect_err("NaN");
    assert_eq!(
        error.to_string(),
        "ttft p99: NaN is not a positive finite number"
    );

    let empty = GateRuns {
        ab: vec![
            Round::abba(
                Measurements::new(),
                Measurements::new(),
                Measurements::new(),
                Measurements::new()
            );
            6
        ],
        aa: vec![
            Round::abba(
                Measurements::new(),
                Measurements::new(),
                Measurements::new(),
                Measurements::new()
            );
            6
        ],
    };
    assert!(matches!(
        evaluate(subject(), empty, &options),
        Err(GateError::NothingMeasured)
    ));
}

#[test]
fn tolerances_parse_like_command_line_flags() {
    assert_eq!("3%".parse::<Tolerance>().expect("3%").fraction(), 0.03);
    assert_eq!("0.1".parse::<Tolerance>().expect("0.1").fraction(), 0.1);
    assert_eq!("3%".parse::<Tolerance>().expect("3%").to_string(), "3%");
    for bad in ["0", "100%", "-2%", "fast", ""] {
        let error = bad.parse::<Tolerance>().expect_err(bad);
        assert!(
            error.to_string().starts_with(&format!("tolerance `{bad}`")),
            "{error}"
        );
    }
}

#[test]
fn more_confidence_needs_more_rounds() {
    let confidence = |c: f64| reports::gate::Confidence::new(c).expect("valid");
    assert_eq!(confidence(0.95).min_rounds(), 6);
    assert_eq!(confidence(0.99).min_rounds(), 8);
    assert!(reports::gate::Confidence::new(1.0).is_err());
}

#[test]
fn a_run_result_gives_its_throughput_and_percentiles() {
    let run = reports::synthetic::synthetic_run(30, 1);
    let m = Measurements::from_run(&run);
    assert_eq!(m.get(GateMetric::Throughput), run.throughput());
    let ttft_p99 = run
        .percentile(reports::model::Metric::Ttft, 0.99)
        .expect("the synthetic run streams");
    assert_eq!(m.get(GateMetric::TtftP99), Some(ttft_p99 as f64));
    assert_eq!(
        m.get(GateMetric::OverheadP50).is_some(),
        run.percentile(reports::model::Metric::Overhead, 0.5)
            .is_some()
    );
}
