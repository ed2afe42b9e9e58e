//! Measuring SLOs on a run.

use std::time::Duration;

use super::{Quantity, Slo, SloMetric, SloResult, SloStatus, Stat};
use crate::model::{GatewaySample, GatewaySeries, Metric, RunResult, Unit};

/// Requests a run must have completed before an aborting SLO can end it, so a cold start does
/// not stop a run that would have recovered.
pub const ABORT_MIN_REQUESTS: u64 = 100;

/// Share of the gateway samples treated as warm-up and ignored for growth.
const WARM_UP_SHARE: f64 = 0.1;

/// Evaluates every SLO on a finished run.
pub fn evaluate(slos: &[Slo], run: &RunResult) -> Vec<SloResult> {
    slos.iter().map(|slo| judge(slo, run)).collect()
}

/// The aborting SLOs that are lost on the data so far; an empty result means carry on.
///
/// Called every second on the run in progress. Nothing is judged before
/// [`ABORT_MIN_REQUESTS`] requests completed; after that an aborting SLO that fails on the data
/// so far ends the run.
pub fn evaluate_partial(slos: &[Slo], run: &RunResult) -> Vec<SloResult> {
    if run.totals.requests < ABORT_MIN_REQUESTS {
        return Vec::new();
    }
    slos.iter()
        .filter(|slo| slo.abort)
        .map(|slo| judge(slo, run))
        .filter(|result| result.status == SloStatus::Fail)
        .collect()
}

fn judge(slo: &Slo, run: &RunResult) -> SloResult {
    let measured = measure(slo, run);
    let status = match measured {
        None => SloStatus::NoData,
        Some(value) if slo.op.holds(value.base_value(), slo.value.base_value()) => SloStatus::Pass,
        Some(_) => SloStatus::Fail,
    };
    SloResult {
        slo: slo.clone(),
        measured,
        status,
    }
}

/// The value `slo` compares against its limit, `None` when the run has no data for it.
pub fn measure(slo: &Slo, run: &RunResult) -> Option<Quantity> {
    let totals = &run.totals;
    let per_second = |count: u64| {
        let secs = run.elapsed_secs();
        (secs > 0.0).then(|| Quantity::Number(count as f64 / secs))
    };
    match (slo.metric, slo.stat) {
        (SloMetric::Histogram(metric), stat) => histogram_stat(run, metric, stat),
        (SloMetric::ErrorRate, Stat::Ratio) => totals.error_rate().map(Quantity::Ratio),
        (SloMetric::ErrorRate, _) => per_second(totals.errors.total()),

        (SloMetric::Goodput, Stat::Ratio) => (totals.requests > 0)
            .then(|| Quantity::Ratio(totals.good as f64 / totals.requests as f64)),
        (SloMetric::Goodput, _) => per_second(totals.good),
        (SloMetric::Throughput, _) => per_second(totals.requests),
        (SloMetric::CacheHitRatio, _) => totals.cache.hit_ratio().map(Quantity::Ratio),
        (SloMetric::Dropped, Stat::Ratio) => totals.dropped_ratio().map(Quantity::Ratio),
        (SloMetric::Dropped, _) => per_second(totals.dropped_arrivals),
        (SloMetric::Growth(series), Stat::Slope) => {
            slope_per_hour(&run.gateway, series).map(Quantity::Ratio)
        }
        (SloMetric::Growth(series), _) => growth(&run.gateway, series).map(Quantity::Ratio),
        (SloMetric::Capacity, _) => run
            .sweep
            .as_ref()?
            .capacity()
            .map(|capacity| Quantity::Number(capacity.rps)),
    }
}

fn histogram_stat(run: &RunResult, metric: Metric, stat: Stat) -> Option<Quantity> {
    let histogram = run.metrics.get(metric)?;
    let recorded = match stat.quantile() {
        Some(q) => histogram.value_at_quantile(q) as f64,
        None => histogram.mean(),
    };
    Some(match metric.unit() {
        Unit::Micros => Quantity::Duration(Duration::from_secs_f64(recorded / 1e6)),
        Unit::MilliTokensPerS => Quantity::Number(recorded / 1e3),
    })
}

/// `(second, value)` of `series` after warm-up; `None` with fewer than three samples.
fn steady(samples: &[GatewaySample], series: GatewaySeries) -> Option<Vec<(f64, f64)>> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((f64::from(s.second), series.read(s)?)))
        .collect();
    let warm_up = (points.len() as f64 * WARM_UP_SHARE).ceil() as usize;
    let steady = points.get(warm_up..)?.to_vec();
    (steady.len() >= 3).then_some(steady)
}

/// Growth from the start to the end of the steady state, relative to the start, comparing the
/// means of the first and last tenth of the samples so one noisy sample does not decide.
fn growth(samples: &[GatewaySample], series: GatewaySeries) -> Option<f64> {
    let steady = steady(samples, series)?;
    let window = (steady.len() / 10).max(1);
    let mean =
        |points: &[(f64, f64)]| points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let first = mean(&steady[..window]);
    let last = mean(&steady[steady.len() - window..]);
    (first > 0.0).then(|| (last - first) / first)
}

/// Least-squares slope over the steady state, as a fraction of the series' mean per hour.
fn slope_per_hour(samples: &[GatewaySample], series: GatewaySeries) -> Option<f64> {
    let steady = steady(samples, series)?;
    let n = steady.len() as f64;
    let mean_t = steady.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_value = steady.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = steady
        .iter()
        .map(|p| (p.0 - mean_t) * (p.1 - mean_value))
        .sum();
    let variance: f64 = steady.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    (variance > 0.0 && mean_value > 0.0).then(|| covariance / variance * 3600.0 / mean_value)
}
