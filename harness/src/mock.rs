//! `harness mock`: the native mock provider as a server of its own.

use mock_providers::MockServer;
use mock_providers::cli::ServeArgs;

use crate::signal::stop_signal;

/// `harness mock`: the native mock as `args` ask, until Ctrl-C (or SIGTERM).
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let stop = stop_signal()?;
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
