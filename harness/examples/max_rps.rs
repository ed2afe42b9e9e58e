//! The load generator's ceiling: the most requests per second the harness drives against the
//! native mock answering at once, next to `wrk` (or `oha`) against the same mock in the same
//! run, and the ratio between them.
//!
//! ```text
//! cargo run --release -p harness --example max_rps -- [SECONDS] [CONNECTIONS] [ROUNDS]
//! ```
//!
//! Both tools send the same non-streaming chat request over the same number of keep-alive
//! connections for the same time, to a mock on its own runtime threads. They take turns for
//! several rounds (H R H R ...) and the best round of each is compared, so a burst of load from
//! elsewhere on the machine does not decide the ratio. The reference tool must be on PATH
//! (`apt-get install wrk` or `cargo install oha`); without one, only the harness is measured.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_providers::{MockConfig, MockServer, Profile};
use reports::model::GoodputLimits;
use scenarios::attack::{self, Plan};
use scenarios::client::Client;
use scenarios::load::{Load, Stages};
use scenarios::recorder::Recorder;
use scenarios::workload::{Mix, PromptMix, Prompts, RequestKind, Shape};

/// The request both tools send.
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain back pressure in one paragraph."}],"max_tokens":16,"stream":false}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let connections: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;

    // The mock gets runtime threads of its own, the same for both tools.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("mock runtime");
        runtime.block_on(async move {
            let mock = MockServer::start(MockConfig::new(Profile::fast()))
                .await
                .expect("mock starts");
            url_tx.send(mock.url().to_owned()).expect("main waits");
            std::future::pending::<()>().await;
        });
    });
    let url = url_rx.recv()?;
    println!("native mock (zero delay, 16 tokens) at {url}");
    println!(
        "{connections} connections, {seconds} s per round, {rounds} rounds each, non-streaming chat\n"
    );

    let (mut harness_best, mut reference_best) = (0.0f64, None::<(&str, f64)>);
    for round in 1..=rounds {
        let harness = harness_rps(&url, connections, seconds).await?;
        harness_best = harness_best.max(harness);
        let reference = reference_rps(&url, connections, seconds).await?;
        match reference {
            Some((tool, rps)) => {
                println!("round {round}: harness {harness:>8.0} req/s   {tool} {rps:>8.0} req/s");
                if reference_best.is_none_or(|(_, best)| rps > best) {
                    reference_best = Some((tool, rps));
                }
            }
            None => println!("round {round}: harness {harness:>8.0} req/s"),
        }
    }
    println!("\nbest     harness {harness_best:>8.0} req/s");
    match reference_best {
        Some((tool, rps)) => {
            println!("best     {tool:<7} {rps:>8.0} req/s");
            println!("ratio    {:>16.2} (harness / {tool})", harness_best / rps);
        }
        None => println!("(neither wrk nor oha is on PATH: no reference figure)"),
    }
    Ok(())
}

/// Requests per second the harness completes with `users` closed-model users.
async fn harness_rps(
    url: &str,
    users: usize,
    seconds: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let recorder = Arc::new(Recorder::new(GoodputLimits::default()));
    let plan = Plan {
        load: Load::Closed {
            stages: Stages::constant(users, Duration::from_secs(seconds)),
            think_time: None,
        },
        mix: Mix::only(RequestKind::Chat),
        prompts: Prompts::Mix(PromptMix {
            shapes: vec![Shape {
                weight: 1,
                sentences: 1,
                max_tokens: 16,
            }],
            repeat_ratio: 0.0,
            hot_prompts: 0,
        }),
        model: "gpt-4o-mini".to_owned(),
        embedding_model: "text-embedding-3-small".to_owned(),
        seed: 1,
    };
    let client = Client::plain(url, Duration::from_secs(10))?;
    let started = Instant::now();
    {
        let _quiet = harness::scenario::stdout_guard::StdoutGuard::silence();
        attack::run(plan, client, Arc::clone(&recorder)).await?;
    }
    let wall = started.elapsed().as_secs_f64();
    let (mut requests, mut failed) = (0, 0);
    for interval in recorder.close_all() {
        requests += interval.counters.requests;
        failed += interval.counters.errors.total();
    }
    if failed > 0 {
        eprintln!("harness: {failed} of {requests} requests failed");
    }
    Ok(requests as f64 / wall)
}

/// `wrk` (or `oha`) against the same endpoint; `None` when neither is installed.
async fn reference_rps(
    url: &str,
    connections: usize,
    seconds: u64,
) -> Result<Option<(&'static str, f64)>, Box<dyn std::error::Error>> {
    let endpoint = format!("{url}/v1/chat/completions");
    if has("wrk") {
        let script =
            std::env::temp_dir().join(format!("gatebench-max-rps-{}.lua", std::process::id()));
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{BODY}]]\n"
            ),
        )?;
        let args = vec![
            "-t2".to_owned(),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "-s".to_owned(),
            script.display().to_string(),
            endpoint,
        ];
        let output =
            tokio::task::spawn_blocking(move || Command::new("wrk").args(args).output()).await??;
        let _ = std::fs::remove_file(&script);
        let text = String::from_utf8_lossy(&output.stdout);
        let rps = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("unexpected wrk output:\n{text}"))?;
        return Ok(Some(("wrk", rps)));
    }
    if has("oha") {
        let args = vec![
            "--no-tui".to_owned(),
            "--json".to_owned(),
            "-c".to_owned(),
            connections.to_string(),
            "-z".to_owned(),
            format!("{seconds}s"),
            "-m".to_owned(),
            "POST".to_owned(),
            "-H".to_owned(),
            "content-type: application/json".to_owned(),
            "-d".to_owned(),
            BODY.to_owned(),
            endpoint,
        ];
        let output =
            tokio::task::spawn_blocking(move || Command::new("oha").args(args).output()).await??;
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let rps = json["summary"]["requestsPerSec"]
            .as_f64()
            .ok_or("unexpected oha output")?;
        return Ok(Some(("oha", rps)));
    }
    Ok(None)
}

fn has(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}
