//! `harness gateway`: the reference gateway as a server of its own, and the configuration files
//! of the gateways the other commands start as child processes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use reference_impl::{Gateway, GatewayConfig, ProviderConfig, ProviderKind};

use crate::signal::stop_signal;
use crate::toml_overlay;

/// `harness gateway`: the reference gateway until Ctrl-C (or SIGTERM), on `bind` and `port`
/// where given, else where its configuration says (127.0.0.1:8080 by default).
pub async fn serve(
    config: Option<&Path>,
    upstream: &str,
    bind: Option<IpAddr>,
    port: Option<u16>,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::with_providers(vec![ProviderConfig::new(
            "upstream",
            ProviderKind::OpenAi,
            upstream,
        )]),
    };
    config.server.listen_on(bind, port);
    let stop = stop_signal()?;
    let gateway = Gateway::start(config).await?;
    eprintln!("gateway at {} (Ctrl-C stops)", gateway.url());
    stop.await?;
    gateway.shutdown().await;
    Ok(())
}

/// The reference gateway's defaults with `mock_url` as its only provider, on a free loopback
/// port.
pub(crate) fn config_for(mock_url: &str) -> GatewayConfig {
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
pub(crate) fn write_config(
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
        toml_overlay::overlay(&mut table, extra);
        // Checked here, so a typo fails the gate at once rather than every gateway start.
        GatewayConfig::from_toml(&toml::to_string(&table)?)
            .with_context(|| format!("{} over the gate's configuration", overlay.display()))?;
    }
    let path = dir.join(format!("gateway-{name}.toml"));
    let text = toml::to_string(&table).context("serializing the gateway configuration")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
