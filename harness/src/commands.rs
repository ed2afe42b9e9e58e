//! The subcommands other than the run itself.

use std::path::Path;

use anyhow::Context;
use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::{Gateway, GatewayConfig, ProviderConfig, ProviderKind};
use reports::RunResult;

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

/// `harness mock`: the native mock on 127.0.0.1 until Ctrl-C.
pub async fn mock(port: u16, profile: &str) -> anyhow::Result<()> {
    let profile = Profile::from_name_or_file(profile)?;
    let config = MockConfig {
        bind: ([127, 0, 0, 1], port).into(),
        ..MockConfig::new(profile)
    };
    let server = MockServer::start(config).await?;
    eprintln!("mock provider at {} (Ctrl-C stops)", server.url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}

/// `harness gateway`: the reference gateway on 127.0.0.1 until Ctrl-C.
pub async fn gateway(config: Option<&Path>, upstream: &str, port: u16) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::with_providers(vec![ProviderConfig::new(
            "upstream",
            ProviderKind::OpenAi,
            upstream,
        )]),
    };
    config.server.listen = ([127, 0, 0, 1], port).into();
    let gateway = Gateway::start(config).await?;
    eprintln!("gateway at {} (Ctrl-C stops)", gateway.url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    gateway.shutdown().await;
    Ok(())
}

/// Reads a run directory's `summary.json`.
pub fn load_run(dir: &Path) -> anyhow::Result<RunResult> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))
}

/// `harness report DIR`: the summary of a finished run, again.
pub fn report(dir: &Path) -> anyhow::Result<String> {
    let run = load_run(dir)?;
    Ok(summary::render(&run, None))
}
