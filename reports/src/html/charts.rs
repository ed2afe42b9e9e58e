//! The charts of the reports, built from a run's per-second timeline and histograms.

use hdrhistogram::Histogram;

use super::svg::{Chart, Series, Style, XScale, YAxis};
use crate::model::{ErrorClass, GatewaySample, Metric, Sweep, SweepLevel};
use crate::timeline::{Percentiles, Second};

const TIME: &str = "time since start (s)";

/// One series of a chart over time: its name, its look, and its value in a given second.
struct Line<'a> {
    name: String,
    style: Style,
    value: Box<Reading<'a>>,
    /// What a second without a value means for the drawing.
    missing: Missing,
}

/// The value a line takes in one second.
type Reading<'a> = dyn Fn(&Second) -> Option<f64> + 'a;

/// How a line treats seconds without a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Nothing happened (no request completed): the line breaks.
    Gap,
    /// A reading that is taken about once a second was not taken in this one (a gauge such as
    /// RSS): the line joins its neighbours.
    Bridge,
}

/// A chart over time with one series per line.
fn over_time(
    title: &str,
    y_label: &str,
    y_axis: YAxis,
    timeline: &[Second],
    lines: Vec<Line<'_>>,
) -> Chart {
    Chart {
        title: title.to_owned(),
        x_label: TIME.to_owned(),
        y_label: y_label.to_owned(),
        x_scale: XScale::Linear,
        x_bounds: timeline.last().map(|s| (0.0, f64::from(s.second))),
        y_axis,
        series: lines
            .into_iter()
            .map(|line| {
                let points = timeline
                    .iter()
                    .map(|s| (f64::from(s.second), (line.value)(s)))
                    .filter(|(_, y)| line.missing == Missing::Gap || y.is_some())
                    .collect();
                Series::new(line.name, line.style, points)
            })
            .collect(),
    }
}

/// Completed and successful requests per second.
pub fn throughput(timeline: &[Second]) -> Chart {
    over_time(
        "Throughput",
        "requests per second (1/s)",
        YAxis::Auto,
        timeline,
        vec![
            line("all requests", Style::nth(0), |s| Some(s.requests as f64)),
            line("successful", Style::dashed(1, 1), |s| Some(s.ok as f64)),
        ],
    )
}

/// Active users (and dropped arrivals, when there were any).
pub fn users(timeline: &[Second]) -> Chart {
    let mut lines = vec![gauge("active users", Style::nth(1), |s| {
        s.active_users.map(|u| u as f64)
    })];
    if timeline.iter().any(|s| s.dropped_arrivals > 0) {
        lines.push(line("dropped arrivals/s", Style::dashed(3, 1), |s| {
            Some(s.dropped_arrivals as f64)
        }));
    }
    over_time(
        "Active users",
        "users (count)",
        YAxis::Auto,
        timeline,
        lines,
    )
}

/// p50, p95 and p99 of `metric` in every second.
pub fn percentiles_over_time(timeline: &[Second], metric: Metric) -> Chart {
    let pick = move |s: &Second| match metric {
        Metric::Ttft => s.ttft,
        _ => s.latency,
    };
    let ms = |us: u64| Some(us as f64 / 1_000.0);
    over_time(
        &format!("{} percentiles per second", metric.label()),
        &format!("{} (ms)", metric.label()),
        YAxis::Auto,
        timeline,
        vec![
            line("p50", Style::dashed(0, 0), move |s| {
                pick(s).and_then(|p: Percentiles| ms(p.p50))
            }),
            line("p95", Style::dashed(1, 1), move |s| {
                pick(s).and_then(|p| ms(p.p95))
            }),
            line("p99", Style::dashed(6, 2), move |s| {
                pick(s).and_then(|p| ms(p.p99))
            }),
        ],
    )
}

/// Failed requests per second, one line per class that occurred.
pub fn errors(timeline: &[Second]) -> Chart {
    let lines = ErrorClass::ALL
        .into_iter()
        .enumerate()
        .filter(|(_, class)| timeline.iter().any(|s| s.errors.get(*class) > 0))
        .map(|(n, class)| {
            line(class.name(), Style::dashed(n, n % 2), move |s| {
                Some(s.errors.get(class) as f64)
            })
        })
        .collect();
    over_time(
        "Errors by class",
        "failed requests per second (1/s)",
        YAxis::Auto,
        timeline,
        lines,
    )
}

/// Cache hit ratio from response headers and from the gateway's own counters.
pub fn cache(timeline: &[Second]) -> Chart {
    over_time(
        "Cache hit ratio",
        "hit ratio (%)",
        YAxis::UpTo(100.0),
        timeline,
        vec![
            line("x-cache headers", Style::nth(0), |s| {
                s.cache_hit_ratio.map(|r| r * 100.0)
            }),
            gateway_line("gateway /metrics", Style::dashed(1, 1), |g| {
                g.cache_hit_ratio.map(|r| r * 100.0)
            }),
        ],
    )
}

/// Circuit breaker state as a level: 0 closed, 1 half-open, 2 open.
pub fn breaker(timeline: &[Second]) -> Chart {
    over_time(
        "Circuit breaker",
        "state (worst provider)",
        YAxis::Levels(&["closed", "half-open", "open"]),
        timeline,
        vec![gateway_line("worst breaker", Style::nth(3), |g| {
            g.breaker.map(|b| f64::from(b.level()))
        })],
    )
}

/// Requests waiting in the gateway's queue.
pub fn queue(timeline: &[Second]) -> Chart {
    over_time(
        "Queue depth",
        "queued requests (count)",
        YAxis::Auto,
        timeline,
        vec![gateway_line("queue depth", Style::nth(4), |g| {
            g.queue_depth.map(|d| d as f64)
        })],
    )
}

/// Gateway resident memory.
pub fn rss(timeline: &[Second]) -> Chart {
    over_time(
        "Gateway memory",
        "resident set size (MiB)",
        YAxis::Auto,
        timeline,
        vec![gateway_line("RSS", Style::nth(2), |g| {
            g.rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
        })],
    )
}

/// Gateway CPU use.
pub fn cpu(timeline: &[Second]) -> Chart {
    over_time(
        "Gateway CPU",
        "CPU (% of one core)",
        YAxis::Auto,
        timeline,
        vec![gateway_line("CPU", Style::nth(5), |g| g.cpu_percent)],
    )
}

/// Percentile distribution of `metric` for one or more histograms (e.g. base and candidate),
/// on the log `1/(1-q)` axis.
pub fn distribution(metric: Metric, histograms: &[(String, Style, Histogram<u64>)]) -> Chart {
    let unit = metric.unit();
    Chart {
        title: format!("{} distribution", metric.label()),
        x_label: "percentile (log scale)".to_owned(),
        y_label: format!("{} ({})", metric.label(), unit.display_name()),
        x_scale: XScale::Percentile,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series: histograms
            .iter()
            .map(|(name, style, histogram)| {
                let points = percentile_points(histogram)
                    .into_iter()
                    .map(|(q, value)| (q, Some(unit.to_display(value as f64))))
                    .collect();
                Series::new(name.clone(), *style, points)
            })
            .collect(),
    }
}

/// `(quantile, value)` pairs of a histogram, denser towards the tail, ending at the maximum.
fn percentile_points(histogram: &Histogram<u64>) -> Vec<(f64, u64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, u64)> = histogram
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|(q, _)| *q < 1.0)
        .collect();
    // The maximum sits at the rank of the last value: 1 - 1/count.
    let last_q = 1.0 - 1.0 / histogram.len() as f64;
    points.push((
        last_q.max(points.last().map_or(0.0, |p| p.0)),
        histogram.max(),
    ));
    points
}

fn line<'a>(name: &str, style: Style, value: impl Fn(&Second) -> Option<f64> + 'a) -> Line<'a> {
    Line {
        name: name.to_owned(),
        style,
        value: Box::new(value),
        missing: Missing::Gap,
    }
}

/// A gauge: seconds without a reading are bridged.
fn gauge<'a>(name: &str, style: Style, value: impl Fn(&Second) -> Option<f64> + 'a) -> Line<'a> {
    Line {
        missing: Missing::Bridge,
        ..line(name, style, value)
    }
}

fn gateway_line<'a>(
    name: &str,
    style: Style,
    value: impl Fn(&GatewaySample) -> Option<f64> + 'a,
) -> Line<'a> {
    gauge(name, style, move |s| s.gateway.as_ref().and_then(&value))
}

const OFFERED: &str = "offered rate (req/s)";

/// One point per rate of a sweep: `value` against the offered rate.
fn by_rate(sweep: &Sweep, value: impl Fn(&SweepLevel) -> Option<f64>) -> Vec<(f64, Option<f64>)> {
    sweep
        .rates()
        .filter_map(|level| Some((level.offered.rate()?, value(level))))
        .collect()
}

/// TTFT p95 against the offered rate: flat while the target keeps up, bending upward at the
/// knee.
pub fn knee_ttft(sweep: &Sweep) -> Chart {
    Chart {
        title: "TTFT p95 by offered rate".to_owned(),
        x_label: OFFERED.to_owned(),
        y_label: "TTFT p95 (ms)".to_owned(),
        x_scale: XScale::Linear,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series: vec![Series::new(
            "TTFT p95",
            Style::nth(0),
            by_rate(sweep, |l| l.ttft_p95_ms),
        )],
    }
}

/// Achieved rate and goodput against the offered rate, beside the offered rate itself: they
/// follow it until the knee, then fall behind.
pub fn knee_goodput(sweep: &Sweep) -> Chart {
    Chart {
        title: "Goodput by offered rate".to_owned(),
        x_label: OFFERED.to_owned(),
        y_label: "requests per second (1/s)".to_owned(),
        x_scale: XScale::Linear,
        x_bounds: None,
        y_axis: YAxis::Auto,
        series: vec![
            Series::new(
                "offered",
                Style::dashed(2, 2),
                by_rate(sweep, |l| l.offered.rate()),
            ),
            Series::new(
                "achieved",
                Style::nth(0),
                by_rate(sweep, |l| Some(l.achieved_rps)),
            ),
            Series::new(
                "goodput",
                Style::nth(1),
                by_rate(sweep, |l| Some(l.goodput_rps)),
            ),
        ],
    }
}
