//! The flags of `harness overhead`, and their check into a plan that can run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use reports::overhead::Load;
use scenarios::client::{Api, ClientOptions};

use super::OverheadError;
use crate::process;
use crate::scenario::options::{HeaderEntry, RunOptions, Span};
use crate::scenario::{DEFAULT_MODEL, DEFAULT_OUT, PlanError, client_options};

/// Most requests in flight a closed level may hold: beyond it the load generator, not the
/// proxy, is what a 2-core machine would measure.
const MAX_CONCURRENCY: u32 = 4_096;
/// Fastest open-model rate accepted, arrivals per second.
const MAX_RATE: f64 = 1_000_000.0;
/// Shortest share of a round one side may get: below it a round holds too few requests at low
/// load for a p99.
const MIN_SHARE: Duration = Duration::from_millis(100);

/// What `harness overhead` measures and how: the command's flags.
#[derive(Clone, Debug, Args)]
pub struct OverheadPlan {
    /// A gateway to measure, already running in front of the upstream given with --direct
    /// (ours or any other); without it, the reference gateway is started in front of a mock.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The upstream the --target gateway forwards to (e.g. `harness mock`), which the same
    /// requests are sent to directly.
    #[arg(long, value_name = "URL")]
    pub direct: Option<String>,
    /// The --target gateway's process on this machine: its CPU time per request, with every
    /// process under it (a supervisor's workers), is read beside the latency.
    #[arg(long, value_name = "PID", requires = "target")]
    pub gateway_pid: Option<u32>,
    /// The --direct upstream's process on this machine, read the same way.
    #[arg(long, value_name = "PID", requires = "direct")]
    pub direct_pid: Option<u32>,
    /// Also measure a bare proxy (hyper in, hyper out, nothing else) in front of the same
    /// upstream: the least any proxy costs on this machine.
    #[arg(long)]
    pub bare: bool,
    /// Mock profile when no --target is given: `fast` (answers at once), `realistic` or a TOML
    /// profile file.
    #[arg(long, default_value = "fast", conflicts_with = "target")]
    pub profile: String,
    /// TOML merged over the started reference gateway's configuration (e.g. `[inject]
    /// busy_us = 200`).
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub gateway_config: Option<PathBuf>,
    /// Also measure the reference gateway with this TOML merged over its configuration, as one
    /// more side in the same rounds, named `gateway+<file stem>` (repeatable): a change to the
    /// gateway set against the gateway without it, with the machine's drift paired out.
    #[arg(long, value_name = "FILE", conflicts_with = "target", action = ArgAction::Append)]
    pub variant: Vec<PathBuf>,
    /// Closed-model levels: requests in flight, comma-separated.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "1,16,64"
    )]
    pub concurrency: Vec<u32>,
    /// Open-model levels: arrivals per second, comma-separated; latency from each arrival's
    /// intended start.
    #[arg(long, value_name = "R,...", value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Streamed requests, plain ones, or both at every level.
    #[arg(long, value_enum, default_value = "both")]
    pub stream: StreamChoice,
    /// Rounds per level and stream mode.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Length of one round in seconds, shared equally by the sides (direct, gateway, bare).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub round_secs: f64,
    /// Added p99 up to which an open-model rate counts as within bound.
    #[arg(long, value_name = "DURATION", default_value = "1ms")]
    pub p99_bound: Span,
    /// Seed of the request bodies (every side gets the same ones in the same order).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Model name sent in requests.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// A request not complete after this long counts as a timeout.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: Span,
    #[command(flatten)]
    pub request: RequestFlags,
    /// Directory the run directory (`overhead-<UTC time>`) is created in.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Which requests are streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StreamChoice {
    Both,
    On,
    Off,
}

impl StreamChoice {
    fn modes(self) -> &'static [bool] {
        match self {
            StreamChoice::Both => &[false, true],
            StreamChoice::On => &[true],
            StreamChoice::Off => &[false],
        }
    }
}

/// How requests are shaped for a gateway that is not ours, as `harness scenario` takes them.
#[derive(Clone, Debug, Default, Args)]
pub struct RequestFlags {
    /// The API the target and the upstream speak: `openai` or `anthropic`.
    #[arg(long, value_name = "API")]
    pub api: Option<Api>,
    /// Send this header with every request (repeatable); credentials are never printed.
    #[arg(long = "header", value_name = "NAME:VALUE", action = ArgAction::Append)]
    pub headers: Vec<HeaderEntry>,
    /// Read the API key from this environment variable and send it as the API expects.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Trust the CA certificates of this PEM file for `https://` sides.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Speak HTTP/1.1 only, even where a side offers HTTP/2 through ALPN.
    #[arg(long)]
    pub http1: bool,
}

impl RequestFlags {
    /// The client options, checked as `harness scenario` checks the same flags.
    pub(crate) fn client(&self, timeout: Duration) -> Result<ClientOptions, OverheadError> {
        let options = RunOptions {
            api: self.api,
            headers: self.headers.clone(),
            api_key_env: self.api_key_env.clone(),
            ca_cert: self.ca_cert.clone(),
            insecure: Some(self.insecure),
            http1: Some(self.http1),
            ..RunOptions::default()
        };
        client_options(&options, timeout).map_err(|e| match e {
            PlanError::Invalid { field, why } => OverheadError::flag(&field.replace('_', "-"), why),
            other => OverheadError::flag("request options", other.to_string()),
        })
    }
}

impl OverheadPlan {
    /// Each `--variant` file with its name (the file stem), every name distinct.
    fn variants(&self) -> Result<Vec<(String, PathBuf)>, OverheadError> {
        let mut named: Vec<(String, PathBuf)> = Vec::with_capacity(self.variant.len());
        for file in &self.variant {
            let stem = file
                .file_stem()
                .and_then(|stem| stem.to_str())
                .filter(|stem| !stem.is_empty())
                .ok_or_else(|| {
                    OverheadError::flag(
                        "variant",
                        format!("{} has no file name to name its side", file.display()),
                    )
                })?;
            if named.iter().any(|(seen, _)| seen == stem) {
                return Err(OverheadError::flag(
                    "variant",
                    format!("two variants are named {stem}: give the files distinct names"),
                ));
            }
            named.push((stem.to_owned(), file.clone()));
        }
        Ok(named)
    }
}

/// Where the sides are.
#[derive(Clone, Debug)]
pub(super) enum Subject {
    /// Start a mock with this profile and the reference gateway in front of it, configured
    /// with this overlay.
    Started {
        profile: String,
        overlay: Option<PathBuf>,
        /// More reference gateways, each with its name (side `gateway+<name>`) and overlay.
        variants: Vec<(String, PathBuf)>,
    },
    /// A gateway someone else started, its upstream, and their processes where given.
    External {
        target: String,
        direct: String,
        gateway_pid: Option<u32>,
        direct_pid: Option<u32>,
    },
}

/// A plan whose every flag has been checked.
#[derive(Clone, Debug)]
pub(super) struct Checked {
    pub subject: Subject,
    pub bare: bool,
    /// Every level, closed ones first, each with every stream mode asked for.
    pub levels: Vec<(Load, bool)>,
    pub rounds: usize,
    pub round: Duration,
    pub client: ClientOptions,
    pub out: PathBuf,
}

impl OverheadPlan {
    /// Checks every flag, naming the first one that is wrong.
    pub(super) fn check(&self) -> Result<Checked, OverheadError> {
        if let Some(&bad) = self
            .concurrency
            .iter()
            .find(|&&c| c == 0 || c > MAX_CONCURRENCY)
        {
            return Err(OverheadError::flag(
                "concurrency",
                format!("{bad} is not between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if let Some(&bad) = self
            .rates
            .iter()
            .find(|&&r| !(r.is_finite() && r > 0.0 && r <= MAX_RATE))
        {
            return Err(OverheadError::flag(
                "rates",
                format!("{bad} is not a rate above 0 and at most {MAX_RATE} per second"),
            ));
        }
        if self.rounds < 2 {
            return Err(OverheadError::flag(
                "rounds",
                "at least 2 rounds are needed for an interval",
            ));
        }
        // Direct, the gateway, its variants and the bare proxy share each round.
        let sides =
            u32::try_from(2 + usize::from(self.bare) + self.variant.len()).unwrap_or(u32::MAX);
        let round = Duration::try_from_secs_f64(self.round_secs)
            .ok()
            .filter(|round| *round / sides >= MIN_SHARE && round.as_secs() <= 3_600)
            .ok_or_else(|| {
                OverheadError::flag(
                    "round-secs",
                    format!(
                        "{} is not between {} s ({} ms per side) and 3600 s",
                        self.round_secs,
                        MIN_SHARE.as_secs_f64() * f64::from(sides),
                        MIN_SHARE.as_millis()
                    ),
                )
            })?;
        let subject = match (&self.target, &self.direct) {
            (Some(target), Some(direct)) => {
                if self.bare && !direct.trim().starts_with("http://") {
                    return Err(OverheadError::flag(
                        "bare",
                        "the bare proxy reaches its upstream over plain http://; --direct is not",
                    ));
                }
                for (flag, pid) in [
                    ("gateway-pid", self.gateway_pid),
                    ("direct-pid", self.direct_pid),
                ] {
                    if let Some(pid) = pid
                        && !process::runs(pid)
                    {
                        return Err(OverheadError::flag(
                            flag,
                            format!("no process {pid} on this machine"),
                        ));
                    }
                }
                Subject::External {
                    target: target.trim().trim_end_matches('/').to_owned(),
                    direct: direct.trim().trim_end_matches('/').to_owned(),
                    gateway_pid: self.gateway_pid,
                    direct_pid: self.direct_pid,
                }
            }
            (Some(_), None) => {
                return Err(OverheadError::flag(
                    "target",
                    "needs --direct, the upstream the gateway forwards to",
                ));
            }
            (None, Some(_)) => {
                return Err(OverheadError::flag(
                    "direct",
                    "needs --target, the gateway in front of it",
                ));
            }
            (None, None) => {
                if self.request.api == Some(Api::Anthropic) {
                    return Err(OverheadError::flag(
                        "api",
                        "the reference gateway speaks the OpenAI API: anthropic needs --target \
                         and --direct",
                    ));
                }
                Subject::Started {
                    profile: self.profile.clone(),
                    overlay: self.gateway_config.clone(),
                    variants: self.variants()?,
                }
            }
        };
        let loads = self
            .concurrency
            .iter()
            .map(|&concurrency| Load::Closed { concurrency })
            .chain(self.rates.iter().map(|&rate| Load::Open { rate }));
        let levels: Vec<(Load, bool)> = loads
            .flat_map(|load| self.stream.modes().iter().map(move |&s| (load, s)))
            .collect();
        if levels.is_empty() {
            return Err(OverheadError::flag(
                "concurrency",
                "no level to measure: give --concurrency or --rates",
            ));
        }
        Ok(Checked {
            subject,
            bare: self.bare,
            levels,
            rounds: self.rounds,
            round,
            client: self.request.client(self.timeout.0)?,
            out: self
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
        })
    }
}
