//! `mock-providers`: run the native mock standalone.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use mock_providers::{MockConfig, MockServer, Profile};

/// OpenAI- and Anthropic-compatible mock provider for gateway load tests.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  mock-providers --port 8081 --profile realistic\n  mock-providers --profile my-profile.toml"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// `fast`, `realistic`, or the path of a TOML profile.
    #[arg(long, default_value = "realistic")]
    profile: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let started = async {
        let profile = Profile::from_name_or_file(&args.profile)?;
        MockServer::start(MockConfig {
            bind: SocketAddr::new(args.host, args.port),
            ..MockConfig::new(profile)
        })
        .await
    };
    match started.await {
        Ok(server) => {
            println!("mock-providers listening on {}", server.url());
            server
                .serve_until(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
                .await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mock-providers: {e}");
            ExitCode::FAILURE
        }
    }
}
