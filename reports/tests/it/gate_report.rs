//! The load gate's report: input validation, `gate.json`, `gate.html`, the console table and
//! the exit codes the harness returns.

use reports::gate::{
    CapacityProbe, GateError, GateLevel, GateMetric, GateOptions, GateReport, GateRuns,
    GateSubject, Measurements, Round, RoundKind, Tolerance, Verdict, evaluate,
};
use reports::overhead::Load;

use crate::common::{quiet_gate_options, tempdir};

/// One request at a time, plain.
fn c1() -> GateLevel {
    GateLevel {
        load: Load::Closed { concurrency: 1 },
        stream: false,
    }
}

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
        GateSubject::new("main@1a2b3c", "feature@4d5e6f"),
        vec![(
            c1(),
            GateRuns {
                ab: rounds(cand_rps, cand_p99),
                aa: rounds(1_000.0, 900.0),
            },
        )],
        &quiet_gate_options(),
    )
    .expect("a complete gate")
}

#[test]
fn verdicts_map_to_the_design_exit_codes() {
    let slower = gate(880.0, 900.0);
    assert_eq!(slower.verdict, Verdict::Regression);
    assert_eq!(slower.exit_code(), 3);
    let throughput = &slower.levels[0].metrics[0];
    assert_eq!(throughput.metric, GateMetric::Throughput);
    assert!((throughput.ab.change + 0.12).abs() < 0.01, "{throughput:?}");
    assert!(throughput.ab.interval.1 < -0.03);
    assert_eq!(slower.levels[0].metrics[1].verdict, Verdict::Unchanged);

    let faster = gate(1_000.0, 700.0);
    assert_eq!(faster.verdict, Verdict::Improvement);
    assert_eq!(faster.exit_code(), 0);
    assert_eq!(gate(1_000.0, 900.0).verdict, Verdict::Unchanged);
    assert_eq!(gate(1_000.0, 900.0).exit_code(), 0);
}

/// The gate of `runs` at one request at a time, with the quiet machine's tolerances.
fn judge(runs: GateRuns) -> GateReport {
    evaluate(
        GateSubject::new("a", "b"),
        vec![(c1(), runs)],
        &quiet_gate_options(),
    )
    .expect("a complete gate")
}

/// A gate whose A/A rounds swing by ±15% between sides, with the candidate's throughput at
/// `cand_rps` (the base's is 1,000).
fn against_a_swinging_self_check(cand_rps: f64) -> GateReport {
    let mut runs = GateRuns {
        ab: rounds(cand_rps, 900.0),
        aa: rounds(1_000.0, 900.0),
    };
    for (i, round) in runs.aa.iter_mut().enumerate() {
        let swing = if i % 2 == 0 { 1.15 } else { 0.85 };
        round.b = [run(1_000.0 * swing, 900.0), run(1_000.0 * swing, 900.0)];
    }
    judge(runs)
}

#[test]
fn a_change_within_the_self_checks_noise_is_inconclusive() {
    let report = against_a_swinging_self_check(880.0);
    assert_eq!(report.levels[0].metrics[0].verdict, Verdict::Inconclusive);
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert_eq!(report.exit_code(), 4);
    assert!(
        report.summary().contains("too noisy"),
        "{}",
        report.summary()
    );
}

#[test]
fn a_steady_candidate_is_unchanged_however_noisy_the_self_check() {
    // The A/B interval lies within the tolerance: whatever the A/A rounds did, the candidate
    // moved less than what matters.
    let report = against_a_swinging_self_check(1_000.0);
    assert_eq!(report.verdict, Verdict::Unchanged, "{report}");
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn an_interval_across_the_tolerance_is_inconclusive() {
    // Rounds 1% to 6% slower: about the tolerance's size, and it cannot tell which side.
    let ab = (0..6)
        .map(|i| {
            let cand = 1_000.0 * (0.99 - 0.01 * f64::from(i));
            Round::abba(
                run(1_000.0, 900.0),
                run(cand, 900.0),
                run(cand, 900.0),
                run(1_000.0, 900.0),
            )
        })
        .collect();
    let runs = GateRuns {
        ab,
        aa: rounds(1_000.0, 900.0),
    };
    let report = judge(runs);
    let throughput = &report.levels[0].metrics[0];
    let (low, high) = throughput.ab.interval;
    assert!(low < -0.03 && high > -0.03, "{throughput:?}");
    assert_eq!(throughput.verdict, Verdict::Inconclusive);
    assert!(
        throughput.reason().contains("straddles"),
        "{}",
        throughput.reason()
    );
    assert_eq!(report.exit_code(), 4);
}

/// A gate whose candidate's throughput is the base's and whose overhead p99 moves by
/// `p99_moves(i)` in A/B round `i`.
fn with_a_moving_tail(p99_moves: impl Fn(i32) -> f64) -> GateReport {
    let ab = (0..6)
        .map(|i| {
            let p99 = 900.0 * p99_moves(i);
            Round::abba(
                run(1_000.0, 900.0),
                run(1_000.0, p99),
                run(1_001.0, p99),
                run(1_000.0, 900.0),
            )
        })
        .collect();
    let runs = GateRuns {
        ab,
        aa: rounds(1_000.0, 900.0),
    };
    judge(runs)
}

#[test]
fn an_undecided_tail_does_not_hold_the_gate_inconclusive() {
    // The p99 swings from 20% lower to 40% higher: across the 10% tolerance both ways.
    let report = with_a_moving_tail(|i| [0.8, 1.4, 0.9, 1.3, 1.0, 1.2][i as usize]);
    let [throughput, tail] = &report.levels[0].metrics[..] else {
        panic!("two metrics: {report}");
    };
    assert_eq!(throughput.verdict, Verdict::Unchanged, "{report}");
    assert_eq!(tail.metric, GateMetric::OverheadP99);
    assert_eq!(tail.verdict, Verdict::Inconclusive, "{report}");
    assert!(!tail.decides());
    assert_eq!(tail.verdict_label(), "inconclusive tail");
    assert!(tail.reason().contains("a tail"), "{}", tail.reason());
    assert_eq!(report.levels[0].verdict, Verdict::Unchanged);
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .summary()
            .contains("undecided tails: c=1 plain overhead p99"),
        "{}",
        report.summary()
    );
    assert!(report.to_string().contains("inconclusive tail"), "{report}");
}

#[test]
fn a_tail_that_clearly_rose_still_fails_the_gate() {
    let report = with_a_moving_tail(|i| 1.5 + 0.01 * f64::from(i));
    let tail = &report.levels[0].metrics[1];
    assert_eq!(tail.verdict, Verdict::Regression, "{report}");
    assert!(tail.decides());
    assert_eq!(report.exit_code(), 3);
}

#[test]
fn the_default_tolerances_catch_the_ci_check_and_pass_the_noise_it_saw() {
    // What the CI check's gate measured (docs/performance-gates.md): the candidate's overhead
    // p50 about 45% above the base's, A/A rounds within ±9%; throughput and overhead p99 of
    // both builds moving by up to 20% and 45% from round to round.
    let with = |rps: f64, p50: f64, p99: f64| {
        Measurements::new()
            .with(GateMetric::Throughput, rps)
            .and_then(|m| m.with(GateMetric::OverheadP50, p50))
            .and_then(|m| m.with(GateMetric::OverheadP99, p99))
            .expect("positive values")
    };
    let swing = |i: usize, by: f64| {
        if i.is_multiple_of(2) {
            1.0 + by
        } else {
            1.0 / (1.0 + by)
        }
    };
    let rounds = |cand_p50: f64| -> Vec<Round> {
        (0..6)
            .map(|i| {
                let (rps, p99) = (500.0 * swing(i, 0.04), 500.0 * swing(i + 1, 0.2));
                Round::abba(
                    with(500.0, 150.0, 500.0),
                    with(rps, cand_p50 * swing(i, 0.03), p99),
                    with(rps, cand_p50, p99),
                    with(500.0, 150.0 * swing(i, 0.03), 500.0),
                )
            })
            .collect()
    };
    let judge = |cand_p50: f64| {
        let runs = GateRuns {
            ab: rounds(cand_p50),
            aa: rounds(150.0),
        };
        evaluate(
            GateSubject::new("a", "b"),
            vec![(c1(), runs)],
            &GateOptions::default(),
        )
        .expect("a complete gate")
    };
    let slower = judge(150.0 * 1.45);
    assert_eq!(slower.verdict, Verdict::Regression, "{slower}");
    assert_eq!(slower.levels[0].metrics[1].metric, GateMetric::OverheadP50);
    assert_eq!(slower.levels[0].metrics[1].verdict, Verdict::Regression);
    let same = judge(150.0);
    assert_eq!(same.verdict, Verdict::Unchanged, "{same}");
}

#[test]
fn gate_json_round_trips_and_gate_html_is_self_contained() {
    let report = gate(880.0, 900.0);
    let dir = tempdir();
    report.write(dir.path()).expect("written");

    let json = std::fs::read_to_string(dir.path().join("gate.json")).expect("gate.json");
    let read: GateReport = serde_json::from_str(&json).expect("valid gate.json");
    // JSON keeps every number to within a unit in the last place.
    assert_eq!(read.verdict, report.verdict);
    assert_eq!(read.settings, report.settings);
    for (read, written) in read.levels[0].metrics.iter().zip(&report.levels[0].metrics) {
        assert_eq!(
            (read.metric, read.verdict),
            (written.metric, written.verdict)
        );
        assert!((read.ab.change - written.ab.change).abs() < 1e-12);
        assert!((read.aa.interval.1 - written.aa.interval.1).abs() < 1e-12);
    }
    assert_eq!(read.levels[0].runs.ab.len(), 6);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["verdict"], "regression");
    let level = &value["levels"][0];
    assert_eq!(level["level"]["load"]["model"], "closed");
    assert_eq!(level["metrics"][0]["metric"], "throughput");
    assert_eq!(value["settings"]["tolerances"]["throughput"], 0.03);
    assert_eq!(value["settings"]["tolerances"]["errors"], 0.001);
    assert_eq!(
        level["runs"]["ab"][0]["a"][0]["values"]["throughput"],
        1_000.0
    );
    assert_eq!(level["not_measured"][0], "error_rate");

    let html = std::fs::read_to_string(dir.path().join("gate.html")).expect("gate.html");
    assert!(html.contains("default-src 'none'"));
    for loader in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(loader), "gate.html contains {loader}");
    }
    assert!(html.contains("REGRESSION"));
    assert!(html.contains("main@1a2b3c") && html.contains("feature@4d5e6f"));
    assert_eq!(html.matches("<svg").count(), report.levels[0].metrics.len());
    assert!(html.contains(
        "c=1 plain: not measured by any run: errors, added p50, added p99, overhead p50, ttft p50, ttft p99"
    ));
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
    assert!(lines[0].starts_with("gate: base main@1a2b3c vs candidate feature@4d5e6f"));
    assert!(lines[1].starts_with("level") && lines[1].contains("A/A interval"));
    assert!(lines[2].starts_with("c=1 plain  throughput") && lines[2].ends_with("REGRESSION"));
    assert!(lines[3].contains("overhead p99") && lines[3].ends_with("unchanged"));
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("REGRESSION (exit 3): c=1 plain throughput: -12"))
    );
}

#[test]
fn the_same_runs_give_the_same_report() {
    assert_eq!(gate(950.0, 930.0), gate(950.0, 930.0));
}

#[test]
fn bad_input_gets_an_error_naming_it() {
    let options = quiet_gate_options();
    let subject = || GateSubject::new("a", "b");

    let few = GateRuns {
        ab: rounds(1_000.0, 900.0)[..5].to_vec(),
        aa: rounds(1_000.0, 900.0),
    };
    let error = evaluate(subject(), vec![(c1(), few)], &options).expect_err("5 rounds");
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
    let error =
        evaluate(subject(), vec![(c1(), partial)], &options).expect_err("a run without overhead");
    assert_eq!(
        error.to_string(),
        "c=1 plain: A/A round 3, run 3 has no overhead p99, but other runs of the gate have it"
    );

    // A run whose every answer failed has no latencies, and is no broken run: its round is
    // left out of the latency metrics, and the error rate judges it.
    let mut failed = GateRuns {
        ab: rounds(1_000.0, 900.0),
        aa: rounds(1_000.0, 900.0),
    };
    for round in failed.ab.iter_mut().chain(failed.aa.iter_mut()) {
        for run in round.a.iter_mut().chain(round.b.iter_mut()) {
            *run = run
                .clone()
                .with(GateMetric::ErrorRate, 0.0)
                .expect("a share");
        }
    }
    failed.ab[1].b[0] = Measurements::new()
        .with(GateMetric::Throughput, 0.001)
        .and_then(|m| m.with(GateMetric::ErrorRate, 1.0))
        .expect("valid");
    let report = evaluate(subject(), vec![(c1(), failed)], &options).expect("judged");
    let judged: Vec<GateMetric> = report.levels[0].metrics.iter().map(|m| m.metric).collect();
    assert!(
        judged.contains(&GateMetric::OverheadP99) && judged.contains(&GateMetric::ErrorRate),
        "{judged:?}"
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
        evaluate(subject(), vec![(c1(), empty)], &options),
        Err(GateError::NothingMeasured)
    ));
    assert!(matches!(
        evaluate(subject(), Vec::new(), &options),
        Err(GateError::NoLevels)
    ));
    let error = Measurements::new()
        .with(GateMetric::ErrorRate, 1.5)
        .expect_err("a share above 1");
    assert_eq!(error.to_string(), "errors: 1.5 is not a share from 0 to 1");
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
    // Metrics by label, `_` for the space; setting one leaves the others.
    let metric = "added_p99".parse::<GateMetric>().expect("a metric");
    assert_eq!(metric, GateMetric::AddedP99);
    assert_eq!(
        "errors".parse::<GateMetric>().ok(),
        Some(GateMetric::ErrorRate)
    );
    let error = "latency".parse::<GateMetric>().expect_err("no such metric");
    assert!(
        error.to_string().starts_with("unknown metric `latency`"),
        "{error}"
    );
    let mut tolerances = GateOptions::default().tolerances;
    tolerances.set(metric, "20%".parse().expect("20%"));
    assert_eq!(tolerances.of(GateMetric::AddedP99).fraction(), 0.2);
    assert_eq!(
        tolerances.of(GateMetric::AddedP50),
        GateOptions::default().tolerances.of(GateMetric::AddedP50)
    );
}

#[test]
fn more_confidence_needs_more_rounds() {
    let confidence = |c: f64| reports::gate::Confidence::new(c).expect("valid");
    assert_eq!(confidence(0.95).min_rounds(), 6);
    assert_eq!(confidence(0.99).min_rounds(), 8);
    assert!(reports::gate::Confidence::new(1.0).is_err());
}

/// A run at one level: throughput, error rate and added latency p50.
fn with_errors(rps: f64, errors: f64, added_us: f64) -> Measurements {
    Measurements::new()
        .with(GateMetric::Throughput, rps)
        .and_then(|m| m.with(GateMetric::ErrorRate, errors))
        .and_then(|m| m.with(GateMetric::AddedP50, added_us))
        .expect("valid values")
}

/// Six rounds whose base runs fail `base_errors` of requests and candidate runs
/// `cand_errors`, with candidate latency `cand_added_us`.
fn error_rounds(base_errors: f64, cand_errors: f64, cand_added_us: f64) -> Vec<Round> {
    (0..6)
        .map(|i| {
            let wobble = f64::from(i % 3) * 0.0005;
            Round::abba(
                with_errors(1_000.0, base_errors, 200.0),
                with_errors(1_000.0, cand_errors + wobble, cand_added_us),
                with_errors(1_000.0, cand_errors, cand_added_us),
                with_errors(1_000.0, base_errors + wobble, 200.0),
            )
        })
        .collect()
}

fn error_gate(cand_errors: f64, cand_added_us: f64) -> GateReport {
    evaluate(
        GateSubject::new("a", "b"),
        vec![(
            c1(),
            GateRuns {
                ab: error_rounds(0.0, cand_errors, cand_added_us),
                aa: error_rounds(0.0, 0.0, 200.0),
            },
        )],
        &quiet_gate_options(),
    )
    .expect("a complete gate")
}

#[test]
fn more_errors_are_a_regression_even_when_the_candidate_is_faster() {
    // 5% of the candidate's requests fail at once, so its latency looks 40% better.
    let report = error_gate(0.05, 120.0);
    let metric = |m: GateMetric| {
        report.levels[0]
            .metrics
            .iter()
            .find(|g| g.metric == m)
            .expect("judged")
    };
    let errors = metric(GateMetric::ErrorRate);
    assert_eq!(errors.verdict, Verdict::Regression, "{errors:?}");
    assert!((errors.ab.change - 0.05).abs() < 0.001, "{errors:?}");
    assert!(
        (errors.cand - 0.05).abs() < 0.001 && errors.base < 0.001,
        "{errors:?}"
    );
    assert_eq!(metric(GateMetric::AddedP50).verdict, Verdict::Improvement);
    assert_eq!(report.verdict, Verdict::Regression);
    assert_eq!(report.exit_code(), 3);
    let text = report.to_string();
    assert!(
        text.contains("±0.1 pp") && text.contains("+5.0 pp"),
        "{text}"
    );
    assert!(
        report.summary().contains("c=1 plain errors: +5.0 pp"),
        "{}",
        report.summary()
    );
}

#[test]
fn errors_within_the_tolerance_or_the_noise_are_not_a_regression() {
    // 0.05 points more: within the 0.1-point tolerance.
    let small = error_gate(0.0005, 200.0);
    assert_ne!(small.verdict, Verdict::Regression, "{small}");
    // A base that fails 2% of requests in some A/A runs and not in others: a candidate 2
    // points worse is within that noise.
    let mut runs = GateRuns {
        ab: error_rounds(0.0, 0.02, 200.0),
        aa: error_rounds(0.0, 0.0, 200.0),
    };
    for (i, round) in runs.aa.iter_mut().enumerate() {
        let errors = if i % 2 == 0 { 0.04 } else { 0.0 };
        round.b = [
            with_errors(1_000.0, errors, 200.0),
            with_errors(1_000.0, errors, 200.0),
        ];
    }
    let noisy = evaluate(
        GateSubject::new("a", "b"),
        vec![(c1(), runs)],
        &quiet_gate_options(),
    )
    .expect("a complete gate");
    let errors = &noisy.levels[0].metrics[1];
    assert_eq!(errors.metric, GateMetric::ErrorRate);
    assert_eq!(errors.verdict, Verdict::Inconclusive, "{errors:?}");
}

#[test]
fn saturated_runs_and_the_probe_are_recorded_and_shown() {
    let mut runs = GateRuns {
        ab: rounds(1_000.0, 900.0),
        aa: rounds(1_000.0, 900.0),
    };
    runs.ab[1].b[0].lag_max_us = 45_000;
    runs.aa[0].a[1].dropped = 3;
    runs.ab[0].a[0].steal_percent = Some(22.0);
    runs.ab[0].b[0].steal_percent = Some(4.9);
    runs.aa[1].b[1].steal_percent = Some(7.0);
    let open = GateLevel {
        load: Load::Open { rate: 250.0 },
        stream: true,
    };
    let mut subject = GateSubject::new("a", "b");
    subject.probe = Some(CapacityProbe {
        concurrency: 16,
        secs: 2.0,
        capacity: 500.0,
        rate: 250.0,
    });
    let report = evaluate(
        subject,
        vec![(c1(), rounds_pair()), (open, runs)],
        &quiet_gate_options(),
    )
    .expect("a complete gate");
    assert!(report.levels[0].saturated.is_empty());
    let saturated: Vec<String> = report.levels[1]
        .saturated
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(saturated, ["A/B round 2, run 2", "A/A round 1, run 4"]);
    let text = report.to_string();
    assert!(
        text.contains(
            "250/s streamed: load generator saturated in 2 of 48 runs (first: A/B round 2, run 2)"
        ),
        "{text}"
    );
    assert!(
        text.contains("open-model rate 250/s: 50.0% of the base's capacity of 500 req/s"),
        "{text}"
    );
    assert!(
        text.contains(
            "250/s streamed: the machine's hypervisor took 5% or more of its CPU time (steal) in \
             2 of the 3 runs that read it, up to 22%"
        ),
        "{text}"
    );
    assert!(
        !text.contains("c=1 plain: the machine's"),
        "no steal read there: {text}"
    );

    let dir = tempdir();
    report.write(dir.path()).expect("written");
    let json = std::fs::read_to_string(dir.path().join("gate.json")).expect("gate.json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["subject"]["probe"]["capacity"], 500.0);
    assert_eq!(value["levels"][1]["saturated"][0]["round"], 2);
    assert_eq!(
        value["levels"][1]["runs"]["ab"][1]["b"][0]["lag_max_us"],
        45_000
    );
    let read: GateReport = serde_json::from_str(&json).expect("reads back");
    assert_eq!(read.levels[1].saturated.len(), 2);
    let html = std::fs::read_to_string(dir.path().join("gate.html")).expect("gate.html");
    // minijinja writes `/` as `&#x2f;`.
    assert!(
        html.contains("round 2, run 2; A&#x2f;A round 1, run 4"),
        "saturated runs listed"
    );
    assert!(html.contains("open-model rate 250&#x2f;s"));
    assert!(
        html.contains("in 2 of the 3 runs that read it"),
        "steal named"
    );
}

fn rounds_pair() -> GateRuns {
    GateRuns {
        ab: rounds(1_000.0, 900.0),
        aa: rounds(1_000.0, 900.0),
    }
}
