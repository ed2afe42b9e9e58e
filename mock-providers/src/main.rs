//! `mock-providers`: run the native mock standalone.

use std::process::ExitCode;

use clap::Parser;
use mock_providers::MockServer;
use mock_providers::cli::ServeArgs;

/// OpenAI- and Anthropic-compatible mock provider for gateway load tests.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  mock-providers --port 8081 --profile realistic\n  mock-providers --profile my-profile.toml\n  mock-providers --port 8443 --tls --cert-out mock.pem --require-key sk-test\n\nStops cleanly (exit 0) on Ctrl-C or SIGTERM."
)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let stop = StopSignal::install();
    let started = async { MockServer::start(args.serve.config()?).await };
    match started.await {
        Ok(server) => {
            match server.certificate_path() {
                Some(path) => println!(
                    "mock-providers listening on {} (certificate: {})",
                    server.url(),
                    path.display()
                ),
                None => println!("mock-providers listening on {}", server.url()),
            }
            server.serve_until(stop.wait()).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mock-providers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM: in a container the mock is PID 1 and `docker stop` sends SIGTERM, which
/// a PID 1 without a handler would ignore until the runtime kills it.
///
/// Installed before the address is printed, so a supervisor that signals as soon as it has read
/// the line cannot beat the handler to it.
struct StopSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
            match signals {
                Ok(signals) => Self {
                    signals: Some(signals),
                },
                Err(e) => {
                    tracing::warn!("cannot watch SIGINT/SIGTERM, falling back to Ctrl-C: {e}");
                    Self { signals: None }
                }
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        if let Err(e) = tokio::signal::ctrl_c().await {
            // Without any signal to wait for, serving on is the only useful thing left.
            tracing::warn!("cannot watch Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    }
}
