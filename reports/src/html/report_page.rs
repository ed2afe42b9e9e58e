//! The view of one run that `report.html` renders.

use serde::Serialize;

use super::{Fact, Figure, charts, fact, render};
use crate::cost::estimate;
use crate::error::ReportError;
use crate::model::{Limit, Metric, RunResult, Sweep, significant};
use crate::redact::redacted;
use crate::slo::{SloMetric, SloResult, SloStatus, Stat};
use crate::timeline::timeline;

#[derive(Serialize)]
struct ReportView {
    title: String,
    subtitle: String,
    verdict: Verdict,
    stopped_early: Option<String>,
    warnings: Vec<String>,
    slos: Vec<SloRow>,
    key_numbers: Vec<Fact>,
    percentiles: Vec<PercentileRow>,
    sweep: Option<SweepView>,
    load: Vec<Figure>,
    latency: Vec<Figure>,
    distributions: Vec<Figure>,
    errors: Vec<Figure>,
    gateway: Vec<Figure>,
    cost: Vec<Fact>,
    cost_note: Option<String>,
    environment: Vec<Fact>,
    config: String,
}

/// The banner at the top: one word and one sentence.
#[derive(Serialize)]
struct Verdict {
    /// CSS class: `pass`, `fail` or `none`.
    class: &'static str,
    word: &'static str,
    sentence: String,
}

#[derive(Serialize)]
struct SloRow {
    objective: String,
    limit: String,
    measured: String,
    status: String,
    class: &'static str,
    abort: bool,
}

/// A rate sweep: what bounded it, a row per level, and the knee charts.
#[derive(Serialize)]
struct SweepView {
    sentence: String,
    rows: Vec<SweepRow>,
    figures: Vec<Figure>,
}

#[derive(Serialize)]
struct SweepRow {
    offered: String,
    seconds: String,
    requests: u64,
    achieved: String,
    goodput: String,
    streams: String,
    ttft_p95: String,
    status: String,
    class: &'static str,
    saturated: bool,
}

#[derive(Serialize)]
struct PercentileRow {
    metric: String,
    unit: &'static str,
    values: Vec<String>,
    count: u64,
}

/// Renders `report.html` for `run`.
pub fn render_report(run: &RunResult) -> Result<String, ReportError> {
    let seconds = timeline(run);
    let distributions = [Metric::Ttft, Metric::Itl, Metric::Tpot, Metric::Latency]
        .into_iter()
        .filter_map(|metric| {
            let histogram = run.metrics.get(metric)?;
            let style = super::svg::Style::nth(0);
            Some(Figure::of(charts::distribution(
                metric,
                &[("whole run".to_owned(), style, histogram)],
            )))
        })
        .collect();
    let (cost, cost_note) = cost(run);
    let saturated = saturated_spans(run);
    let view = ReportView {
        title: format!("gatebench: {}", run.scenario),
        subtitle: format!(
            "{} to {} UTC, {} s",
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.ended_at.format("%H:%M:%S"),
            significant(run.wall_time.as_secs_f64())
        ),
        verdict: match &run.sweep {
            Some(sweep) => sweep_verdict(sweep, &run.slo_results),
            None => verdict(&run.slo_results),
        },
        stopped_early: run.stopped_early.clone(),
        warnings: run.warnings.clone(),
        slos: run.slo_results.iter().map(slo_row).collect(),
        key_numbers: key_numbers(run),
        percentiles: percentile_rows(run),
        sweep: run.sweep.as_ref().map(sweep_view),
        load: vec![
            Figure::shaded(charts::throughput(&seconds), &saturated),
            Figure::shaded(charts::users(&seconds), &saturated),
        ],
        latency: vec![
            Figure::shaded(
                charts::percentiles_over_time(&seconds, Metric::Latency),
                &saturated,
            ),
            Figure::shaded(
                charts::percentiles_over_time(&seconds, Metric::Ttft),
                &saturated,
            ),
        ],
        distributions,
        errors: if run.totals.errors.total() > 0 {
            vec![Figure::of(charts::errors(&seconds))]
        } else {
            Vec::new()
        },
        gateway: vec![
            Figure::of(charts::cache(&seconds)),
            Figure::of(charts::breaker(&seconds)),
            Figure::of(charts::queue(&seconds)),
            Figure::of(charts::rss(&seconds)),
            Figure::of(charts::cpu(&seconds)),
        ],
        cost,
        cost_note,
        environment: environment(run),
        config: toml::to_string_pretty(&redacted(&run.config))
            .unwrap_or_else(|e| format!("# the config cannot be shown as TOML: {e}")),
    };
    render("report.html", view)
}

/// The generator-saturated seconds as x ranges, consecutive seconds joined.
fn saturated_spans(run: &RunResult) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for second in run.saturated_seconds().into_iter().map(f64::from) {
        match spans.last_mut() {
            Some((_, end)) if *end == second => *end = second + 1.0,
            _ => spans.push((second, second + 1.0)),
        }
    }
    spans
}

/// A sweep passes when it found a capacity that meets every `capacity` SLO, and is
/// inconclusive when the generator saturated before the target failed.
fn sweep_verdict(sweep: &Sweep, capacity_slos: &[SloResult]) -> Verdict {
    let slos_met = capacity_slos.iter().all(SloResult::passed);
    match (sweep.limit(), sweep.capacity()) {
        (Limit::Generator, _) => Verdict {
            class: "none",
            word: "INCONCLUSIVE",
            sentence: "The load generator saturated before the target failed an SLO: the top \
                       rates describe the client, not the target."
                .to_owned(),
        },
        (_, Some(capacity)) if slos_met => Verdict {
            class: "pass",
            word: "PASS",
            sentence: format!(
                "Capacity {} req/s ({} streams in flight): the highest rate at which every SLO \
                 was met.",
                significant(capacity.rps),
                significant(capacity.streams)
            ),
        },
        (_, Some(_)) => verdict(capacity_slos),
        (_, None) => Verdict {
            class: "fail",
            word: "FAIL",
            sentence: "No rate of the sweep met every SLO.".to_owned(),
        },
    }
}

fn sweep_view(sweep: &Sweep) -> SweepView {
    let rows = sweep
        .levels
        .iter()
        .map(|level| SweepRow {
            offered: level.offered.to_string(),
            seconds: format!("{}-{}", level.start, level.end),
            requests: level.requests,
            achieved: significant(level.achieved_rps),
            goodput: significant(level.goodput_rps),
            streams: significant(level.streams),
            ttft_p95: level
                .ttft_p95_ms
                .map_or_else(|| "-".to_owned(), significant),
            status: if level.passed() {
                "met".to_owned()
            } else {
                format!("failed {}", level.failed.join("; "))
            },
            class: if level.passed() { "pass" } else { "fail" },
            saturated: level.saturated,
        })
        .collect();
    let sentence = match sweep.limit() {
        Limit::Generator => "Bounded by the load generator: it saturated at or below the first \
                             rate that failed an SLO."
            .to_owned(),
        Limit::Target => {
            let bounded = "Bounded by the target: a rate failed its SLOs while the generator \
                           kept up.";
            match sweep.recovery() {
                Some(recovery) => format!("{bounded} But {recovery}."),
                None => bounded.to_owned(),
            }
        }
        Limit::None => {
            "Every rate met its SLOs: the probe found no higher rate to offer.".to_owned()
        }
    };
    SweepView {
        sentence,
        rows,
        figures: vec![
            Figure::of(charts::knee_ttft(sweep)),
            Figure::of(charts::knee_goodput(sweep)),
        ],
    }
}

fn verdict(results: &[SloResult]) -> Verdict {
    let failed = results.iter().filter(|r| !r.passed()).count();
    match (results.len(), failed) {
        (0, _) => Verdict {
            class: "none",
            word: "NO SLOs",
            sentence: "No service level objectives were evaluated for this run.".to_owned(),
        },
        (total, 0) => Verdict {
            class: "pass",
            word: "PASS",
            sentence: format!("All {total} service level objectives were met."),
        },
        (total, failed) => Verdict {
            class: "fail",
            word: "FAIL",
            sentence: format!("{failed} of {total} service level objectives were not met."),
        },
    }
}

fn slo_row(result: &SloResult) -> SloRow {
    let slo = &result.slo;
    let unit = match (slo.metric, slo.stat) {
        (SloMetric::Histogram(Metric::OutputTokensPerS), _) => " tokens/s",
        (_, Stat::Rate) => " /s",
        _ => "",
    };
    SloRow {
        objective: format!("{} {}", slo.metric.name(), slo.stat.name()),
        limit: format!("{} {}{unit}", slo.op.symbol(), slo.value),
        measured: result
            .measured
            .map_or_else(|| "no data".to_owned(), |m| format!("{m}{unit}")),
        status: result.status.to_string(),
        class: match result.status {
            SloStatus::Pass => "pass",
            SloStatus::Fail | SloStatus::NoData => "fail",
        },
        abort: result.slo.abort,
    }
}

fn key_numbers(run: &RunResult) -> Vec<Fact> {
    let t = &run.totals;
    let rate = |v: Option<f64>, unit: &str| {
        v.map_or("n/a".to_owned(), |v| format!("{} {unit}", significant(v)))
    };
    let percent =
        |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{}%", significant(v * 100.0)));
    let pcts = |metric: Metric| {
        run.summary(metric).map_or("n/a".to_owned(), |s| {
            let unit = metric.unit();
            format!(
                "{} / {} / {} {}",
                significant(unit.to_display(s.p50 as f64)),
                significant(unit.to_display(s.p95 as f64)),
                significant(unit.to_display(s.p99 as f64)),
                unit.display_name()
            )
        })
    };
    let mut facts = vec![
        fact(
            "requests",
            format!("{} ({} ok, {} failed)", t.requests, t.ok, t.errors.total()),
        ),
        fact("throughput", rate(run.throughput(), "req/s")),
        fact("goodput", rate(run.goodput(), "req/s")),
        fact("error rate", percent(t.error_rate())),
        fact("e2e latency p50 / p95 / p99", pcts(Metric::Latency)),
        fact("TTFT p50 / p95 / p99", pcts(Metric::Ttft)),
        fact("ITL p50 / p95 / p99", pcts(Metric::Itl)),
        fact("TPOT p50 / p95 / p99", pcts(Metric::Tpot)),
        fact(
            "output tokens/s (aggregate)",
            rate(run.output_tokens_per_s(), "tokens/s"),
        ),
        fact("gateway overhead p50 / p95 / p99", pcts(Metric::Overhead)),
        fact("peak active users", run.peak_users().to_string()),
        fact("cache hit ratio", percent(t.cache.hit_ratio())),
        fact(
            "dropped arrivals",
            format!("{} ({})", t.dropped_arrivals, percent(t.dropped_ratio())),
        ),
    ];
    if !run.statuses.is_empty() {
        let statuses: Vec<String> = run
            .statuses
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        facts.push(fact("error statuses", statuses.join(", ")));
    }
    if t.itl_burst_gaps > 0 {
        facts.push(fact(
            "ITL gaps within one read (bursts, recorded as 0)",
            t.itl_burst_gaps.to_string(),
        ));
    }
    if t.tokens_counted > 0 {
        facts.push(fact(
            "tokens counted by the tokenizer",
            format!(
                "{} of {} responses (no usage from the target)",
                t.tokens_counted, t.requests
            ),
        ));
    }
    if t.send_lag.late > 0 {
        facts.push(fact(
            "late sends",
            format!(
                "{} (mean {} ms, max {} ms late)",
                t.send_lag.late,
                significant(t.send_lag.total_us as f64 / t.send_lag.late as f64 / 1e3),
                significant(t.send_lag.max_us as f64 / 1e3)
            ),
        ));
    }
    facts
}

fn percentile_rows(run: &RunResult) -> Vec<PercentileRow> {
    Metric::ALL
        .into_iter()
        .filter_map(|metric| {
            let s = run.summary(metric)?;
            let unit = metric.unit();
            let v = |recorded: f64| significant(unit.to_display(recorded));
            Some(PercentileRow {
                metric: metric.label().to_owned(),
                unit: unit.display_name(),
                values: [s.p50, s.p90, s.p95, s.p99, s.p999, s.max]
                    .map(|x| v(x as f64))
                    .into_iter()
                    .chain([v(s.mean)])
                    .collect(),
                count: s.count,
            })
        })
        .collect()
}

fn environment(run: &RunResult) -> Vec<Fact> {
    let env = &run.environment;
    vec![
        fact("host", env.host.clone()),
        fact("cores", env.cores.to_string()),
        fact("os", env.os.clone()),
        fact(
            "git commit",
            env.git_commit.clone().unwrap_or_else(|| "unknown".into()),
        ),
        fact("tool version", env.tool_version.clone()),
        fact("started", run.started_at.to_rfc3339()),
        fact("ended", run.ended_at.to_rfc3339()),
        fact(
            "wall time",
            format!("{} s", significant(run.wall_time.as_secs_f64())),
        ),
        fact("schema version", run.schema_version.to_string()),
    ]
}

fn money(amount: f64) -> String {
    if amount >= 1.0 {
        format!("{amount:.2}")
    } else {
        significant(amount)
    }
}

/// The cost section: facts, or the reason there is no estimate.
fn cost(run: &RunResult) -> (Vec<Fact>, Option<String>) {
    match estimate(run) {
        Ok(c) => (
            vec![
                fact("model", c.model),
                fact(
                    "price per million tokens",
                    format!(
                        "{} input, {} output",
                        money(c.price.input_per_mtok),
                        money(c.price.output_per_mtok)
                    ),
                ),
                fact(
                    "tokens",
                    format!("{} input, {} output", c.input_tokens, c.output_tokens),
                ),
                fact("estimated cost of this run", money(c.total)),
                fact(
                    "per 1,000 successful requests",
                    c.per_1k_requests.map_or("n/a".to_owned(), money),
                ),
            ],
            None,
        ),
        Err(reason) => (Vec::new(), Some(reason.to_string())),
    }
}
