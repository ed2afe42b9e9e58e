//! `harness gate`: does a candidate gateway build perform worse than its base on this machine?
//!
//! One native mock provider runs in this process for the whole gate. Every run starts the
//! gateway under test as its own process, pointed at the mock, and drives the scenario against
//! it from another process of this binary (`harness scenario NAME --target URL --json`), so no
//! run inherits warm caches, pools or allocator state from the one before. Rounds run A B B A;
//! each A/B round is followed by an A/A round (the base on every slot) for the self-check. The
//! statistics and the verdict are `reports::gate`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::{GatewayConfig, ProviderConfig, ProviderKind};
use reports::RunResult;
use reports::gate::{
    Confidence, GateOptions, GateRuns, GateSubject, Measurements, Round, RoundKind, evaluate,
};
use tokio::process::{Child, Command};

use crate::child::start_child;
use crate::options::Span;

/// Time a run may take beyond its duration (start, drain, report) before it is abandoned.
const RUN_GRACE: Duration = Duration::from_secs(120);

/// A gateway build to gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Build {
    /// The reference gateway inside this binary, run as `harness gateway`.
    Embedded,
    /// A `gateway` executable, run as `BIN --config FILE --port 0`.
    Binary(PathBuf),
    /// A git revision of this repository: its `gateway` is built in a worktree first.
    Revision(String),
}

impl FromStr for Build {
    type Err = String;

    fn from_str(text: &str) -> Result<Build, String> {
        if text == "embedded" {
            return Ok(Build::Embedded);
        }
        let path = PathBuf::from(text);
        if path.is_file() {
            return Ok(Build::Binary(path));
        }
        let commit = format!("{text}^{{commit}}");
        let is_revision = std::process::Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &commit])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        match is_revision {
            true => Ok(Build::Revision(text.to_owned())),
            false => Err(format!(
                "`{text}` is neither a gateway executable, `embedded`, nor a git revision"
            )),
        }
    }
}

impl Build {
    fn label(&self) -> String {
        match self {
            Build::Embedded => "embedded".to_owned(),
            Build::Binary(path) => path.display().to_string(),
            Build::Revision(rev) => rev.clone(),
        }
    }

    /// A build that can be started: a revision is checked out into a worktree under `dir` and
    /// its `gateway` built there (one shared target directory, so a second revision rebuilds
    /// only what differs).
    async fn prepare(&self, dir: &Path) -> anyhow::Result<Runnable> {
        let rev = match self {
            Build::Embedded => return Ok(Runnable::Embedded),
            Build::Binary(path) => return Ok(Runnable::Binary(path.clone())),
            Build::Revision(rev) => rev,
        };
        let sha = git(&["rev-parse", "--short=12", &format!("{rev}^{{commit}}")]).await?;
        // cargo runs in the worktree: a relative target directory would land inside it.
        let dir = std::path::absolute(dir).context("resolving the out directory")?;
        // Each revision gets its own copy: the next build overwrites target/release/gateway.
        let bin = dir.join(format!("gateway-{sha}"));
        if bin.is_file() {
            return Ok(Runnable::Binary(bin));
        }
        let worktree = dir.join("worktrees").join(&sha);
        git(&["worktree", "prune"]).await?;
        if !worktree.exists() {
            let path = worktree.to_string_lossy();
            git(&["worktree", "add", "--detach", "--force", &path, &sha]).await?;
        }
        let target = dir.join("target");
        eprintln!("building gateway at {rev} ({sha})");
        let status = Command::new("cargo")
            .args(["build", "--release", "--locked", "-p", "reference-impl"])
            .args(["--bin", "gateway"])
            .current_dir(&worktree)
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .status()
            .await
            .context("running cargo")?;
        if !status.success() {
            bail!("building gateway at {rev} failed ({status})");
        }
        std::fs::copy(target.join("release").join("gateway"), &bin)
            .with_context(|| format!("copying the gateway built at {rev}"))?;
        // The checkout is no longer needed (the target directory stays, for the next build).
        git(&["worktree", "remove", "--force", &worktree.to_string_lossy()]).await?;
        Ok(Runnable::Binary(bin))
    }
}

/// A build ready to start.
#[derive(Clone, Debug)]
enum Runnable {
    Embedded,
    Binary(PathBuf),
}

impl Runnable {
    /// The command that starts this build on a free loopback port with `config`.
    fn command(&self, harness: &Path, config: &Path) -> Command {
        let mut command = match self {
            Runnable::Embedded => {
                let mut command = Command::new(harness);
                command.arg("gateway");
                command
            }
            Runnable::Binary(path) => Command::new(path),
        };
        command
            .arg("--config")
            .arg(config)
            .args(["--port", "0"])
            .env("RUST_LOG", "warn");
        command
    }
}

/// Runs git in the current directory and returns its trimmed output.
async fn git(args: &[&str]) -> anyhow::Result<String> {
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

/// What `harness gate` was asked to compare: the command's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct GatePlan {
    /// Base gateway: a `gateway` executable, `embedded` for this binary's own, or a git
    /// revision of this repository (built in a worktree under the out dir).
    #[arg(long, value_name = "BIN_OR_REV")]
    pub base: Build,
    /// Candidate gateway: a `gateway` executable, `embedded`, or a git revision.
    #[arg(long, value_name = "BIN_OR_REV")]
    pub cand: Build,
    /// TOML merged over the base's gateway configuration (e.g. `[cache] enabled = false`).
    #[arg(long, value_name = "FILE")]
    pub base_config: Option<PathBuf>,
    /// TOML merged over the candidate's gateway configuration (e.g. `[inject] busy_us = 200`
    /// to prove the gate catches a slower gateway).
    #[arg(long, value_name = "FILE")]
    pub cand_config: Option<PathBuf>,
    /// Scenario every run drives (see `harness list`).
    #[arg(long, value_name = "NAME")]
    pub scenario: String,
    /// A/B rounds (A B B A), and as many A/A rounds.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Length of each run.
    #[arg(long, default_value = "10s")]
    pub duration: Span,
    /// Confidence of the intervals; fewer rounds need a lower one.
    #[arg(long, default_value = "0.95", value_parser = parse_confidence)]
    pub confidence: Confidence,
    /// Directory for gate.json, gate.html, the gateway config and every run.
    #[arg(long, value_name = "DIR", default_value = "target/gatebench/gate")]
    pub out: PathBuf,
}

/// The outcome of a gate: the console table and the process exit code.
pub struct GateOutcome {
    pub table: String,
    pub exit_code: u8,
}

/// Runs the gate: every round, then the verdict, `gate.json` and `gate.html` in the out dir.
pub async fn gate(plan: GatePlan) -> anyhow::Result<GateOutcome> {
    if scenarios::scenario::find(&plan.scenario).is_none() {
        bail!("unknown scenario `{}` (see `harness list`)", plan.scenario);
    }
    let need = plan.confidence.min_rounds();
    if plan.rounds < need {
        bail!(
            "--rounds {} is too few: at {} confidence the gate needs at least {need}",
            plan.rounds,
            plan.confidence.level()
        );
    }
    let harness = std::env::current_exe().context("locating the harness executable")?;
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("creating {}", plan.out.display()))?;
    // A reliable upstream that answers at once: injected faults and generation time would only
    // add noise, and leave the gateway idle, while the gate is about the gateway's own cost.
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .context("starting the mock provider")?;
    let side = async |build: &Build, overlay: Option<&Path>, name: &str| -> anyhow::Result<Side> {
        Ok(Side {
            build: build.prepare(&plan.out.join("builds")).await?,
            config: write_gateway_config(&plan.out, name, gate_config(mock.url()), overlay)?,
            label: match overlay {
                Some(overlay) => format!("{} + {}", build.label(), overlay.display()),
                None => build.label(),
            },
        })
    };
    let runner = Runner {
        harness,
        base: side(&plan.base, plan.base_config.as_deref(), "base").await?,
        cand: side(&plan.cand, plan.cand_config.as_deref(), "cand").await?,
        plan: &plan,
    };
    let runs = runner.all_rounds().await;
    mock.shutdown().await;
    let subject = GateSubject::new(
        &plan.scenario,
        runner.base.label.clone(),
        runner.cand.label.clone(),
    );
    let options = GateOptions {
        confidence: plan.confidence,
        ..GateOptions::default()
    };
    let report = evaluate(subject, runs?, &options)?;
    report.write(&plan.out)?;
    Ok(GateOutcome {
        table: format!("{report}\ngate.json, gate.html: {}\n", plan.out.display()),
        exit_code: report.exit_code(),
    })
}

/// The gate's gateway configuration: the mock as the only provider, the cache on as in the
/// embedded stack.
fn gate_config(mock_url: &str) -> GatewayConfig {
    let mut config = mock_gateway_config(mock_url);
    config.cache.enabled = true;
    config
}

/// The reference gateway's defaults with `mock_url` as its only provider, on a free loopback
/// port.
pub(crate) fn mock_gateway_config(mock_url: &str) -> GatewayConfig {
    let mut config = GatewayConfig::with_providers(vec![ProviderConfig::new(
        "mock",
        ProviderKind::OpenAi,
        mock_url,
    )]);
    config.server.listen = ([127, 0, 0, 1], 0).into();
    config
}

/// Writes `gateway-{name}.toml`: `config`, then the tables of `overlay` (a TOML file) merged
/// over it, key by key.
pub(crate) fn write_gateway_config(
    dir: &Path,
    name: &str,
    config: GatewayConfig,
    overlay: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let mut table = toml::Table::try_from(&config).context("encoding the gateway configuration")?;
    if let Some(overlay) = overlay {
        let text = std::fs::read_to_string(overlay)
            .with_context(|| format!("reading {}", overlay.display()))?;
        let extra: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", overlay.display()))?;
        merge(&mut table, extra);
        // Checked here, so a typo fails the gate at once rather than every gateway start.
        GatewayConfig::from_toml(&toml::to_string(&table)?)
            .with_context(|| format!("{} over the gate's configuration", overlay.display()))?;
    }
    let path = dir.join(format!("gateway-{name}.toml"));
    let text = toml::to_string(&table).context("serializing the gateway configuration")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Sets every key of `extra` in `into`, descending into tables present in both.
fn merge(into: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// One side of the comparison: what runs, with which configuration.
struct Side {
    build: Runnable,
    config: PathBuf,
    label: String,
}

/// Runs the rounds of one gate, one process per gateway and per run.
struct Runner<'a> {
    harness: PathBuf,
    base: Side,
    cand: Side,
    plan: &'a GatePlan,
}

impl Runner<'_> {
    async fn all_rounds(&self) -> anyhow::Result<GateRuns> {
        let mut runs = GateRuns {
            ab: Vec::new(),
            aa: Vec::new(),
        };
        for index in 1..=self.plan.rounds {
            runs.ab.push(self.round(RoundKind::Ab, index).await?);
            runs.aa.push(self.round(RoundKind::Aa, index).await?);
        }
        Ok(runs)
    }

    /// One round, A B B A; in an A/A round the base takes the B slots too.
    async fn round(&self, kind: RoundKind, index: usize) -> anyhow::Result<Round> {
        let b = match kind {
            RoundKind::Ab => &self.cand,
            RoundKind::Aa => &self.base,
        };
        let measure = async |slot: usize, side: &Side| -> anyhow::Result<Measurements> {
            let name = format!("{}-{index}-{slot}", round_dir(kind));
            let run = self
                .run(side, &name)
                .await
                .with_context(|| format!("{} round {index}, run {slot}", kind.label()))?;
            eprintln!(
                "{} round {index}/{}, run {slot}: {:.1} req/s",
                kind.label(),
                self.plan.rounds,
                run.throughput().unwrap_or(0.0)
            );
            Ok(Measurements::from_run(&run))
        };
        let base = &self.base;
        Ok(Round::abba(
            measure(1, base).await?,
            measure(2, b).await?,
            measure(3, b).await?,
            measure(4, base).await?,
        ))
    }

    /// One run: start `side`'s gateway, drive the scenario against it, stop it.
    async fn run(&self, side: &Side, name: &str) -> anyhow::Result<RunResult> {
        let (mut gateway, url) = start_gateway(side, &self.harness).await?;
        let result = self.drive(&url, name).await;
        // Already exited is fine: the run's own error says more than the kill's would.
        let _ = gateway.kill().await;
        result
    }

    async fn drive(&self, url: &str, name: &str) -> anyhow::Result<RunResult> {
        let out = self.plan.out.join("runs").join(name);
        let mut command = Command::new(&self.harness);
        command
            .args(["scenario", &self.plan.scenario, "--target", url])
            .arg("--duration")
            .arg(format!("{}ms", self.plan.duration.0.as_millis()))
            .arg("--out")
            .arg(&out)
            .args(["--quiet", "--json"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let limit = self.plan.duration.0 + RUN_GRACE;
        let output = tokio::time::timeout(limit, command.output())
            .await
            .with_context(|| format!("the run did not finish within {limit:?}"))?
            .context("starting the scenario run")?;
        // 2 (an SLO failed) and 4 (its verdict rests on generator-saturated seconds) still
        // measured everything the gate needs; the gate's own noise check judges the rest.
        if !matches!(output.status.code(), Some(0 | 2 | 4)) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            bail!(
                "the scenario run failed ({}): {}",
                output.status,
                last.unwrap_or("no message")
            );
        }
        serde_json::from_slice(&output.stdout).context("reading the run's JSON summary")
    }
}

fn round_dir(kind: RoundKind) -> &'static str {
    match kind {
        RoundKind::Ab => "ab",
        RoundKind::Aa => "aa",
    }
}

/// Starts a gateway process and waits for the address it prints (the reference binary on
/// stdout, `harness gateway` on stderr).
async fn start_gateway(side: &Side, harness: &Path) -> anyhow::Result<(Child, String)> {
    let command = side.build.command(harness, &side.config);
    start_child(command, &format!("gateway {}", side.label), None).await
}
