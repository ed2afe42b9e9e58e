//! SLO files: parsing, errors that name the line and field, evaluation.

use std::time::Duration;

use reports::model::{GatewaySample, Interval, Metric};
use reports::slo::{
    ABORT_MIN_REQUESTS, Op, Quantity, SloMetric, SloStatus, Stat, evaluate, evaluate_partial,
    parse_slos,
};

use crate::common::{histogram, reported, small_run, tempdir};

fn error_of(text: &str) -> String {
    parse_slos(text).expect_err("must be rejected").to_string()
}

#[test]
fn parses_every_value_kind() {
    let slos = parse_slos(
        r#"
        [[slo]]
        metric = "ttft"
        stat = "p95"
        op = "<"
        value = "250ms"
        abort = true

        [[slo]]
        metric = "e2e"
        stat = "max"
        op = "<="
        value = "1.5s"

        [[slo]]
        metric = "itl"
        stat = "mean"
        op = "<"
        value = "200us"

        [[slo]]
        metric = "error_rate"
        stat = "ratio"
        op = "<"
        value = "1%"

        [[slo]]
        metric = "throughput"
        stat = "rate"
        op = ">="
        value = 100
        "#,
    )
    .expect("valid file");
    assert_eq!(slos.len(), 5);
    assert_eq!(slos[0].metric, SloMetric::Histogram(Metric::Ttft));
    assert_eq!(slos[0].stat, Stat::P95);
    assert_eq!(slos[0].op, Op::Lt);
    assert_eq!(
        slos[0].value,
        Quantity::Duration(Duration::from_millis(250))
    );
    assert!(slos[0].abort);
    assert_eq!(slos[1].metric, SloMetric::Histogram(Metric::Latency));
    assert_eq!(
        slos[1].value,
        Quantity::Duration(Duration::from_millis(1500))
    );
    assert!(!slos[1].abort, "abort defaults to false");
    assert_eq!(
        slos[2].value,
        Quantity::Duration(Duration::from_micros(200))
    );
    assert_eq!(slos[3].value, Quantity::Ratio(0.01));
    assert_eq!(slos[4].value, Quantity::Number(100.0));
    assert_eq!(slos[0].to_string(), "ttft p95 < 250ms");
    assert!(
        parse_slos("")
            .expect("an empty file has no SLOs")
            .is_empty()
    );
}

#[test]
fn unknown_metric_names_line_and_field() {
    let error =
        error_of("[[slo]]\nmetric = \"tfft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"250ms\"\n");
    assert!(error.contains("line 2"), "{error}");
    assert!(error.contains("field `metric`"), "{error}");
    assert!(error.contains("unknown metric `tfft`"), "{error}");
    assert!(error.contains("ttft"), "lists the valid names: {error}");
    assert_eq!(error.lines().count(), 1, "one line: {error}");
}

#[test]
fn unknown_or_inapplicable_stat_names_line_and_field() {
    let error =
        error_of("[[slo]]\nmetric = \"ttft\"\nstat = \"p97\"\nop = \"<\"\nvalue = \"250ms\"\n");
    assert!(
        error.contains("line 3") && error.contains("field `stat`"),
        "{error}"
    );
    assert!(error.contains("unknown stat `p97`"), "{error}");

    let error =
        error_of("[[slo]]\nmetric = \"throughput\"\nstat = \"p95\"\nop = \">\"\nvalue = 10\n");
    assert!(error.contains("line 3"), "{error}");
    assert!(
        error.contains("`p95` does not apply to `throughput`"),
        "{error}"
    );
}

#[test]
fn bad_values_name_line_and_field() {
    let bad_duration = error_of(
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"250 parsecs\"\n",
    );
    assert!(
        bad_duration.contains("line 5") && bad_duration.contains("field `value`"),
        "{bad_duration}"
    );
    assert!(
        bad_duration.contains("`250 parsecs` is not a duration"),
        "{bad_duration}"
    );

    let wrong_kind =
        error_of("[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"5%\"\n");
    assert!(wrong_kind.contains("line 5"), "{wrong_kind}");
    assert!(
        wrong_kind.contains("ttft p95 needs a duration like \"250ms\""),
        "{wrong_kind}"
    );

    let bare_number =
        error_of("[[slo]]\nmetric = \"error_rate\"\nstat = \"ratio\"\nop = \"<\"\nvalue = 0.01\n");
    assert!(
        bare_number.contains("needs a percentage like \"1%\""),
        "{bare_number}"
    );

    let negative =
        error_of("[[slo]]\nmetric = \"throughput\"\nstat = \"rate\"\nop = \">\"\nvalue = -5\n");
    assert!(
        negative.contains("line 5") && negative.contains("`-5` is not"),
        "{negative}"
    );

    let bad_op =
        error_of("[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"=<\"\nvalue = \"1s\"\n");
    assert!(
        bad_op.contains("line 4") && bad_op.contains("field `op`"),
        "{bad_op}"
    );
}

#[test]
fn missing_and_unknown_fields_are_named() {
    let missing = error_of("\n[[slo]]\nmetric = \"ttft\"\nop = \"<\"\nvalue = \"1s\"\n");
    assert!(missing.contains("missing field `stat`"), "{missing}");
    assert!(missing.contains("line 2"), "{missing}");

    let unknown = error_of(
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"1s\"\nabrot = true\n",
    );
    assert!(unknown.contains("abrot"), "{unknown}");
    assert!(unknown.contains("line 6"), "{unknown}");

    let not_toml = error_of("[[slo]\nmetric = ");
    assert!(not_toml.contains("line 1"), "{not_toml}");
}

#[test]
fn load_slos_prefixes_the_path() {
    let dir = tempdir();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[slo]]\nmetric = \"nope\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"1s\"\n",
    )
    .expect("write");
    let error = reports::slo::load_slos(&path).expect_err("bad").to_string();
    assert!(error.contains("bad.toml: line 2"), "{error}");
    let error = reports::slo::load_slos(&dir.path().join("absent.toml"))
        .expect_err("missing")
        .to_string();
    assert!(error.contains("absent.toml"), "{error}");
}

#[test]
fn evaluation_reports_measured_against_limit() {
    let run = small_run();
    let slos = parse_slos(
        r#"
        [[slo]]
        metric = "latency"
        stat = "p50"
        op = "<"
        value = "150ms"
        [[slo]]
        metric = "latency"
        stat = "max"
        op = "<"
        value = "150ms"
        [[slo]]
        metric = "error_rate"
        stat = "ratio"
        op = "<"
        value = "30%"
        [[slo]]
        metric = "throughput"
        stat = "rate"
        op = ">="
        value = 2
        [[slo]]
        metric = "tpot"
        stat = "p99"
        op = "<"
        value = "50ms"
        [[slo]]
        metric = "dropped"
        stat = "ratio"
        op = "<="
        value = "50%"
        "#,
    )
    .expect("valid");
    let results = evaluate(&slos, &run);
    let statuses: Vec<SloStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            SloStatus::Pass,
            SloStatus::Fail,
            SloStatus::Pass,
            SloStatus::Fail,
            SloStatus::NoData,
            SloStatus::Pass
        ]
    );
    assert_eq!(
        results[0].measured,
        Some(Quantity::Duration(Duration::from_micros(reported(100_000))))
    );
    assert_eq!(results[2].measured, Some(Quantity::Ratio(0.25)));
    assert_eq!(results[3].measured, Some(Quantity::Number(4.0 / 3.0)));
    assert_eq!(results[4].measured, None);
    assert!(!results[4].passed(), "no data is not a pass");
}

#[test]
fn rss_growth_ignores_warm_up_and_sees_a_leak() {
    let mut run = small_run();
    run.gateway.clear();
    for second in 0..100 {
        // Warm-up jumps from 10 MB to 50 MB, then a steady leak of 10 kB/s.
        let rss = if second < 10 {
            10_000_000
        } else {
            50_000_000 + (second - 10) * 10_000
        };
        run.push_gateway_sample(GatewaySample {
            second: second as u32,
            rss_bytes: Some(rss),
            ..GatewaySample::default()
        });
    }
    let slos = parse_slos(
        "[[slo]]\nmetric = \"rss_growth\"\nstat = \"ratio\"\nop = \"<\"\nvalue = \"5%\"\n\
         [[slo]]\nmetric = \"rss_growth\"\nstat = \"slope\"\nop = \"<\"\nvalue = \"10%\"\n",
    )
    .expect("valid");
    let results = evaluate(&slos, &run);
    let Some(Quantity::Ratio(growth)) = results[0].measured else {
        panic!("growth measured: {:?}", results[0]);
    };
    // From about 50.05 MB to 50.85 MB: 1.6%, far below the 400% of the warm-up jump.
    assert!((0.01..0.02).contains(&growth), "{growth}");
    assert_eq!(results[0].status, SloStatus::Pass);
    let Some(Quantity::Ratio(per_hour)) = results[1].measured else {
        panic!("slope measured: {:?}", results[1]);
    };
    // 10 kB/s is 36 MB/h on about 50.4 MB: about 71% per hour.
    assert!((0.70..0.73).contains(&per_hour), "{per_hour}");
    assert_eq!(results[1].status, SloStatus::Fail);
}

#[test]
fn partial_evaluation_waits_for_enough_requests_and_reports_only_aborting_slos() {
    let slos = parse_slos(
        "[[slo]]\nmetric = \"ttft\"\nstat = \"p99\"\nop = \"<\"\nvalue = \"100ms\"\nabort = true\n\
         [[slo]]\nmetric = \"ttft\"\nstat = \"p50\"\nop = \"<\"\nvalue = \"100ms\"\n",
    )
    .expect("valid");
    let mut run = small_run();
    let slow = |second: u32, requests: u64| {
        let mut interval = Interval::new(second);
        interval.counters.requests = requests;
        interval.counters.ok = requests;
        interval
            .histograms
            .insert(Metric::Ttft, &histogram(&vec![500_000; requests as usize]));
        interval
    };
    run.push_interval(slow(3, 50));
    assert!(run.totals.requests < ABORT_MIN_REQUESTS);
    assert!(
        evaluate_partial(&slos, &run).is_empty(),
        "too early to judge"
    );

    run.push_interval(slow(4, ABORT_MIN_REQUESTS));
    let lost = evaluate_partial(&slos, &run);
    assert_eq!(lost.len(), 1, "only the aborting SLO: {lost:?}");
    assert!(lost[0].slo.abort);
    assert_eq!(lost[0].status, SloStatus::Fail);
}

#[test]
fn quantities_parse_and_print() {
    for (text, quantity) in [
        ("250ms", Quantity::Duration(Duration::from_millis(250))),
        ("1.5s", Quantity::Duration(Duration::from_millis(1500))),
        ("200us", Quantity::Duration(Duration::from_micros(200))),
        ("2m", Quantity::Duration(Duration::from_secs(120))),
        ("1%", Quantity::Ratio(0.01)),
        ("12.5", Quantity::Number(12.5)),
    ] {
        assert_eq!(text.parse::<Quantity>(), Ok(quantity), "{text}");
    }
    for bad in ["", "ms", "-5ms", "1.2.3s", "5 %x", "NaN"] {
        assert!(bad.parse::<Quantity>().is_err(), "{bad:?} must be rejected");
    }
    assert_eq!(
        Quantity::Duration(Duration::from_micros(48_100)).to_string(),
        "48.1ms"
    );
    assert_eq!(Quantity::Ratio(0.0125).to_string(), "1.25%");
}
