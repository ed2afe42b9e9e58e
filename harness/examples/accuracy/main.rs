//! Accuracy at scale: the harness's TTFT and ITL beside a minimal reference client's, against
//! a mock paced at a fixed TTFT and ITL, at several numbers of concurrent streams, through the
//! reference gateway and straight to the mock; with `--paths gateway,bare,direct` also through
//! a bare proxy, which shows what relaying alone costs where the gateway is the first to run
//! out.
//!
//! ```text
//! cargo build --release -p harness --bins --examples
//! target/release/examples/accuracy [--streams 100,500,1000] [--rounds 2] [--duration 15s] [--warmup 3s]
//! ```
//!
//! The mock (`harness mock`, TTFT 50 ms, ITL 10 ms, `--tokens` tokens per stream) and the
//! gateway (`harness gateway --upstream`: no cache, no limiter) run as processes of their own. For each
//! stream count and each path, the two clients take turns (H R R H ...), each as a process of
//! its own for `--duration`: the harness (`harness scenario streaming --users N`, synthetic
//! prompts asking for `--tokens` tokens) and the reference client (this example re-executed as
//! `accuracy reference`, see `reference.rs`), which shares no code with the harness's client.
//! The table gives the median over rounds of each percentile with its range, the harness's
//! ratio to the reference, whether either client saw its own runtime saturated, each client's
//! CPU time per content event, and whether the targets hold: p50 within 2% and p99 within 5%
//! of the reference, TTFT p50 within 3 ms of the paced 50 ms.
//!
//! Both clients leave out of their percentiles the requests that end in the first `--warmup`
//! seconds of a run (the harness: its per-second intervals from that second on). Every stream
//! starts at once, so the first requests also open every connection, through the gateway and
//! to the mock: that wave's TTFT is 58-73 ms for either client against about 52 ms after it,
//! and with 2 s streams in a 15 s run it is a seventh of the requests, enough to set the p99
//! of whichever run had the slower start. CPU per event counts every event.
//!
//! The harness binary is `target/release/harness` beside this example (`--harness PATH` for
//! another build). Everything listens on 127.0.0.1; every client run ends by itself.

mod reference;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use reports::RunResult;
use reports::model::{Histograms, Interval, Metric, Summary};

/// The mock's pacing.
const TTFT_MS: f64 = 50.0;
const ITL_MS: f64 = 10.0;

/// Targets of the comparison (fractions of the reference's value) and of TTFT p50 against the
/// pacing.
const P50_TOLERANCE: f64 = 0.02;
const P99_TOLERANCE: f64 = 0.05;
const TTFT_SLACK_MS: f64 = 3.0;

#[derive(Parser)]
#[command(about = "Harness vs reference client: TTFT and ITL at scale")]
struct Args {
    #[command(subcommand)]
    reference: Option<Reference>,
    /// Concurrent streams, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    streams: Vec<usize>,
    /// Rounds per stream count and path; each round runs both clients.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Length of each client run, in seconds (`15` or `15s`).
    #[arg(long, default_value = "15s", value_parser = seconds)]
    duration: u64,
    /// Requests that end in the first this many seconds of a run (`3` or `3s`: the first wave
    /// of 2 s streams) are left out of both clients' percentiles.
    #[arg(long, default_value = "3s", value_parser = seconds)]
    warmup: u64,
    /// Tokens per stream: with a 10 ms ITL, 200 tokens make a stream of about 2 s.
    #[arg(long, default_value_t = 200)]
    tokens: u32,
    /// Paths to measure, comma-separated: `gateway` (through the reference gateway), `bare`
    /// (through a bare proxy, hyper in and hyper out: the least any proxy costs on this
    /// machine), `direct`.
    #[arg(long, value_delimiter = ',', default_value = "gateway,direct")]
    paths: Vec<Route>,
    /// The harness binary; default: `harness` in the directory above this example's.
    #[arg(long)]
    harness: Option<PathBuf>,
}

/// Where the clients' requests go.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Route {
    Gateway,
    Bare,
    Direct,
}

/// A route prints as its name on the command line.
impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no route is hidden");
        f.pad(value.get_name())
    }
}

#[derive(Subcommand)]
enum Reference {
    /// Run the reference client once and print its figures as one JSON line.
    Reference {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        streams: usize,
        #[arg(long, value_parser = seconds)]
        duration: u64,
        #[arg(long)]
        tokens: u32,
        #[arg(long, value_parser = seconds)]
        warmup: u64,
    },
}

fn seconds(text: &str) -> Result<u64, String> {
    text.trim_end_matches('s')
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match args.reference {
        Some(Reference::Reference {
            addr,
            streams,
            duration,
            tokens,
            warmup,
        }) => run_reference(reference::Plan {
            addr,
            streams,
            duration: Duration::from_secs(duration),
            tokens,
            warmup: Duration::from_secs(warmup),
        }),
        None => compare(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accuracy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_reference(plan: reference::Plan) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let report = runtime.block_on(reference::run(plan));
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// The two clients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Harness,
    Reference,
}

/// What one client run measured (times in microseconds).
struct Run {
    ttft_p50: u64,
    ttft_p99: u64,
    itl_p50: u64,
    itl_p99: u64,
    saturated_seconds: u64,
    failed: u64,
    /// CPU time of the client process per content event, in microseconds.
    cpu_per_event_us: f64,
}

fn compare(args: &Args) -> Result<(), String> {
    let harness = match &args.harness {
        Some(path) => path.clone(),
        None => sibling_harness()?,
    };
    let scratch = std::env::temp_dir().join(format!("gatebench-accuracy-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = with_servers(args, &harness, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// `target/<profile>/harness`, beside the `examples` directory this runs from.
fn sibling_harness() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("harness"))
        .filter(|path| path.is_file())
        .ok_or(
            "no harness binary beside this example: `cargo build --release -p harness --bins`",
        )?;
    Ok(path)
}

fn with_servers(args: &Args, harness: &Path, scratch: &Path) -> Result<(), String> {
    let profile = scratch.join("mock.toml");
    let profile_text = format!(
        "ttft_ms = {{ kind = \"constant\", value = {TTFT_MS:.1} }}\n\
         itl_ms = {{ kind = \"constant\", value = {ITL_MS:.1} }}\n\
         output_tokens = {{ kind = \"constant\", value = {}.0 }}\n",
        args.tokens
    );
    std::fs::write(&profile, profile_text).map_err(|e| e.to_string())?;
    let mock = Server::start(
        harness,
        &["mock", "--port", "0", "--profile", &utf8(&profile)?],
    )?;
    // Each route once, in the order asked, with the server it goes through (none for direct).
    let mut routes: Vec<(Route, Option<Server>)> = Vec::new();
    for &route in &args.paths {
        if routes.iter().any(|(seen, _)| *seen == route) {
            continue;
        }
        let proxy = match route {
            // Without a configuration file: one upstream, no cache, no limiter.
            Route::Gateway => Some(Server::start(
                harness,
                &["gateway", "--upstream", &mock.url, "--port", "0"],
            )?),
            Route::Bare => Some(Server::start(
                harness,
                &["bare-proxy", "--upstream", &mock.url, "--port", "0"],
            )?),
            Route::Direct => None,
        };
        routes.push((route, proxy));
    }
    let through: Vec<String> = routes
        .iter()
        .map(|(route, proxy)| match proxy {
            Some(proxy) => format!("{route} {}", proxy.url),
            None => route.to_string(),
        })
        .collect();
    eprintln!(
        "mock {} (TTFT {TTFT_MS} ms, ITL {ITL_MS} ms, {} tokens); {}; {} s per run, {} rounds",
        mock.url,
        args.tokens,
        through.join(", "),
        args.duration,
        args.rounds
    );
    let mut rows = Vec::new();
    for &streams in &args.streams {
        for (route, proxy) in &routes {
            let url = proxy.as_ref().map_or(&mock.url, |proxy| &proxy.url);
            let mut runs = (Vec::new(), Vec::new());
            for round in 0..args.rounds {
                let order = if round % 2 == 0 {
                    [Client::Harness, Client::Reference]
                } else {
                    [Client::Reference, Client::Harness]
                };
                for client in order {
                    let run = match client {
                        Client::Harness => {
                            run_harness(harness, url, streams, args, &scratch.join("runs"))?
                        }
                        Client::Reference => run_reference_process(url, streams, args)?,
                    };
                    let name = if client == Client::Harness {
                        "harness"
                    } else {
                        "reference"
                    };
                    eprintln!("{streams} {route} round {round} {name}: {}", run.line());
                    match client {
                        Client::Harness => runs.0.push(run),
                        Client::Reference => runs.1.push(run),
                    }
                }
            }
            rows.push((streams, *route, runs.0, runs.1));
        }
    }
    // Every server stops before the table is printed.
    drop((mock, routes));
    print!("{}", table(&rows));
    Ok(())
}

fn run_harness(
    harness: &Path,
    url: &str,
    streams: usize,
    args: &Args,
    out: &Path,
) -> Result<Run, String> {
    let mut command = Command::new(harness);
    command
        .args(["scenario", "streaming", "--target", url])
        .args(["--users", &streams.to_string()])
        .args(["--duration", &format!("{}s", args.duration)])
        .args(["--prompt-tokens", "64"])
        .args(["--output-tokens", &args.tokens.to_string()])
        .args([
            "--timeout",
            "60s",
            "--json",
            "--quiet",
            "--out",
            &utf8(out)?,
        ]);
    let (output, cpu) = measured(command)?;
    // 0, 2 and 4 are verdicts on the streaming SLOs; only 1 is an error.
    if output.status.code() == Some(1) {
        return Err(format!(
            "harness failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let result: RunResult = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("harness printed no summary: {e}"))?;
    let count = |metric| result.summary(metric).map_or(0, |s| s.count);
    let events = count(Metric::Ttft) + count(Metric::Itl);
    let ttft = after_warmup(&result.intervals, Metric::Ttft, args.warmup)
        .ok_or("harness: no TTFT after the warm-up")?;
    let itl = after_warmup(&result.intervals, Metric::Itl, args.warmup)
        .ok_or("harness: no ITL after the warm-up")?;
    Ok(Run {
        ttft_p50: ttft.p50,
        ttft_p99: ttft.p99,
        itl_p50: itl.p50,
        itl_p99: itl.p99,
        saturated_seconds: result.saturated_seconds().len() as u64,
        failed: result.totals.requests - result.totals.ok,
        cpu_per_event_us: cpu.as_secs_f64() * 1e6 / events.max(1) as f64,
    })
}

/// `metric` over a run's per-second intervals from second `warmup` on. The harness records a
/// request's TTFT and ITL in the second it ends, as the reference client leaves out requests by
/// when they end.
fn after_warmup(intervals: &[Interval], metric: Metric, warmup: u64) -> Option<Summary> {
    let mut kept = Histograms::default();
    for interval in intervals {
        if u64::from(interval.second) < warmup {
            continue;
        }
        if let Some(histogram) = interval.histograms.get(metric) {
            kept.add(metric, &histogram);
        }
    }
    kept.summary(metric)
}

fn run_reference_process(url: &str, streams: usize, args: &Args) -> Result<Run, String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut command = Command::new(exe);
    command
        .args(["reference", "--addr", addr])
        .args(["--streams", &streams.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .args(["--tokens", &args.tokens.to_string()])
        .args(["--warmup", &args.warmup.to_string()]);
    let (output, cpu) = measured(command)?;
    if !output.status.success() {
        return Err(format!(
            "reference client failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report: reference::Report = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("reference client printed no report: {e}"))?;
    let events = report.events;
    Ok(Run {
        ttft_p50: report.ttft_us.p50,
        ttft_p99: report.ttft_us.p99,
        itl_p50: report.itl_us.p50,
        itl_p99: report.itl_us.p99,
        saturated_seconds: report.saturated_seconds,
        failed: report.failed,
        cpu_per_event_us: cpu.as_secs_f64() * 1e6 / events.max(1) as f64,
    })
}

/// Runs `command` to its end and returns its output and the CPU time (user and system) it
/// used: the growth of this process's waited-for children's CPU time, which only this child
/// adds to while it runs (the servers are waited for only at the end).
fn measured(mut command: Command) -> Result<(std::process::Output, Duration), String> {
    let before = children_cpu();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("starting {command:?}: {e}"))?;
    Ok((output, children_cpu().saturating_sub(before)))
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given and reads nothing else.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

impl Run {
    fn line(&self) -> String {
        format!(
            "TTFT p50 {} p99 {} ms, ITL p50 {} p99 {} ms, {} saturated s, {} failed, {:.1} us CPU/event",
            ms(self.ttft_p50),
            ms(self.ttft_p99),
            ms(self.itl_p50),
            ms(self.itl_p99),
            self.saturated_seconds,
            self.failed,
            self.cpu_per_event_us
        )
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

/// Median of one figure over rounds, and its range.
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(runs: &[Run], figure: Figure) -> Spread {
        let mut values: Vec<f64> = runs.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        };
        Spread {
            median,
            low: values[0],
            high: values[values.len() - 1],
        }
    }

    fn cell(&self) -> String {
        format!(
            "{:.2} ({:.2}-{:.2})",
            self.median / 1e3,
            self.low / 1e3,
            self.high / 1e3
        )
    }
}

/// One figure of a run.
type Figure = fn(&Run) -> f64;

/// The four percentiles compared, with their names and tolerances.
const FIGURES: [(&str, Figure, f64); 4] = [
    ("TTFT p50", |r| r.ttft_p50 as f64, P50_TOLERANCE),
    ("TTFT p99", |r| r.ttft_p99 as f64, P99_TOLERANCE),
    ("ITL p50", |r| r.itl_p50 as f64, P50_TOLERANCE),
    ("ITL p99", |r| r.itl_p99 as f64, P99_TOLERANCE),
];

type Row = (usize, Route, Vec<Run>, Vec<Run>);

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<8}{:<9}{:<11}{:<21} {:<21} {:<21} {:<21} {:<10} {:<8}\n",
        "streams",
        "path",
        "client",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "ITL p50 ms",
        "ITL p99 ms",
        "sat. s",
        "us/event"
    ));
    for (streams, path, harness, reference) in rows {
        if harness.is_empty() || reference.is_empty() {
            continue;
        }
        for (name, runs) in [("harness", harness), ("reference", reference)] {
            let (first, second) = if name == "harness" {
                (streams.to_string(), path.to_string())
            } else {
                (String::new(), String::new())
            };
            out.push_str(&format!("{first:<8}{second:<9}{name:<11}"));
            for (_, figure, _) in FIGURES {
                // A cell wider than its column still leaves a space before the next.
                out.push_str(&format!("{:<21} ", Spread::of(runs, figure).cell()));
            }
            let saturated: Vec<String> = runs
                .iter()
                .map(|r| r.saturated_seconds.to_string())
                .collect();
            let cpu = Spread::of(runs, |r| r.cpu_per_event_us).median;
            out.push_str(&format!("{:<10} {cpu:<8.1}\n", saturated.join(",")));
        }
        out.push_str(&format!("{:<17}{:<11}", "", "ratio"));
        let mut verdicts = Vec::new();
        for (label, figure, tolerance) in FIGURES {
            let ratio = Spread::of(harness, figure).median / Spread::of(reference, figure).median;
            out.push_str(&format!("{ratio:<21.3} "));
            if (ratio - 1.0).abs() > tolerance {
                verdicts.push(format!(
                    "{label} off by more than {:.0}%",
                    tolerance * 100.0
                ));
            }
        }
        let ttft = Spread::of(harness, |r| r.ttft_p50 as f64).median / 1e3 - TTFT_MS;
        if ttft.abs() > TTFT_SLACK_MS {
            verdicts.push(format!("TTFT p50 {ttft:+.2} ms from the pacing"));
        }
        let saturated =
            [harness, reference].map(|runs| runs.iter().any(|r| r.saturated_seconds > 0));
        let verdict = match (verdicts.is_empty(), saturated) {
            (true, _) => format!("targets met (TTFT p50 {ttft:+.2} ms from the pacing)"),
            (false, [true, true]) => format!("saturated on both: {}", verdicts.join("; ")),
            (false, [true, false]) => format!("harness saturated: {}", verdicts.join("; ")),
            (false, _) => verdicts.join("; "),
        };
        out.push_str(&format!("\n{:<17}{verdict}\n", ""));
    }
    out
}

/// A server process (`harness mock`, `harness gateway`) and the address it printed.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `harness args` and waits (at most 30 s) for the `http://` address it prints.
    fn start(harness: &Path, args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(harness)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {} {}: {e}", harness.display(), args[0]))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain(err, tx);
        }
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(Server { child, url }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{} printed no address", args[0]))
            }
        }
    }

    fn stop(&mut self) {
        // Already exited is fine: nothing more is asked of it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `pipe` to its end on a thread of its own, sending the first `http://` word seen.
fn drain(pipe: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                // The receiver wants only the first address.
                let _ = tx.send(url.trim_end_matches('/').to_owned());
            }
        }
    });
}

fn utf8(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use reports::model::new_histogram;

    use super::*;

    /// An interval at `second` with one TTFT of `micros`.
    fn ttft_at(second: u32, micros: u64) -> Interval {
        let mut histogram = new_histogram();
        histogram.record(micros).expect("within range");
        let mut interval = Interval {
            second,
            ..Interval::default()
        };
        interval.histograms.add(Metric::Ttft, &histogram);
        interval
    }

    #[test]
    fn the_seconds_of_the_warm_up_are_left_out() {
        let run = [ttft_at(2, 70_000), ttft_at(3, 52_000), ttft_at(4, 53_000)];
        let kept = after_warmup(&run, Metric::Ttft, 3).expect("two intervals kept");
        assert_eq!(kept.count, 2);
        assert!(
            kept.max < 54_000,
            "the first wave's 70 ms is left out: {kept:?}"
        );
        let all = after_warmup(&run, Metric::Ttft, 0).expect("every interval");
        assert_eq!(all.count, 3);
        assert!(after_warmup(&run, Metric::Ttft, 5).is_none());
        assert!(after_warmup(&run, Metric::Itl, 0).is_none());
    }
}
