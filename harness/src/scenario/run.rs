//! One run of a scenario, start to finish: start the system under test, drive the load while
//! closing a second of measurements at a time, judge the SLOs, write the run directory.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reports::RunResult;
use reports::model::{Environment, GatewaySeries, second_of};
use reports::slo::{Slo, SloMetric, SloStatus, evaluate, evaluate_partial};
use scenarios::attack::{self, AttackError};
use scenarios::capacity::{self, StageVerdict};
use scenarios::changes::{ChangeEffect, effects};
use scenarios::client::{Client, ClientError, Verify};
use scenarios::load::{Load, Ran, Worker};
use scenarios::recorder::{CacheLatency, Recorder};
use scenarios::scenario::{TimedChange, Transport};
use scenarios::websocket::{self, WebSocketError};
use tokio::time::MissedTickBehavior;

use super::output::{run_dir, write_run};
use super::plan::Plan;
use super::progress::Progress;
use super::sampler::Sampler;
use super::stack::{Stack, StackError};
use super::stdout_guard::StdoutGuard;
use crate::health::{Health, saturation_warning};
use crate::process::{self, Process};

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
    WebSocket(#[from] WebSocketError),
    #[error(transparent)]
    Output(#[from] reports::ReportError),
    #[error("the load task failed: {0}")]
    Join(String),
}

/// Runs `plan` and writes its run directory.
pub async fn run(plan: Plan) -> Result<Outcome, RunError> {
    let started_at = Utc::now();
    let dir = run_dir(plan.out(), plan.scenario.name, started_at, plan.worker);
    let stack = Stack::start(&plan.target, plan.scenario.upstream, &dir).await?;
    let ready = async {
        let client = Client::new(stack.urls(), plan.client.clone())?;
        client.preflight().await?;
        if let Transport::WebSocket { path } = plan.scenario.transport {
            websocket::preflight(&client, path).await?;
        }
        Ok::<_, ClientError>(client)
    };
    let client = match ready.await {
        Ok(client) => client,
        Err(e) => {
            stack.shutdown().await;
            return Err(e.into());
        }
    };
    // The vocabulary is built once per process; paid here, before the run's clock starts, not
    // by the first requests that need it.
    scenarios::tokens::warm();
    print_banner(&plan, &stack);
    // Whose RSS and CPU the run reads: the gateway the stack started, or the one named.
    let gateway = stack
        .gateway_pid()
        .or(plan.gateway_pid())
        .map(Process::Tree);
    let measured = drive(&plan, &stack, client, gateway, started_at).await;
    stack.shutdown().await;
    let (mut result, cache_latency, ran) = measured?;

    if let Load::Sweep(sweep) = &plan.attack.load {
        // Every SLO but capacity judges each level; capacity judges the sweep.
        result.sweep = Some(capacity::sweep(&result, &plan.slos, sweep, &ran));
        let capacity: Vec<Slo> = plan
            .slos
            .iter()
            .filter(|slo| slo.metric == SloMetric::Capacity)
            .cloned()
            .collect();
        result.slo_results = evaluate(&capacity, &result);
    } else {
        result.slo_results = evaluate(&plan.slos, &result);
    }
    let unmeasured = growth_without_data(&result, gateway.is_some());
    result.warnings.extend(unmeasured);
    let seconds = second_of(result.wall_time);
    if let Some(warning) = saturation_warning(&result.generator, seconds) {
        result.warnings.push(warning);
    }
    let stages = match (&plan.attack.load, plan.scenario.capacity_by_stage) {
        (Load::Closed { stages, .. }, true) => {
            Some(capacity::by_stage(&result, &plan.slos, stages))
        }
        _ => None,
    };
    let changes = effects(&result, &plan.scenario.changes, plan.attack.load.duration());
    write_run(&dir, &result)?;
    Ok(Outcome {
        result,
        dir,
        stages,
        changes,
        cache_latency,
    })
}

/// Why each growth SLO of `run` had no data: the series was never read, or too seldom.
fn growth_without_data(run: &RunResult, sampled_process: bool) -> Vec<String> {
    let unmeasured = run.slo_results.iter().filter_map(|result| {
        let SloMetric::Growth(series) = result.slo.metric else {
            return None;
        };
        (result.status == SloStatus::NoData).then_some((result.slo.metric, series))
    });
    unmeasured
        .map(|(metric, series)| {
            let samples = run.gateway.iter().filter(|s| series.read(s).is_some());
            let why: Cow<'static, str> = match (samples.count(), series) {
                (0, GatewaySeries::Rss) if !sampled_process => {
                    "a target's RSS is read only with --gateway-pid PID (its process on this \
                     machine; the processes under it are counted too)"
                        .into()
                }
                (0, GatewaySeries::Rss) => "the gateway's process could not be read".into(),
                (0, GatewaySeries::Tasks) => {
                    "no `*runtime_alive_tasks` series was read from the target's /metrics".into()
                }
                (0, GatewaySeries::Connections) => {
                    "no `*open_connections` series was read from the target's /metrics".into()
                }
                (n, _) => format!(
                    "its {n} samples give no growth (fewer than three after warm-up, or a start \
                     at zero)"
                )
                .into(),
            };
            format!("{} has no data: {why}", metric.name())
        })
        .collect()
}

/// Says exactly what runs, on stderr (stdout is the summary's).
fn print_banner(plan: &Plan, stack: &Stack) {
    let slo_source = plan.options.slo.as_ref().map_or_else(
        || "scenario default".to_owned(),
        |path| path.display().to_string(),
    );
    let share = if plan.worker == Worker::SOLE {
        String::new()
    } else {
        format!("\n  {}", plan.attack.load.describe_share(plan.worker))
    };
    // The embedded stack names its gateway's process itself.
    let sampled = match (stack.gateway_pid(), plan.gateway_pid()) {
        (None, Some(pid)) => format!(", {}", describe_sampled(pid)),
        _ => String::new(),
    };
    eprintln!(
        "gatebench {}: {}{share}\n  target: {}{sampled}\n  {}\n  model {}, seed {}, {} SLOs ({slo_source})",
        plan.scenario.name,
        plan.attack.load.describe(),
        stack.describe(),
        describe_requests(plan, stack),
        plan.attack.model,
        plan.attack.seed,
        plan.slos.len(),
    );
}

/// Whose RSS and CPU `--gateway-pid` reads, as they stand when the run starts, and a note when
/// the gateway is scheduled apart from this process.
fn describe_sampled(pid: u32) -> String {
    let sampled = match process::tree(pid).len() - 1 {
        0 => format!("RSS and CPU of process {pid}"),
        1 => format!("RSS and CPU of process {pid} and the 1 process under it"),
        n => format!("RSS and CPU of process {pid} and the {n} processes under it"),
    };
    match process::scheduling_note(pid) {
        Some(note) => format!("{sampled}\n  {note}"),
        None => sampled,
    }
}

/// How requests are sent, credentials shown as `***`.
fn describe_requests(plan: &Plan, stack: &Stack) -> String {
    let client = &plan.client;
    let mut parts = vec![format!("{} API", client.api)];
    let headers: Vec<String> = plan
        .options
        .headers
        .iter()
        .map(|h| format!("{}: {}", h.name, h.value))
        .collect();
    if !headers.is_empty() {
        parts.push(format!("headers {}", headers.join(", ")));
    }
    if let Some(variable) = &plan.options.api_key_env {
        parts.push(format!("key from ${variable}"));
    }
    if stack.urls().iter().any(|url| url.starts_with("https://")) {
        parts.push(match &client.verify {
            Verify::WebPki => "TLS verified by web PKI roots".to_owned(),
            Verify::WithCa(path) => format!("TLS verified with CA {}", path.display()),
            Verify::Insecure => "TLS NOT verified (--insecure)".to_owned(),
        });
    }
    parts.push(match plan.scenario.transport {
        Transport::WebSocket { path } => format!("WebSocket at {path}"),
        Transport::Http if client.http1_only => "HTTP/1.1 only".to_owned(),
        Transport::Http => "HTTP/2 where offered".to_owned(),
    });
    parts.join(", ")
}

/// Drives the load against `stack`, one [`Live::tick`] per second until it is over, sampling
/// `gateway`'s process beside the target's `/metrics`.
async fn drive(
    plan: &Plan,
    stack: &Stack,
    client: Client,
    gateway: Option<Process>,
    started_at: DateTime<Utc>,
) -> Result<(RunResult, CacheLatency, Vec<Ran>), RunError> {
    let config = toml::Table::try_from(&plan.options).unwrap_or_default();
    let mut result = RunResult::new(
        plan.scenario.name,
        config,
        Environment::detect(env!("CARGO_PKG_VERSION")),
        started_at,
    );
    result.goodput_limits = plan.limits();
    if plan.client.verify == Verify::Insecure {
        result
            .warnings
            .push("TLS certificates were not verified (--insecure)".to_owned());
    }
    let recorder = Arc::new(Recorder::new(plan.limits()));
    let mut live = Live {
        plan,
        stack,
        recorder: Arc::clone(&recorder),
        result,
        sampler: Sampler::new(client.clone(), gateway),
        health: Health::start(),
        progress: Progress::new(plan.attack.load.duration(), plan.quiet()),
        changes: plan.scenario.changes.clone(),
        sample_every: plan
            .scenario
            .sample_every
            .min(plan.attack.load.duration() / MIN_SAMPLES)
            .max(Duration::from_secs(1)),
        next_sample: Duration::ZERO,
    };

    let guard = StdoutGuard::silence();
    let (attack, worker, transport) = (plan.attack.clone(), plan.worker, plan.scenario.transport);
    let mut load = tokio::spawn(async move {
        match transport {
            Transport::Http => attack::run_share(attack, worker, client, recorder)
                .await
                .map_err(RunError::from),
            Transport::WebSocket { path } => {
                websocket::run_share(attack, worker, client, recorder, path)
                    .await
                    .map(|()| Vec::new())
                    .map_err(RunError::from)
            }
        }
    });
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(live.recorder.origin()) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let finished = loop {
        tokio::select! {
            done = &mut load => break done,
            scheduled = ticker.tick() => live.tick(scheduled.into_std()).await,
        }
    };
    drop(guard);
    live.progress.finish();
    let ran = finished.map_err(|e| RunError::Join(e.to_string()))??;
    let (result, cache_latency) = live.finish().await;
    Ok((result, cache_latency, ran))
}

/// The state of a run in progress.
struct Live<'a> {
    plan: &'a Plan,
    stack: &'a Stack,
    recorder: Arc<Recorder>,
    result: RunResult,
    sampler: Sampler,
    health: Health,
    progress: Progress,
    /// Upstream changes not yet applied.
    changes: Vec<TimedChange>,
    /// The scenario's sample period, shortened for short runs so they still get about
    /// [`MIN_SAMPLES`] samples.
    sample_every: Duration,
    next_sample: Duration,
}

/// Gateway samples a run should have at least, for the RSS trend after warm-up.
const MIN_SAMPLES: u32 = 20;

impl Live<'_> {
    /// Once a second (due at `scheduled`, later when the runtime is busy): note the lateness,
    /// close finished seconds into the result, sample the gateway when due, apply upstream
    /// changes that are due, stop the load if an aborting SLO is lost, and refresh the progress
    /// line.
    async fn tick(&mut self, scheduled: Instant) {
        let now = Instant::now();
        self.health
            .note_late(now.saturating_duration_since(scheduled));
        let elapsed = now.saturating_duration_since(self.recorder.origin());
        let closed = self.recorder.close_ready(now);
        let latest = closed.last().cloned();
        for interval in closed {
            self.result.push_interval(interval);
        }
        // Ticks come on whole seconds, give or take the timer's millisecond: compare and label
        // with the nearest second, so a tick a hair early is neither skipped nor mislabelled.
        let nearest = elapsed + Duration::from_millis(500);
        // This tick closes the seconds before the nearest whole one.
        let through = second_of(nearest).saturating_sub(1);
        for sample in self.health.sample_through(through) {
            self.result.push_generator_sample(sample);
        }
        if nearest >= self.next_sample {
            let sample = self.sampler.sample(second_of(nearest)).await;
            self.result.push_gateway_sample(sample);
            // On a fixed grid: the next sample is due a period after this one was, however
            // late this tick came.
            while self.next_sample <= nearest {
                self.next_sample += self.sample_every;
            }
        }
        let length = self.plan.attack.load.duration().as_secs_f64();
        let (due, later) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|change| elapsed.as_secs_f64() >= change.at * length);
        self.changes = later;
        for change in due {
            if let Err(e) = self.stack.apply(change.change).await {
                tracing::warn!("cannot apply {:?}: {e}", change.change);
            }
        }
        // A sweep's levels are judged apart: a lost SLO there ends a level, not the run.
        let judged_whole = !matches!(self.plan.attack.load, Load::Sweep(_));
        if judged_whole && self.result.stopped_early.is_none() {
            let lost = evaluate_partial(&self.plan.slos, &self.result);
            if !lost.is_empty() {
                let names: Vec<String> = lost.iter().map(|r| r.slo.to_string()).collect();
                let reason = format!("aborting SLO lost: {}", names.join("; "));
                attack::stop(&reason);
                eprintln!("stopping early: {reason}");
                self.result.stopped_early = Some(reason);
            }
        }
        let lost = self.result.stopped_early.is_some();
        self.progress
            .update(elapsed, latest.as_ref(), &self.result, lost);
    }

    /// Closes the last seconds and takes a final sample.
    async fn finish(mut self) -> (RunResult, CacheLatency) {
        for interval in self.recorder.close_all() {
            self.result.push_interval(interval);
        }
        let wall = self.recorder.origin().elapsed();
        for sample in self.health.sample_through(second_of(wall)) {
            self.result.push_generator_sample(sample);
        }
        let sample = self.sampler.sample(second_of(wall)).await;
        self.result.push_gateway_sample(sample);
        if let Some(warning) = self.sampler.metrics_warning() {
            self.result.warnings.push(warning.to_owned());
        }
        self.result.finish(Utc::now(), wall);
        (self.result, self.recorder.cache_latency())
    }
}
