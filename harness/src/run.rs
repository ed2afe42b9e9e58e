//! One run of a scenario, start to finish: start the system under test, drive the load while
//! closing a second of measurements at a time, judge the SLOs, write the run directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reports::RunResult;
use reports::model::Environment;
use reports::slo::{evaluate, evaluate_partial};
use scenarios::attack::{self, AttackError};
use scenarios::capacity::{self, StageVerdict};
use scenarios::changes::{ChangeEffect, effects};
use scenarios::client::{Client, ClientError};
use scenarios::load::Load;
use scenarios::recorder::{CacheLatency, Recorder};
use tokio::time::MissedTickBehavior;

use crate::output::write_run;
use crate::progress::Progress;
use crate::resolve::Resolved;
use crate::sampler::Sampler;
use crate::stack::{Stack, StackError};
use crate::stdout_guard::StdoutGuard;

/// A finished run.
pub struct Outcome {
    pub result: RunResult,
    pub dir: PathBuf,
    /// Per-stage verdicts, for scenarios that report capacity.
    pub stages: Option<Vec<StageVerdict>>,
    /// What each mid-run upstream change did.
    pub changes: Vec<ChangeEffect>,
    /// Latency of cache hits and misses (not part of `summary.json`).
    pub cache_latency: CacheLatency,
    /// Why the run stopped early, when an aborting SLO was lost.
    pub aborted: Option<String>,
}

/// A run that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Attack(#[from] AttackError),
    #[error(transparent)]
    Output(#[from] reports::ReportError),
    #[error("the load task failed: {0}")]
    Join(String),
}

/// Runs `resolved` and writes its run directory.
pub async fn run(resolved: Resolved) -> Result<Outcome, RunError> {
    let stack = Stack::start(&resolved.target, resolved.scenario.upstream).await?;
    let outcome = drive(&resolved, &stack).await;
    stack.shutdown().await;
    let (mut result, aborted, cache_latency) = outcome?;

    result.slo_results = evaluate(&resolved.slos, &result);
    let stages = match (&resolved.plan.load, resolved.scenario.capacity_by_stage) {
        (Load::Closed { stages, .. }, true) => {
            Some(capacity::by_stage(&result, &resolved.slos, stages))
        }
        _ => None,
    };
    let changes = effects(
        &result,
        &resolved.scenario.changes,
        resolved.plan.load.duration(),
    );
    let dir = write_run(&resolved.out, &result)?;
    Ok(Outcome {
        result,
        dir,
        stages,
        changes,
        cache_latency,
        aborted,
    })
}

/// Drives the load against `stack`, collecting one interval per second.
async fn drive(
    resolved: &Resolved,
    stack: &Stack,
) -> Result<(RunResult, Option<String>, CacheLatency), RunError> {
    let scenario = &resolved.scenario;
    let total = resolved.plan.load.duration();
    eprintln!(
        "gatebench {}: {}\n  target: {}\n  model {}, seed {}, {} SLOs{}",
        scenario.name,
        resolved.plan.load.describe(),
        stack.describe(),
        resolved.plan.model,
        resolved.plan.seed,
        resolved.slos.len(),
        resolved.options.slo.as_ref().map_or_else(
            || " (scenario default)".to_owned(),
            |p| format!(" from {}", p.display())
        )
    );

    let config = toml::Table::try_from(&resolved.options).unwrap_or_default();
    let mut result = RunResult::new(
        scenario.name,
        config,
        Environment::detect(env!("CARGO_PKG_VERSION")),
        Utc::now(),
    );
    result.goodput_limits = resolved.limits;
    let recorder = Arc::new(Recorder::new(resolved.limits));
    let client = Client::new(stack.url(), resolved.timeout)?;
    let mut sampler = Sampler::new(stack.url(), stack.in_process());
    let progress = Progress::new(total, resolved.quiet);

    let guard = StdoutGuard::silence();
    let mut load = tokio::spawn(attack::run(
        resolved.plan.clone(),
        client,
        Arc::clone(&recorder),
    ));
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(recorder.origin()) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut changes = scenario.changes.clone();
    let mut next_sample = Duration::ZERO;
    let mut aborted: Option<String> = None;
    let finished = loop {
        tokio::select! {
            done = &mut load => break done,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(recorder.origin());
        let closed = recorder.close_ready(now);
        let latest = closed.last().cloned();
        for interval in closed {
            result.push_interval(interval);
        }
        if elapsed >= next_sample {
            result.push_gateway_sample(sampler.sample(whole_secs(elapsed)).await);
            next_sample = elapsed + scenario.sample_every;
        }
        changes.retain(|change| {
            if elapsed.as_secs_f64() < change.at * total.as_secs_f64() {
                return true;
            }
            if let Err(e) = stack.apply(change.change) {
                tracing::warn!("cannot apply {:?}: {e}", change.change);
            }
            false
        });
        let lost = evaluate_partial(&resolved.slos, &result);
        if aborted.is_none() && !lost.is_empty() {
            let names: Vec<String> = lost.iter().map(|r| r.slo.to_string()).collect();
            let reason = format!("aborting SLO lost: {}", names.join("; "));
            attack::stop(&reason);
            aborted = Some(reason);
        }
        progress.update(elapsed, latest.as_ref(), &result, aborted.is_some());
    };
    drop(guard);
    progress.finish();
    finished.map_err(|e| RunError::Join(e.to_string()))??;

    for interval in recorder.close_all() {
        result.push_interval(interval);
    }
    let wall = recorder.origin().elapsed();
    result.push_gateway_sample(sampler.sample(whole_secs(wall)).await);
    result.finish(Utc::now(), wall);
    if let Some(reason) = &aborted {
        eprintln!("stopped early: {reason}");
        result.stopped_early = Some(reason.clone());
    }
    Ok((result, aborted, recorder.cache_latency()))
}

fn whole_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
