//! The end-of-run console summary, laid out like k6's: one line per metric, then counts,
//! rates and every SLO with its verdict.

use std::fmt::Write;

use reports::RunResult;
use reports::model::{ErrorClass, Limit, Metric, Summary, Sweep, Unit, significant};
use reports::slo::SloStatus;
use scenarios::capacity::{StageVerdict, capacity};
use scenarios::changes::ChangeEffect;
use scenarios::recorder::CacheLatency;
use scenarios::scenario::UpstreamChange;

/// What a run's console summary shows beyond the [`RunResult`].
#[derive(Clone, Copy, Default)]
pub struct Extras<'a> {
    /// Per-stage verdicts (stress).
    pub stages: Option<&'a [StageVerdict]>,
    /// Effects of mid-run upstream changes (failover).
    pub changes: &'a [ChangeEffect],
    /// Latency by cache outcome.
    pub cache_latency: Option<&'a CacheLatency>,
}

/// Renders the summary of `run`.
pub fn render(run: &RunResult, extras: &Extras<'_>) -> String {
    let Extras {
        stages,
        changes,
        cache_latency,
    } = *extras;
    let mut out = String::new();
    let secs = run.wall_time.as_secs_f64();
    let _ = writeln!(
        out,
        "\n  scenario {}  ·  {:.1}s  ·  peak users {}\n",
        run.scenario,
        secs,
        run.peak_users()
    );
    if let Some(reason) = &run.stopped_early {
        let _ = writeln!(out, "  stopped early: {reason}\n");
    }
    for warning in &run.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    if !run.warnings.is_empty() {
        out.push('\n');
    }
    for metric in Metric::ALL {
        if let Some(summary) = run.summary(metric) {
            let _ = writeln!(out, "  {}", metric_line(metric, &summary));
            if metric == Metric::Itl && run.totals.itl_burst_gaps > 0 {
                let _ = writeln!(
                    out,
                    "  {} {} of {} ITL gaps were 0: events that came in one read",
                    dotted("ITL bursts"),
                    run.totals.itl_burst_gaps,
                    summary.count
                );
            }
        }
    }
    let totals = &run.totals;
    let failed = totals.errors.total();
    let _ = writeln!(
        out,
        "  {} {} total, {} ok, {} failed ({})",
        dotted("requests"),
        totals.requests,
        totals.ok,
        failed,
        percent(totals.error_rate())
    );
    if failed > 0 {
        let classes: Vec<String> = ErrorClass::ALL
            .iter()
            .filter(|c| totals.errors.get(**c) > 0)
            .map(|c| format!("{}={}", c.name(), totals.errors.get(*c)))
            .collect();
        let _ = writeln!(out, "  {} {}", dotted("errors"), classes.join(" "));
    }
    if !run.statuses.is_empty() {
        let statuses: Vec<String> = run
            .statuses
            .iter()
            .map(|(status, count)| format!("{status}={count}"))
            .collect();
        let _ = writeln!(out, "  {} {}", dotted("error statuses"), statuses.join(" "));
    }
    if totals.input_tokens + totals.output_tokens > 0 {
        let counted = totals.tokens_counted;
        let source = match (counted, totals.requests.saturating_sub(counted)) {
            (0, _) => "all from the target's usage".to_owned(),
            (_, 0) => format!(
                "all counted by the {} tokenizer",
                scenarios::tokens::ENCODING
            ),
            (counted, _) => format!(
                "{counted} of {} responses had no usage and were counted by the {} tokenizer",
                totals.requests,
                scenarios::tokens::ENCODING
            ),
        };
        let _ = writeln!(
            out,
            "  {} {} in, {} out ({source})",
            dotted("tokens"),
            totals.input_tokens,
            totals.output_tokens
        );
    }
    let _ = writeln!(
        out,
        "  {} {} req/s, goodput {} req/s, {} output tokens/s",
        dotted("throughput"),
        rate(run.throughput()),
        rate(run.goodput()),
        rate(run.output_tokens_per_s())
    );
    let cache = totals.cache;
    if cache.hit + cache.miss + cache.coalesced > 0 {
        let _ = writeln!(
            out,
            "  {} hit {} / miss {} / coalesced {} ({} hits)",
            dotted("cache"),
            cache.hit,
            cache.miss,
            cache.coalesced,
            percent(cache.hit_ratio())
        );
        if let Some(split) = cache_latency {
            let side = |h: &hdrhistogram::Histogram<u64>| {
                Summary::of(h).map_or_else(
                    || "-".to_owned(),
                    |s| {
                        format!(
                            "p50={} p95={}",
                            Unit::Micros.format(s.p50 as f64),
                            Unit::Micros.format(s.p95 as f64)
                        )
                    },
                )
            };
            let _ = writeln!(
                out,
                "  {} hits {} · misses {}",
                dotted("cache latency"),
                side(&split.hit),
                side(&split.miss)
            );
        }
    }
    // Only the open model and the rate sweep have arrivals to drop or send late.
    if run.config.contains_key("rate") || run.sweep.is_some() {
        let lag = totals.send_lag;
        let _ = writeln!(
            out,
            "  {} dropped {} ({}), late sends {} (max {} ms)",
            dotted("arrivals"),
            totals.dropped_arrivals,
            percent(totals.dropped_ratio()),
            lag.late,
            significant(lag.max_us as f64 / 1000.0)
        );
    }
    if let Some(line) = gateway_line(run) {
        let _ = writeln!(out, "  {} {line}", dotted("gateway"));
    }
    if let Some(verdicts) = stages {
        let _ = writeln!(out, "\n  stages");
        for v in verdicts {
            let mark = if v.passed() { "✓" } else { "✗" };
            let window = format!("{}s-{}s", v.start, v.end);
            let _ = writeln!(
                out,
                "    {mark} {:>5} users  {window:<11} {} requests",
                v.users, v.requests
            );
        }
        let verdict = match capacity(verdicts) {
            Some(users) => format!("{users} users met every SLO"),
            None => "no stage met every SLO".to_owned(),
        };
        let _ = writeln!(out, "    capacity: {verdict}");
    }
    if let Some(sweep) = &run.sweep {
        write_sweep(&mut out, sweep);
    }
    if !changes.is_empty() {
        let _ = writeln!(out, "\n  upstream changes");
        for effect in changes {
            let what = match effect.change {
                UpstreamChange::PrimaryFails { status } => format!("primary fails with {status}"),
                UpstreamChange::PrimaryRecovers => "primary recovers".to_owned(),
            };
            let settled = effect.settled_after.map_or_else(
                || "no failure-free second before the next change".to_owned(),
                |s| format!("failure-free again after {s}s"),
            );
            let breaker = match (effect.change, effect.breaker_after) {
                (_, None) => String::new(),
                (UpstreamChange::PrimaryFails { .. }, Some(s)) => {
                    format!("; breaker open after {s}s")
                }
                (UpstreamChange::PrimaryRecovers, Some(s)) => {
                    format!("; breaker closed after {s}s")
                }
            };
            let _ = writeln!(
                out,
                "    at {:>4}s  {what:<24} {} failed, {settled}{breaker}",
                effect.at, effect.failed
            );
        }
    }
    if !run.slo_results.is_empty() {
        let _ = writeln!(out, "\n  SLOs");
        for result in &run.slo_results {
            let mark = match result.status {
                SloStatus::Pass => "✓",
                SloStatus::Fail | SloStatus::NoData => "✗",
            };
            let measured = result
                .measured
                .map_or_else(|| "no data".to_owned(), |q| q.to_string());
            let _ = writeln!(
                out,
                "    {mark} {:<34} measured {measured:<12} {}",
                result.slo.to_string(),
                result.status
            );
        }
    }
    out
}

/// The sweep's levels, one line each, and what bounded it.
fn write_sweep(out: &mut String, sweep: &Sweep) {
    let _ = writeln!(
        out,
        "\n  rate sweep (each level judged alone; streams = rate x mean latency)"
    );
    for level in &sweep.levels {
        let mark = if level.passed() { "✓" } else { "✗" };
        let offered = level.offered.to_string();
        let window = format!("{}s-{}s", level.start, level.end);
        let ttft = level
            .ttft_p95_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{} ms", significant(ms)));
        let mut notes = Vec::new();
        if !level.failed.is_empty() {
            notes.push(format!("failed {}", level.failed.join("; ")));
        }
        if level.saturated {
            notes.push("generator saturated".to_owned());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        let _ = writeln!(
            out,
            "    {mark} {offered:<18} {window:<10} {:>6} req  {:>7} req/s  goodput {:>7}  \
             streams {:>6}  TTFT p95 {ttft}{notes}",
            level.requests,
            significant(level.achieved_rps),
            significant(level.goodput_rps),
            significant(level.streams),
        );
    }
    let capacity = sweep.capacity().map(|capacity| {
        format!(
            "{} req/s ({} streams)",
            significant(capacity.rps),
            significant(capacity.streams)
        )
    });
    let verdict = match (sweep.limit(), capacity) {
        (Limit::Generator, capacity) => format!(
            "inconclusive: the load generator saturated before the target failed an SLO, so \
             the top rates describe the client{}",
            capacity.map_or_else(String::new, |c| format!(" (met every SLO up to {c})"))
        ),
        (Limit::Target, Some(capacity)) => format!("{capacity} met every SLO"),
        (Limit::None, Some(capacity)) => format!(
            "{capacity} met every SLO, the highest rate offered: the target was not pushed to \
             a limit"
        ),
        (Limit::Target | Limit::None, None) => "no rate met every SLO".to_owned(),
    };
    let _ = writeln!(out, "    capacity: {verdict}");
    if let Some(recovery) = sweep.recovery() {
        let _ = writeln!(out, "    {recovery}");
    }
    if let Some(speedup) = sweep.speedup().filter(|s| *s < SERIAL_SPEEDUP) {
        let _ = writeln!(
            out,
            "    the throughput probe completed {speedup:.2}x the synchronous rate: the target \
             serves about one request at a time, and more users only wait"
        );
    }
}

/// A throughput probe that completed less than this many times the synchronous baseline's rate
/// says the target did not serve its users in parallel (a gateway with one worker, say); the
/// summary says so, since the rest of the sweep reads differently then.
const SERIAL_SPEEDUP: f64 = 1.5;

/// The one-line verdict printed even with `--quiet`.
pub fn verdict(run: &RunResult, dir: &std::path::Path) -> String {
    let failed = run.slo_results.iter().filter(|r| !r.passed()).count();
    let mut state = if failed == 0 {
        "all SLOs met".to_owned()
    } else {
        format!("{failed} of {} SLOs failed", run.slo_results.len())
    };
    if let Some(sweep) = &run.sweep {
        let capacity = match (sweep.limit(), sweep.capacity()) {
            (Limit::Generator, _) => "capacity inconclusive (load generator saturated)".to_owned(),
            (_, Some(capacity)) => format!("capacity {} req/s", significant(capacity.rps)),
            (_, None) => "no rate met every SLO".to_owned(),
        };
        state = if run.slo_results.is_empty() {
            capacity
        } else {
            format!("{capacity}, {state}")
        };
    }
    format!(
        "{}: {} requests, {} req/s, {state}; results in {}",
        run.scenario,
        run.totals.requests,
        rate(run.throughput()),
        dir.display()
    )
}

fn metric_line(metric: Metric, s: &Summary) -> String {
    let unit = metric.unit();
    let f = |v: f64| unit.format(v);
    format!(
        "{} avg={} p50={} p90={} p95={} p99={} max={} count={}",
        dotted(metric.label()),
        f(s.mean),
        f(s.p50 as f64),
        f(s.p90 as f64),
        f(s.p95 as f64),
        f(s.p99 as f64),
        f(s.max as f64),
        s.count
    )
}

fn gateway_line(run: &RunResult) -> Option<String> {
    let rss = run.gateway.iter().filter_map(|s| s.rss_bytes).max();
    let cpu: Vec<f64> = run.gateway.iter().filter_map(|s| s.cpu_percent).collect();
    let mut parts = Vec::new();
    if let Some(rss) = rss {
        parts.push(format!("peak RSS {} MB", significant(rss as f64 / 1e6)));
    }
    if !cpu.is_empty() {
        let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
        parts.push(format!("mean CPU {}%", significant(mean)));
    }
    if let Some(depth) = run.gateway.iter().filter_map(|s| s.queue_depth).max() {
        parts.push(format!("max queue {depth}"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `name......` padded to a fixed width, as k6 prints it.
fn dotted(name: &str) -> String {
    format!("{name:.<22}")
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(
        || "-".to_owned(),
        |r| format!("{}%", significant(r * 100.0)),
    )
}

fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), significant)
}

#[cfg(test)]
mod tests {
    use reports::model::{Offered, SweepLevel};
    use reports::synthetic::synthetic_sweep;

    use super::*;

    /// A sweep whose probe completed `speedup` times the baseline's rate.
    fn probed(speedup: f64) -> Sweep {
        let mut sweep = synthetic_sweep(&[(10.0, true, false), (20.0, true, false)]);
        let probe = SweepLevel {
            offered: Offered::Throughput { users: 8 },
            achieved_rps: sweep.levels[0].achieved_rps * speedup,
            ..sweep.levels[1].clone()
        };
        sweep.levels.insert(1, probe);
        sweep
    }

    /// The summary's sweep section for a sweep of 10, 20 and 30 req/s where 20 failed and 30
    /// passed or failed as `top_passed` says.
    fn above_a_failure(top_passed: bool) -> String {
        let mut out = String::new();
        let rates = [
            (10.0, true, false),
            (20.0, false, false),
            (30.0, top_passed, false),
        ];
        write_sweep(&mut out, &synthetic_sweep(&rates));
        out
    }

    #[test]
    fn a_rate_that_passed_above_a_failure_is_named() {
        let out = above_a_failure(true);
        assert!(out.contains("capacity: 10.0 req/s"), "{out}");
        assert!(
            out.contains("30.0 req/s met every SLO again after 20.0 req/s failed"),
            "{out}"
        );
        // Without a pass above it the failure is the limit, and nothing more is said.
        let out = above_a_failure(false);
        assert!(!out.contains("again"), "{out}");
    }

    #[test]
    fn a_target_that_serves_one_request_at_a_time_is_named() {
        let mut out = String::new();
        write_sweep(&mut out, &probed(1.02));
        assert!(
            out.contains(
                "the throughput probe completed 1.02x the synchronous rate: the target serves \
                 about one request at a time"
            ),
            "{out}"
        );
        let mut out = String::new();
        write_sweep(&mut out, &probed(SERIAL_SPEEDUP));
        assert!(!out.contains("one request at a time"), "{out}");
    }
}
