//! The subcommands other than the run itself.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::{Gateway, GatewayConfig, ProviderConfig, ProviderKind};

use crate::summary;

/// `harness list`: every scenario with its default load and SLO count.
pub fn list() -> String {
    let mut out = String::new();
    for scenario in scenarios::scenario::all() {
        let slos = reports::slo::parse_slos(scenario.slo).map_or(0, |s| s.len());
        out.push_str(&format!(
            "{:<10} {}\n{:<10} default: {}; {slos} SLOs\n",
            scenario.name,
            scenario.description,
            "",
            scenario.load.describe()
        ));
    }
    out
}

/// `harness mock`: the native mock on `bind:port` until Ctrl-C (or SIGTERM).
pub async fn mock(
    bind: IpAddr,
    port: u16,
    profile: &str,
    access: MockAccess,
) -> anyhow::Result<()> {
    let profile = Profile::from_name_or_file(profile)?;
    let stop = stop_signal()?;
    let config = MockConfig {
        bind: (bind, port).into(),
        tls: access.tls,
        cert_out: access.cert_out,
        api_key: access.require_key,
        ..MockConfig::new(profile)
    };
    let server = MockServer::start(config).await?;
    let certificate = server
        .certificate_path()
        .map(|path| format!(" (certificate: {})", path.display()))
        .unwrap_or_default();
    eprintln!(
        "mock provider at {}{certificate} (Ctrl-C stops)",
        server.url()
    );
    stop.await?;
    server.shutdown().await;
    Ok(())
}

/// How clients reach `harness mock`: TLS and a required key.
#[derive(Debug, Default)]
pub struct MockAccess {
    pub tls: bool,
    pub cert_out: Option<PathBuf>,
    pub require_key: Option<String>,
}

/// `harness gateway`: the reference gateway on `bind:port` until Ctrl-C (or SIGTERM).
pub async fn gateway(
    config: Option<&Path>,
    upstream: &str,
    bind: IpAddr,
    port: u16,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::with_providers(vec![ProviderConfig::new(
            "upstream",
            ProviderKind::OpenAi,
            upstream,
        )]),
    };
    config.server.listen = (bind, port).into();
    let stop = stop_signal()?;
    let gateway = Gateway::start(config).await?;
    eprintln!("gateway at {} (Ctrl-C stops)", gateway.url());
    stop.await?;
    gateway.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM, as a future that resolves on the first of them: in a container the
/// server is process 1, which gets SIGTERM from `docker stop` and Kubernetes and has no default
/// action for it. Both are caught from this call on, so a server calls it before it prints its
/// address: a signal sent right after the address is seen stops it cleanly.
pub(crate) fn stop_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}

/// `harness report DIR`: re-renders `report.html` from `summary.json` and returns the console
/// summary of the run.
pub fn report(dir: &Path) -> anyhow::Result<String> {
    let run = reports::run_dir::read_summary(&dir.join(reports::run_dir::SUMMARY_JSON))?;
    let html = reports::run_dir::rerender_report(dir)?;
    Ok(format!(
        "{}\n  report: {}\n",
        summary::render(&run, &summary::Extras::default()),
        html.display()
    ))
}

/// `harness compare`: the comparison table and `compare.html` in the first candidate
/// directory, and the verdict's exit code.
///
/// Every directory is read (a run directory, or the run directories inside it), and every run
/// must be of one scenario: runs of different workloads would compare the workloads.
pub fn compare(base: &[PathBuf], candidate: &[PathBuf]) -> anyhow::Result<(String, u8)> {
    let mut scenario: Option<(String, PathBuf)> = None;
    let mut read = |dirs: &[PathBuf]| -> anyhow::Result<Vec<reports::RunResult>> {
        let mut runs = Vec::new();
        for dir in dirs {
            for run in reports::run_dir::read_runs(dir)? {
                match &scenario {
                    Some((name, first)) if *name != run.scenario => anyhow::bail!(
                        "runs of different scenarios: {} holds `{name}`, {} holds `{}`; compare runs of one scenario",
                        first.display(),
                        dir.display(),
                        run.scenario
                    ),
                    Some(_) => {}
                    None => scenario = Some((run.scenario.clone(), dir.clone())),
                }
                runs.push(run);
            }
        }
        Ok(runs)
    };
    let base_runs = read(base)?;
    let cand_runs = read(candidate)?;
    let comparison = reports::compare(&base_runs, &cand_runs);
    let out = candidate.first().context("no candidate directory given")?;
    let html = reports::run_dir::write_compare(out, &comparison, &base_runs, &cand_runs)?;
    let text = format!("{comparison}compare.html: {}\n", html.display());
    Ok((text, comparison.exit_code()))
}
