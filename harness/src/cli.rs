//! The command line: subcommands and flags (clap derive), and which module runs each.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::gate::GatePlan;
use crate::overhead::OverheadPlan;
use crate::scenario::options::RunOptions;
use crate::{compare, exit, gate, gateway, list, merge, mock, overhead, report, scenario};

/// Load-tests and benchmarks LLM gateways.
#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    after_help = "Examples:\n  \
        harness list\n  \
        harness scenario smoke\n  \
        harness scenario stress --duration 60s\n  \
        harness scenario streaming --rate 50 --arrivals poisson --duration 30s\n  \
        harness scenario chat --target http://127.0.0.1:8080 --users 10 --duration 20s\n  \
        harness report target/gatebench/runs/smoke-20260101T000000Z\n  \
        harness compare BASE_DIR CANDIDATE_DIR\n  \
        harness scenario chat --target http://10.0.0.5:8080 --rate 300 --duration 5m --worker 2/3\n  \
        harness merge runs/w1 runs/w2 runs/w3 --out runs/merged\n  \
        harness gate --base old/gateway --cand target/release/gateway --rounds 6\n  \
        harness overhead --bare"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: start the mock and the gateway (unless --target), drive the load, report.
    #[command(after_help = "Examples:\n  \
        harness scenario smoke\n  \
        harness scenario stress --stages 20s:50,20s:100,10s:0\n  \
        harness scenario streaming --rate 100 --max-users 300 --duration 30s --goodput ttft:200ms,tpot:50ms\n  \
        harness scenario chat --config run.toml --json > summary.json\n\n\
        Exit codes: 0 all SLOs met, 1 usage or runtime error, 2 an SLO failed.")]
    Scenario {
        /// Scenario name (see `harness list`).
        name: String,
        #[command(flatten)]
        options: Box<RunOptions>,
        /// Read options from a TOML file; flags given on the command line win.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the scenarios with their defaults.
    List,
    /// Run the native mock provider standalone until Ctrl-C.
    #[command(after_help = "Examples:\n  \
        harness mock --port 9000 --profile realistic\n  \
        harness mock --bind 0.0.0.0 --port 9000   (reachable from other hosts or containers)\n  \
        harness mock --tls --require-key sk-test   (https with a self-signed certificate, keyed)")]
    Mock(mock_providers::cli::ServeArgs),
    /// Run the reference gateway standalone until Ctrl-C.
    #[command(after_help = "Examples:\n  \
        harness gateway --upstream http://127.0.0.1:9000\n  \
        harness gateway --config gateway.toml")]
    Gateway {
        /// Gateway configuration file (TOML); without it, one OpenAI upstream.
        #[arg(long, value_name = "FILE", conflicts_with = "upstream")]
        config: Option<PathBuf>,
        /// OpenAI-compatible upstream base URL.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        upstream: String,
        /// Port to listen on (0 picks a free one), over the config file's `server.listen`
        /// [default: 8080].
        #[arg(long)]
        port: Option<u16>,
        /// Address to listen on, over the config file's `server.listen`; loopback unless other
        /// hosts must reach it [default: 127.0.0.1].
        #[arg(long, value_name = "IP")]
        bind: Option<IpAddr>,
    },
    /// Re-render the reports of a run directory from its summary.json.
    #[command(
        after_help = "Example:\n  harness report target/gatebench/runs/smoke-20260101T000000Z"
    )]
    Report {
        /// A run directory (holds summary.json).
        dir: PathBuf,
    },
    /// Merge the run directories of the workers of one load (`scenario --worker I/N`) into one
    /// run directory: histograms added, counters summed, seconds aligned by wall clock, SLOs
    /// judged again on the merged run.
    #[command(after_help = "Examples:\n  \
        harness merge runs/chat-20260101T000000Z-worker-1-of-3 runs/chat-20260101T000000Z-worker-2-of-3 \\\n      \
            runs/chat-20260101T000000Z-worker-3-of-3 --out runs/chat-merged\n  \
        harness merge /results/run-1 --out /results/run-1-merged   (every run directory inside)\n\n\
        Exit codes: 0 all SLOs met, 1 usage or runtime error, 2 an SLO failed.")]
    Merge {
        /// Worker run directories, or directories whose subdirectories are worker runs.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// The merged run directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Judge the merged run by this SLO file instead of the workers' SLOs.
        #[arg(long, value_name = "FILE")]
        slo: Option<PathBuf>,
        /// No summary table (the verdict line stays).
        #[arg(long)]
        quiet: bool,
        /// Print the merged summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Compare a candidate's runs with a baseline's: a table of changes with intervals and
    /// verdicts, and compare.html in the (first) candidate directory.
    #[command(after_help = "Examples:\n  \
        harness compare runs/base runs/candidate\n  \
        harness compare --base runs/base-1 runs/base-2 runs/base-3 --cand runs/cand-1 runs/cand-2 runs/cand-3\n  \
        harness compare --base runs/base-all --cand runs/cand-all   (every run directory inside)\n\n\
        Each side's runs are averaged; with two or more runs a side a bootstrap interval of the\n\
        change is judged against each measure's margin. One run a side cannot tell a change from\n\
        the noise between runs, so every measure is then inconclusive.\n\n\
        Exit codes: 0 unchanged or improved, 1 usage or runtime error, 3 regression, 4 inconclusive.")]
    Compare {
        #[command(flatten)]
        sides: CompareSides,
    },
    /// Load gate: base and candidate gateways in interleaved A B B A rounds, plus A/A rounds
    /// as a self-check; writes gate.json and gate.html.
    #[command(after_help = "Examples:\n  \
        harness gate --base base/gateway --cand target/release/gateway\n  \
        harness gate --base origin/main --cand HEAD --rounds 6\n  \
        harness gate --base embedded --cand embedded --cand-config slower.toml\n  \
        harness gate --base old/gateway --cand new/gateway --tolerance throughput=3% --tolerance overhead_p50=5%\n  \
        harness gate --base-cmd 'uvicorn app:main --port {port}' --cand-cmd './gw --listen 127.0.0.1:{port} --upstream {upstream}'\n\n\
        Each run starts each gateway as its own process group in front of a mock that answers at\n\
        once (`BIN --config FILE --port 0`, `harness gateway` for `embedded`, or the command run\n\
        through `sh -c`) and measures every level straight to the mock and through the gateway:\n\
        throughput, error rate, the latency the gateway adds as the client sees it, its own\n\
        overhead header when it sends one, and TTFT. A probe of the base's capacity sets the\n\
        open-model rate unless --rate is given.\n\n\
        Exit codes: 0 unchanged or improved, 1 usage or runtime error, 3 regression, 4 inconclusive.")]
    Gate {
        #[command(flatten)]
        plan: Box<GatePlan>,
    },
    /// What a gateway adds, measured from the client: the same requests through the gateway
    /// and straight to its upstream in alternating rounds, at several loads; writes
    /// overhead.json and overhead.html.
    #[command(after_help = "Examples:\n  \
        harness overhead   (starts a mock and the reference gateway)\n  \
        harness overhead --bare --rates 500,1000,2000\n  \
        harness overhead --gateway-config slower.toml --concurrency 1 --stream off\n  \
        harness overhead --target http://127.0.0.1:4000 --direct http://127.0.0.1:9000 --api-key-env KEY\n\n\
        Exit codes: 0 measured, 1 usage or runtime error.")]
    Overhead {
        #[command(flatten)]
        plan: Box<OverheadPlan>,
    },
    /// The bare proxy (hyper in, hyper out) standalone, for `harness overhead --bare`.
    #[command(hide = true)]
    BareProxy {
        /// The http:// upstream base URL.
        #[arg(long)]
        upstream: String,
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Address to listen on.
        #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
        bind: IpAddr,
    },
}

/// The two sides of `harness compare`: one directory each as positionals, or several each
/// with `--base` and `--cand`.
#[derive(Debug, clap::Args)]
pub struct CompareSides {
    /// The baseline: a run directory, or a directory of run directories.
    #[arg(
        value_name = "BASE_DIR",
        required_unless_present = "base",
        requires = "cand_dir",
        conflicts_with_all = ["base", "cand"]
    )]
    base_dir: Option<PathBuf>,
    /// The candidate, likewise.
    #[arg(value_name = "CANDIDATE_DIR")]
    cand_dir: Option<PathBuf>,
    /// Baseline run directories (or directories of them), instead of BASE_DIR.
    #[arg(long, value_name = "DIR", num_args = 1.., requires = "cand")]
    base: Vec<PathBuf>,
    /// Candidate run directories (or directories of them), instead of CANDIDATE_DIR.
    #[arg(long, value_name = "DIR", num_args = 1.., requires = "base")]
    cand: Vec<PathBuf>,
}

impl CompareSides {
    /// The base's directories and the candidate's, whichever way they were given.
    pub fn into_dirs(self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        match (self.base_dir, self.cand_dir) {
            (Some(base), Some(cand)) => (vec![base], vec![cand]),
            _ => (self.base, self.cand),
        }
    }
}

impl Command {
    /// Runs the command and returns its exit code ([`exit`]); an error is a usage or runtime
    /// error (exit 1), printed by the caller.
    pub async fn run(self) -> anyhow::Result<i32> {
        match self {
            Command::Scenario {
                name,
                options,
                config,
            } => scenario::command(&name, *options, config.as_deref()).await,
            Command::List => {
                print!("{}", list::render());
                Ok(exit::OK)
            }
            Command::Mock(args) => {
                mock::serve(args).await?;
                Ok(exit::OK)
            }
            Command::Gateway {
                config,
                upstream,
                port,
                bind,
            } => {
                gateway::serve(config.as_deref(), &upstream, bind, port).await?;
                Ok(exit::OK)
            }
            Command::Report { dir } => {
                print!("{}", report::rerender(&dir)?);
                Ok(exit::OK)
            }
            Command::Gate { plan } => {
                let outcome = gate::gate(*plan).await?;
                print!("{}", outcome.table);
                Ok(i32::from(outcome.exit_code))
            }
            Command::Overhead { plan } => {
                let measured = overhead::measure(&plan).await?;
                print!("{}", measured.report);
                eprintln!("overhead.json, overhead.html: {}", measured.dir.display());
                Ok(exit::OK)
            }
            Command::BareProxy {
                upstream,
                port,
                bind,
            } => {
                overhead::serve_bare_proxy(&upstream, bind, port).await?;
                Ok(exit::OK)
            }
            Command::Merge {
                dirs,
                out,
                slo,
                quiet,
                json,
            } => {
                let merged = merge::merge(&merge::MergePlan { dirs, out, slo })?;
                eprintln!("merged all {} workers of the load", merged.workers);
                scenario::conclude(
                    &merged.result,
                    &merged.dir,
                    scenario::Print { json, quiet },
                    &scenario::summary::Extras::default(),
                )
            }
            Command::Compare { sides } => {
                let (base, candidate) = sides.into_dirs();
                let (table, code) = compare::compare(&base, &candidate)?;
                print!("{table}");
                Ok(i32::from(code))
            }
        }
    }
}
