//! `harness overhead`: what a gateway adds, measured from the client.
//!
//! The same requests (same seed, same bodies, same order) go straight to the upstream and
//! through the gateway (and, with `--bare`, through a bare proxy) in short alternating rounds
//! at each load level, streamed and not. `reports::overhead` pairs the rounds into added
//! latency and TTFT per percentile with intervals, throughput ratios and the highest rate
//! within a p99 bound. Without `--target` the mock and the reference gateway are started as
//! child processes of this binary (`harness mock`, `harness gateway`), so they share no
//! runtime with the load.

mod bare;
pub(crate) mod drive;
mod plan;
mod rounds;
mod sides;
pub(crate) mod tally;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use reports::ReportError;
use reports::overhead::{OverheadReport, OverheadSettings, OverheadSubject, evaluate};
use scenarios::client::{Client, ClientError};
use scenarios::workload::{Prompt, PromptGenerator, PromptMix, Prompts};

pub use bare::serve_bare_proxy;
pub use plan::{OverheadPlan, RequestFlags};

use drive::Requests;
use plan::Subject;
use rounds::{Driven, Level};
use sides::Sides;

/// Distinct request bodies cycled through: enough that no proxy sees one body over and over,
/// few enough to build at once.
const PROMPTS: usize = 512;

/// Why an overhead measurement could not run; each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum OverheadError {
    #[error("--{flag}: {why}")]
    Flag { flag: String, why: String },
    #[error("{0}")]
    Start(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Evaluate(#[from] reports::overhead::OverheadError),
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OverheadError {
    fn flag(flag: &str, why: impl Into<String>) -> OverheadError {
        OverheadError::Flag {
            flag: flag.to_owned(),
            why: why.into(),
        }
    }
}

/// A finished measurement: the report, written as `overhead.json` and `overhead.html` into
/// `dir`.
pub struct Overhead {
    pub report: OverheadReport,
    pub dir: PathBuf,
}

/// Measures what `plan` asks for and writes the run directory. Every process it starts is
/// stopped before it returns, on success or error.
pub async fn measure(plan: &OverheadPlan) -> Result<Overhead, OverheadError> {
    let checked = plan.check()?;
    let started_at = Utc::now();
    let dir = run_dir(&checked.out, started_at)?;
    let sides = Sides::start(&checked.subject, checked.bare, &dir).await?;
    let subject = OverheadSubject {
        direct: sides.direct.label.url.clone(),
        sides: sides.through.iter().map(|s| s.label.clone()).collect(),
    };
    let measured = async {
        let mut driven = Vec::with_capacity(subject.sides.len() + 1);
        for side in sides.all() {
            driven.push(Driven {
                name: side.label.name.clone(),
                client: Client::new(&[&side.label.url], checked.client.clone())?,
                process: side.process,
            });
        }
        for side in &driven {
            side.client.preflight().await?;
        }
        eprintln!(
            "overhead: direct {}, {}; {} rounds of {} s per level",
            subject.direct,
            subject
                .sides
                .iter()
                .map(|s| format!("{} {}", s.name, s.url))
                .collect::<Vec<_>>()
                .join(", "),
            checked.rounds,
            reports::model::short(checked.round.as_secs_f64())
        );
        if let Subject::External {
            gateway_pid: Some(pid),
            ..
        } = checked.subject
            && let Some(note) = crate::process::scheduling_note(pid)
        {
            eprintln!("  {note}");
        }
        let prompts = prompts(plan.seed);
        let mut levels = Vec::with_capacity(checked.levels.len());
        for &(load, stream) in &checked.levels {
            let level = Level {
                sides: &driven,
                requests: Requests {
                    prompts: prompts.clone(),
                    model: Arc::from(plan.model.as_str()),
                    stream,
                },
                load,
                rounds: checked.rounds,
                round: checked.round,
            };
            levels.push(level.run().await);
        }
        Ok::<_, OverheadError>(levels)
    }
    .await;
    sides.stop().await;
    let settings = OverheadSettings {
        rounds: checked.rounds,
        round_secs: checked.round.as_secs_f64(),
        seed: plan.seed,
        model: plan.model.clone(),
        api: checked.client.api.name().to_owned(),
        p99_bound_us: u64::try_from(plan.p99_bound.0.as_micros()).unwrap_or(u64::MAX),
    };
    let report = evaluate(started_at, subject, settings, measured?)?;
    report.write(&dir)?;
    Ok(Overhead { report, dir })
}

/// The same request bodies for every side and every run with this seed.
pub(crate) fn prompts(seed: u64) -> Arc<[Prompt]> {
    let mut generator = PromptGenerator::new(&Prompts::Mix(PromptMix::conversational()), seed, 0);
    (0..PROMPTS).map(|_| generator.next_prompt()).collect()
}

/// A fresh `overhead-<UTC time>` run directory under `out`.
fn run_dir(out: &Path, started_at: chrono::DateTime<Utc>) -> Result<PathBuf, OverheadError> {
    let name = format!("overhead-{}", started_at.format("%Y%m%dT%H%M%SZ"));
    let dir = crate::scenario::unused_dir(out, &name);
    std::fs::create_dir_all(&dir).map_err(|source| OverheadError::Dir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}
