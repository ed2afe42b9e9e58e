//! The `harness` command line.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use harness::cli::Cli;
use harness::exit;

/// Every server this binary runs (mock, reference gateway, bare proxy) and its load generator
/// allocate and free on both worker threads; see docs/design.md, "Allocator".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&first_paragraph(&e.to_string())),
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
        Err(e) => fail(&exit::message(&e)),
    }
}

/// Prints one error line and returns the usage/runtime exit code.
fn fail(message: &str) -> ExitCode {
    eprintln!("error: {}", message.trim_start_matches("error: "));
    ExitCode::from(exit::ERROR as u8)
}

/// The first paragraph of a clap error on one line: what is wrong, with the arguments it
/// names on the lines below it (`the following required arguments were not provided: --tls`),
/// without the usage and tips that follow.
fn first_paragraph(message: &str) -> String {
    message
        .lines()
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}
