//! The `harness` command line.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use harness::cli::{Cli, Command};
use harness::options::RunOptions;
use harness::{commands, exit, gate, merge, overhead, resolve, run, summary};
use reports::RunResult;

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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => fail(&format!("{e:#}")),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Scenario {
            name,
            options,
            config,
        } => {
            let options = match config {
                Some(path) => RunOptions::load(&path)?.overridden_by(*options),
                None => *options,
            };
            let resolved = resolve::resolve(&name, options)?;
            let (json, quiet) = (resolved.json, resolved.quiet);
            // One worker's share is not the load its SLOs are about: it exits 0 once its run
            // directory is written, and `harness merge` gives the verdict of the whole.
            let share_only = resolved.worker.count() > 1;
            let outcome = run::run(resolved).await?;
            let extras = summary::Extras {
                stages: outcome.stages.as_deref(),
                changes: &outcome.changes,
                cache_latency: Some(&outcome.cache_latency),
            };
            let code = conclude(
                &outcome.result,
                &outcome.dir,
                Print { json, quiet },
                &extras,
            )?;
            Ok(if share_only { exit::OK } else { code })
        }
        Command::List => {
            print!("{}", commands::list());
            Ok(exit::OK)
        }
        Command::Mock {
            port,
            bind,
            profile,
            tls,
            cert_out,
            require_key,
        } => {
            let access = commands::MockAccess {
                tls,
                cert_out,
                require_key,
            };
            commands::mock(bind, port, &profile, access)
                .await
                .map(|()| exit::OK)
        }
        Command::Gateway {
            config,
            upstream,
            port,
            bind,
        } => commands::gateway(config.as_deref(), &upstream, bind, port)
            .await
            .map(|()| exit::OK),
        Command::Report { dir } => {
            print!("{}", commands::report(&dir)?);
            Ok(exit::OK)
        }
        Command::Gate { plan } => {
            let outcome = gate::gate(*plan).await?;
            print!("{}", outcome.table);
            Ok(i32::from(outcome.exit_code))
        }
        Command::Overhead { plan } => {
            let measured = overhead::measure(&plan).await?;
            print!("{}", measured.report);
            eprintln!("overhead.json, overhead.html: {}", measured.dir.display());
            Ok(exit::OK)
        }
        Command::BareProxy {
            upstream,
            port,
            bind,
        } => overhead::serve_bare_proxy(&upstream, bind, port)
            .await
            .map(|()| exit::OK),
        Command::Merge {
            dirs,
            out,
            slo,
            quiet,
            json,
        } => {
            let merged = merge::merge(&merge::MergePlan { dirs, out, slo })?;
            eprintln!("merged all {} workers of the load", merged.workers);
            conclude(
                &merged.result,
                &merged.dir,
                Print { json, quiet },
                &summary::Extras::default(),
            )
        }
        Command::Compare { sides } => {
            let (base, candidate) = sides.into_dirs();
            let (table, code) = commands::compare(&base, &candidate)?;
            print!("{table}");
            Ok(i32::from(code))
        }
    }
}

/// How a finished run is printed on stdout.
#[derive(Clone, Copy)]
struct Print {
    /// The whole result as JSON.
    json: bool,
    /// Nothing but the verdict line (on stderr).
    quiet: bool,
}

/// Prints a finished (or merged) run and returns its exit code: 0 when every SLO was met.
fn conclude(
    result: &RunResult,
    dir: &Path,
    print: Print,
    extras: &summary::Extras<'_>,
) -> anyhow::Result<i32> {
    if print.json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else if !print.quiet {
        print!("{}", summary::render(result, extras));
    }
    eprintln!("{}", summary::verdict(result, dir));
    let code = exit::of_run(result);
    if code == exit::INCONCLUSIVE && result.sweep.is_some() {
        eprintln!(
            "inconclusive: the load generator saturated at or below the first rate that failed \
             (exit 4), so the top rates describe the client; sweep with fewer --max-users, or \
             with the target on another machine"
        );
    } else if code == exit::INCONCLUSIVE {
        eprintln!(
            "inconclusive: the SLOs failed only from the second the load generator saturated \
             (exit 4); run with less load, or with the target on another machine"
        );
    }
    Ok(code)
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
