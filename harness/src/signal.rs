//! Stopping a server the way containers and terminals ask.

use anyhow::Context;

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
