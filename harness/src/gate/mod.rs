//! `harness gate`: does a candidate gateway perform worse than its base on this machine?
//!
//! A mock provider that answers at once runs as a child process for the whole gate. Every run
//! starts the gateway under test as its own process group in front of it (a build of this
//! project, or any gateway from a command template), so no run inherits warm caches, pools or
//! allocator state from the one before, and measures each load level with `harness overhead`'s
//! driver: the same requests straight to the mock and through the gateway, so the latency the
//! gateway adds is seen from the client, whatever the gateway reports. Before the rounds, a
//! short capacity probe of the base sets the open-model rate. Rounds run A B B A; each A/B
//! round is followed by an A/A round (the base on every slot) for the self-check. The
//! statistics and the verdict are `reports::gate`'s.

mod measure;
mod server;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use reference_impl::GatewayConfig;
use reports::gate::{
    CapacityProbe, Confidence, GateLevel, GateMetric, GateOptions, GateRuns, GateSubject,
    Measurements, Round, RoundKind, Tolerance, evaluate,
};
use reports::model::short;
use reports::overhead::Load;
use scenarios::client::Client;
use tokio::process::Command;

use crate::child::{start_child, stop, this_binary};
use crate::overhead::RequestFlags;
use crate::overhead::drive::{Requests, drive};
use crate::scenario::options::Span;

pub use measure::LevelChoice;
pub use server::{Build, CommandTemplate};

use measure::Pair;
use server::{Launch, Server};

/// Requests in flight while the probe measures the base's capacity.
const PROBE_CONCURRENCY: u32 = 16;
/// How long the probe measures, after a warm-up of a quarter of it.
const PROBE_LENGTH: Duration = Duration::from_secs(2);
/// The open-model rate as a share of the probed capacity: loaded, with room to queue.
const RATE_SHARE: f64 = 0.5;
/// A request not answered within this long counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Seed of the request bodies: every run sends the same requests in the same order.
const SEED: u64 = 42;

/// Runs git in the current directory and returns its trimmed output.
pub(super) async fn git(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `--confidence`: a level strictly between 0.5 and 1.
fn parse_confidence(text: &str) -> Result<Confidence, String> {
    let level: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number (e.g. 0.95)"))?;
    Confidence::new(level).map_err(|e| e.to_string())
}

/// `--tolerance METRIC=FRACTION`, e.g. `throughput=3%`.
fn parse_tolerance(text: &str) -> Result<(GateMetric, Tolerance), String> {
    let (metric, tolerance) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not METRIC=TOLERANCE (e.g. throughput=3%)"))?;
    let metric = metric
        .parse()
        .map_err(|e: reports::gate::GateError| e.to_string())?;
    let tolerance = tolerance
        .parse()
        .map_err(|e: reports::gate::GateError| e.to_string())?;
    Ok((metric, tolerance))
}

/// What `harness gate` was asked to compare: the command's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct GatePlan {
    /// Base gateway: a `gateway` executable, `embedded` for this binary's own, or a git
    /// revision of this repository (built in a worktree under the out dir).
    #[arg(long, value_name = "BIN_OR_REV", required_unless_present = "base_cmd")]
    pub base: Option<Build>,
    /// Candidate gateway: a `gateway` executable, `embedded`, or a git revision.
    #[arg(long, value_name = "BIN_OR_REV", required_unless_present = "cand_cmd")]
    pub cand: Option<Build>,
    /// Any gateway as the base: a command run through `sh -c` for each run, with `{port}`
    /// (the loopback port it must listen on) and `{upstream}` (the mock's URL it must forward
    /// to) filled in, e.g. `uvicorn app:main --port {port}`.
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["base", "base_config"])]
    pub base_cmd: Option<CommandTemplate>,
    /// Any gateway as the candidate, like --base-cmd.
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["cand", "cand_config"])]
    pub cand_cmd: Option<CommandTemplate>,
    /// TOML merged over the base's gateway configuration (e.g. `[cache] enabled = false`).
    #[arg(long, value_name = "FILE")]
    pub base_config: Option<PathBuf>,
    /// TOML merged over the candidate's gateway configuration (e.g. `[inject] busy_us = 200`
    /// to prove the gate catches a slower gateway).
    #[arg(long, value_name = "FILE")]
    pub cand_config: Option<PathBuf>,
    /// Load levels every run measures: one request at a time, and plain and streamed requests
    /// at the open-model rate.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "c1,open,open-stream"
    )]
    pub levels: Vec<LevelChoice>,
    /// Open-model rate, arrivals per second; without it, a probe of the base's capacity at the
    /// start of the gate sets it to half of that.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// A/B rounds (A B B A), and as many A/A rounds.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// How long each level is measured on each side (direct and through the gateway) in every
    /// run.
    #[arg(long, default_value = "1s")]
    pub duration: Span,
    /// Confidence of the intervals; fewer rounds need a lower one.
    #[arg(long, default_value = "0.95", value_parser = parse_confidence)]
    pub confidence: Confidence,
    /// A metric's tolerance, the change within which it is unchanged, instead of the default
    /// set from a busy machine's A/A noise (docs/performance-gates.md); repeat for more
    /// metrics. A quieter machine resolves smaller changes, e.g. `throughput=3%`.
    #[arg(long = "tolerance", value_name = "METRIC=FRACTION", value_parser = parse_tolerance)]
    pub tolerances: Vec<(GateMetric, Tolerance)>,
    #[command(flatten)]
    pub request: RequestFlags,
    /// Directory for gate.json, gate.html, the gateway configurations and logs.
    #[arg(long, value_name = "DIR", default_value = "target/gatebench/gate")]
    pub out: PathBuf,
}

/// The outcome of a gate: the console table and the process exit code.
pub struct GateOutcome {
    pub table: String,
    pub exit_code: u8,
}

/// Runs the gate: the probe, every round, then the verdict, `gate.json` and `gate.html` in the
/// out dir. Every process it starts is stopped before it returns.
pub async fn gate(plan: GatePlan) -> anyhow::Result<GateOutcome> {
    let need = plan.confidence.min_rounds();
    if plan.rounds < need {
        bail!(
            "--rounds {} is too few: at {} confidence the gate needs at least {need}",
            plan.rounds,
            plan.confidence.level()
        );
    }
    if plan.levels.is_empty() {
        bail!("--levels: give at least one of c1, open, open-stream");
    }
    if let Some(rate) = plan.rate
        && !(rate.is_finite() && rate > 0.0 && rate <= 1e6)
    {
        bail!("--rate: {rate} is not a rate above 0 and at most 1000000 per second");
    }
    if plan.duration.0 < Duration::from_millis(100) || plan.duration.0 > Duration::from_secs(600) {
        bail!("--duration: each share must be between 100ms and 10m");
    }
    for (flag, build) in [("base", &plan.base), ("cand", &plan.cand)] {
        if let Some(build) = build {
            build.check().await.with_context(|| format!("--{flag}"))?;
        }
    }
    let options = plan.request.client(REQUEST_TIMEOUT)?;
    let harness = std::env::current_exe().context("locating the harness executable")?;
    std::fs::create_dir_all(plan.out.join("logs"))
        .with_context(|| format!("creating {}", plan.out.display()))?;
    // A reliable upstream that answers at once: injected faults and generation time would only
    // add noise, and leave the gateway idle, while the gate is about the gateway's own cost.
    let mock_log = plan.out.join("logs").join("mock.log");
    let (mock, mock_url) = start_child(
        this_binary(&["mock", "--profile", "fast", "--port", "0"])?,
        "mock",
        Some(&mock_log),
    )
    .await?;
    let result = async {
        let base = side(&plan, &mock_url, Role::Base).await?;
        let cand = side(&plan, &mock_url, Role::Cand).await?;
        let runner = Runner {
            harness,
            upstream: mock_url.clone(),
            direct: Client::new(&[&mock_url], options.clone())?,
            options,
            requests: Requests {
                prompts: crate::overhead::prompts(SEED),
                model: Arc::from(crate::scenario::DEFAULT_MODEL),
                stream: false,
            },
            plan: &plan,
            base,
            cand,
        };
        runner.direct.preflight().await?;
        let open = plan.levels.iter().any(|l| l.is_open());
        let (rate, probe) = match (plan.rate, open) {
            (Some(rate), _) => (rate, None),
            (None, false) => (0.0, None),
            (None, true) => {
                let probe = runner.probe().await?;
                eprintln!("{probe}");
                (probe.rate, Some(probe))
            }
        };
        let levels: Vec<GateLevel> = plan.levels.iter().map(|l| l.level(rate)).collect();
        let runs = runner.all_rounds(&levels).await?;
        let mut subject = GateSubject::new(runner.base.label.clone(), runner.cand.label.clone());
        subject.probe = probe;
        anyhow::Ok((subject, levels.into_iter().zip(runs).collect::<Vec<_>>()))
    }
    .await;
    stop(mock).await;
    let (subject, levels) = result?;
    let mut options = GateOptions {
        confidence: plan.confidence,
        ..GateOptions::default()
    };
    for &(metric, tolerance) in &plan.tolerances {
        options.tolerances.set(metric, tolerance);
    }
    let report = evaluate(subject, levels, &options)?;
    report.write(&plan.out)?;
    Ok(GateOutcome {
        table: format!("{report}\ngate.json, gate.html: {}\n", plan.out.display()),
        exit_code: report.exit_code(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Base,
    Cand,
}

/// One side of the comparison from its flags: what starts it, and its label.
async fn side(plan: &GatePlan, upstream: &str, role: Role) -> anyhow::Result<Side> {
    let (build, template, overlay, name) = match role {
        Role::Base => (&plan.base, &plan.base_cmd, &plan.base_config, "base"),
        Role::Cand => (&plan.cand, &plan.cand_cmd, &plan.cand_config, "cand"),
    };
    match (build, template) {
        (_, Some(template)) => Ok(Side {
            launch: Launch::Template(template.clone()),
            label: format!("`{}`", template.text()),
            name,
        }),
        (Some(build), None) => Ok(Side {
            launch: Launch::Project {
                build: build
                    .prepare(&plan.out.join("builds"))
                    .await
                    .with_context(|| format!("--{name}"))?,
                config: crate::gateway::write_config(
                    &plan.out,
                    name,
                    gate_config(upstream),
                    overlay.as_deref(),
                )?,
            },
            label: match overlay {
                Some(overlay) => format!("{} + {}", build.label(), overlay.display()),
                None => build.label(),
            },
            name,
        }),
        (None, None) => bail!("--{name}: give a gateway (or --{name}-cmd)"),
    }
}

/// The gate's gateway configuration: the mock as the only provider, the cache on as in the
/// embedded stack.
fn gate_config(mock_url: &str) -> GatewayConfig {
    let mut config = crate::gateway::config_for(mock_url);
    config.cache.enabled = true;
    config
}

/// One side of the comparison: what starts it, and how it is named.
struct Side {
    launch: Launch,
    label: String,
    /// `base` or `cand`, for file names.
    name: &'static str,
}

/// Runs the probe and the rounds of one gate, one gateway process per run.
struct Runner<'a> {
    harness: PathBuf,
    upstream: String,
    /// The mock, reached directly.
    direct: Client,
    options: scenarios::client::ClientOptions,
    requests: Requests,
    plan: &'a GatePlan,
    base: Side,
    cand: Side,
}

impl Runner<'_> {
    /// Starts `side`, runs `work` against its client, and stops it (its whole process group)
    /// whatever happened.
    async fn with_gateway<T>(
        &self,
        side: &Side,
        run: &str,
        work: impl AsyncFnOnce(&Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let log = self
            .plan
            .out
            .join("logs")
            .join(format!("{}-{run}.log", side.name));
        let mut server: Server = side
            .launch
            .start(&self.harness, &self.upstream, &side.label, &log)
            .await?;
        let result = async {
            let client = Client::new(&[&server.url], self.options.clone())?;
            client
                .preflight()
                .await
                .with_context(|| format!("gateway {}", side.label))?;
            work(&client).await
        }
        .await;
        server.stop().await;
        result
    }

    /// The base's capacity on this machine: plain requests at [`PROBE_CONCURRENCY`] in flight
    /// for [`PROBE_LENGTH`], and the open-model rate taken from it.
    async fn probe(&self) -> anyhow::Result<CapacityProbe> {
        let load = Load::Closed {
            concurrency: PROBE_CONCURRENCY,
        };
        let tally = self
            .with_gateway(&self.base, "probe", async |client| {
                drive(client, &self.requests, load, PROBE_LENGTH / 4).await;
                Ok(drive(client, &self.requests, load, PROBE_LENGTH).await)
            })
            .await?;
        let figures = tally.figures();
        let capacity = figures.throughput().filter(|r| *r > 0.0).with_context(|| {
            format!(
                "the base answered no request during the capacity probe ({} failed); give --rate",
                figures.failed
            )
        })?;
        Ok(CapacityProbe {
            concurrency: PROBE_CONCURRENCY,
            secs: figures.secs,
            capacity,
            rate: (capacity * RATE_SHARE).max(1.0).round(),
        })
    }

    /// Every round, A/B then A/A, each level's rounds apart.
    async fn all_rounds(&self, levels: &[GateLevel]) -> anyhow::Result<Vec<GateRuns>> {
        let mut runs: Vec<GateRuns> = levels
            .iter()
            .map(|_| GateRuns {
                ab: Vec::new(),
                aa: Vec::new(),
            })
            .collect();
        for index in 1..=self.plan.rounds {
            for kind in [RoundKind::Ab, RoundKind::Aa] {
                let rounds = self.round(kind, index, levels).await?;
                for (level, round) in runs.iter_mut().zip(rounds) {
                    match kind {
                        RoundKind::Ab => level.ab.push(round),
                        RoundKind::Aa => level.aa.push(round),
                    }
                }
            }
        }
        Ok(runs)
    }

    /// One round, A B B A, as one [`Round`] per level; in an A/A round the base takes the B
    /// slots too.
    async fn round(
        &self,
        kind: RoundKind,
        index: usize,
        levels: &[GateLevel],
    ) -> anyhow::Result<Vec<Round>> {
        let b = match kind {
            RoundKind::Ab => &self.cand,
            RoundKind::Aa => &self.base,
        };
        let mut slots = Vec::with_capacity(4);
        for (slot, side) in [&self.base, b, b, &self.base].into_iter().enumerate() {
            let slot = slot + 1;
            let name = format!("{}-{index}-{slot}", round_dir(kind));
            let measured = self
                .with_gateway(side, &name, async |gateway| {
                    let pair = Pair {
                        direct: &self.direct,
                        gateway,
                    };
                    Ok(pair
                        .measure(levels, &self.requests, self.plan.duration.0, slot % 2 == 1)
                        .await?)
                })
                .await
                .with_context(|| format!("{} round {index}, run {slot}", kind.label()))?;
            eprintln!(
                "{} round {index}/{}, run {slot} ({}): {}",
                kind.label(),
                self.plan.rounds,
                side.name,
                progress(levels, &measured)
            );
            slots.push(measured);
        }
        let [a1, b1, b2, a2]: [Vec<Measurements>; 4] = slots
            .try_into()
            .map_err(|_| anyhow::anyhow!("a round has four runs"))?;
        Ok(a1
            .into_iter()
            .zip(b1)
            .zip(b2)
            .zip(a2)
            .map(|(((a1, b1), b2), a2)| Round::abba(a1, b1, b2, a2))
            .collect())
    }
}

/// `c=1 plain 1520 req/s added p50 180 us · 250/s streamed ...` for one run.
fn progress(levels: &[GateLevel], measured: &[Measurements]) -> String {
    use reports::gate::GateMetric;
    levels
        .iter()
        .zip(measured)
        .map(|(level, m)| {
            let value = |metric| m.get(metric).map_or("-".to_owned(), short);
            let mut line = format!(
                "{level} {} req/s added p50 {} us",
                value(GateMetric::Throughput),
                value(GateMetric::AddedP50)
            );
            if let Some(errors) = m.get(GateMetric::ErrorRate).filter(|e| *e > 0.0) {
                line.push_str(&format!(" errors {}%", short(errors * 100.0)));
            }
            if m.saturated() {
                line.push_str(" (generator saturated)");
            }
            line
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn round_dir(kind: RoundKind) -> &'static str {
    match kind {
        RoundKind::Ab => "ab",
        RoundKind::Aa => "aa",
    }
}
