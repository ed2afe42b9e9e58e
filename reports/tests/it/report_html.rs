//! `report.html` content without a browser: sections, SLO table, units, escaping, size.

use reports::html::render_report;
use reports::model::{Interval, Metric};
use reports::slo::{evaluate, parse_slos};
use reports::synthetic::synthetic_sweep;

use crate::common::{histogram, small_run};

#[test]
fn report_shows_the_verdict_and_every_section() {
    let mut run = small_run();
    let slos = parse_slos(
        "[[slo]]\nmetric = \"latency\"\nstat = \"p50\"\nop = \"<\"\nvalue = \"150ms\"\n\
         [[slo]]\nmetric = \"error_rate\"\nstat = \"ratio\"\nop = \"<\"\nvalue = \"1%\"\nabort = true\n",
    )
    .expect("valid");
    run.slo_results = evaluate(&slos, &run);
    let html = render_report(&run).expect("renders");

    assert!(html.contains(r#"<div class="banner fail"><strong>FAIL</strong>"#));
    assert!(html.contains("1 of 2 service level objectives were not met."));
    assert!(html.contains("<td>error_rate ratio</td><td class=\"num\">&lt; 1%</td><td class=\"num\">25%</td><td class=\"fail\">FAIL</td><td>yes</td>"), "SLO row with limit and measured");
    for section in [
        "id=\"verdict\"",
        "id=\"key-numbers\"",
        "id=\"load\"",
        "id=\"latency\"",
        "id=\"distributions\"",
        "id=\"errors\"",
        "id=\"gateway\"",
        "id=\"cost\"",
        "id=\"environment\"",
    ] {
        assert!(html.contains(section), "{section} missing");
    }
    for axis in [
        "time since start (s)",
        "requests per second (1/s)",
        "e2e latency (ms)",
        "TTFT (ms)",
        "percentile (log scale)",
        "resident set size (MiB)",
    ] {
        assert!(html.contains(axis), "axis label {axis:?} missing");
    }
    assert!(html.contains("No estimate: no price for model `m1`"));
    assert!(!html.contains("stopped early"));

    run.stopped_early = Some("ttft p99 < 100ms was lost after 12 s".into());
    let html = render_report(&run).expect("renders");
    assert!(html.contains("The run was stopped early: ttft p99 &lt; 100ms was lost after 12 s"));
    assert!(!html.contains("<script"));
}

#[test]
fn a_sweep_that_passed_above_a_failure_says_to_read_it_twice() {
    let mut run = small_run();
    run.sweep = Some(synthetic_sweep(&[
        (10.0, true, false),
        (20.0, false, false),
        (30.0, true, false),
    ]));
    let html = render_report(&run).expect("renders");
    assert!(html.contains("Bounded by the target"), "no sweep sentence");
    assert!(
        html.contains("met every SLO again after 20.0 req"),
        "no recovery"
    );

    run.sweep = Some(synthetic_sweep(&[
        (10.0, true, false),
        (20.0, false, false),
    ]));
    let html = render_report(&run).expect("renders");
    assert!(html.contains("Bounded by the target"), "no sweep sentence");
    assert!(!html.contains("met every SLO again"));
}

#[test]
fn a_run_without_slos_says_so_and_passes_nothing_off_as_met() {
    let html = render_report(&small_run()).expect("renders");
    assert!(html.contains(r#"<div class="banner none"><strong>NO SLOs</strong>"#));
}

#[test]
fn config_values_are_escaped_and_secrets_hidden() {
    let mut run = small_run();
    run.config
        .insert("note".into(), "<script>alert(1)</script>".into());
    run.config.insert("api_key".into(), "sk-secret".into());
    let html = render_report(&run).expect("renders");
    assert!(!html.contains("<script>alert(1)"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;")
    );
    assert!(!html.contains("sk-secret"));
    assert!(html.contains("&lt;redacted&gt;"));
}

#[test]
fn long_runs_are_downsampled_for_drawing_only() {
    // 2,000 seconds of 10 ms requests with one 900 ms spike.
    let mut run = small_run();
    run.intervals.clear();
    for second in 0..2_000 {
        let mut interval = Interval::new(second);
        interval.counters.requests = 1;
        interval.counters.ok = 1;
        let latency = if second == 1_234 { 900_000 } else { 10_000 };
        interval
            .histograms
            .insert(Metric::Latency, &histogram(&[latency]));
        run.push_interval(interval);
    }
    let html = render_report(&run).expect("renders");
    assert!(html.len() < 5_000_000, "{} bytes", html.len());

    let latency_chart = html
        .split("e2e latency percentiles per second</title>")
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .expect("latency chart");
    let points: Vec<usize> = latency_chart
        .split(r#"class="series" d=""#)
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap_or("")
                .matches(['M', 'L'])
                .count()
        })
        .collect();
    assert_eq!(points.len(), 3, "p50, p95, p99");
    for n in points {
        assert!((100..2_000).contains(&n), "drawn with {n} of 2,000 points");
    }
    // The spike survives downsampling: the axis reaches it.
    assert!(
        latency_chart.contains(">1000</text>"),
        "axis top at 1000 ms"
    );
    assert_eq!(run.intervals.len(), 2_000, "the data is not thinned");
}
