//! `gateway`: runs the reference gateway until SIGTERM or ctrl-c.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reference_impl::{Gateway, GatewayConfig};

/// The reference LLM gateway.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file; without one the built-in defaults are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this port (0 picks a free one), overriding `server.listen`.
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => GatewayConfig::load(path),
        None => {
            let mut config = GatewayConfig::default();
            config.apply_env();
            Ok(config)
        }
    };
    let mut config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(port) = args.port {
        config.server.listen.set_port(port);
    }
    let handle = match Gateway::start(config).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("gateway listening on {}", handle.url());
    shutdown_signal().await;
    eprintln!("gateway: shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
