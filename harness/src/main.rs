//! The `harness` command line.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use harness::cli::Cli;
use harness::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&first_line(&e.to_string())),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(cli.command.run()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// Prints one error line and returns the usage/runtime exit code.
fn fail(message: &str) -> ExitCode {
    eprintln!("error: {}", message.trim_start_matches("error: "));
    ExitCode::from(exit::ERROR as u8)
}

/// The first line of a multi-line message (clap's errors add usage and tips below it).
fn first_line(message: &str) -> String {
    message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .to_owned()
}
