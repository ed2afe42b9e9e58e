//! `harness mock`: the native mock provider as a server of its own.

use std::net::IpAddr;
use std::path::PathBuf;

use mock_providers::{MockConfig, MockServer, Profile};

use crate::signal::stop_signal;

/// `harness mock`: the native mock on `bind:port` until Ctrl-C (or SIGTERM).
pub async fn serve(
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
