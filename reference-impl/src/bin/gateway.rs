//! `gateway`: runs the reference gateway until SIGTERM or ctrl-c.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reference_impl::{Gateway, GatewayConfig};

/// The allocator `harness gateway` runs the gateway with; see docs/design.md, "Allocator".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Listen on this IP address (e.g. 0.0.0.0), overriding `server.listen`.
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
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
    config.server.listen_on(args.bind, args.port);
    // Installed before the gateway listens: a SIGTERM sent as soon as the address is printed
    // must stop it cleanly, not kill it with the default action.
    let stop = match shutdown_signal() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("gateway: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = match Gateway::start(config).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("gateway listening on {}", handle.url());
    stop.await;
    eprintln!("gateway: shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or ctrl-c (SIGINT); the handlers are installed when this is called.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        );
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
