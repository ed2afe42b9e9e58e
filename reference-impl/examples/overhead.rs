//! Gateway overhead benchmark: one run on loopback against the native mock with zero delay.
//!
//! ```text
//! cargo run --release -p reference-impl --example overhead [-- --requests 5000 --seconds 5]
//! ```
//!
//! Prints, from the `x-gateway-overhead-us` header, overhead p50/p99 at concurrency 1 and 64;
//! requests/s straight to the mock vs through the gateway (same client, same concurrency, same
//! run, so the ratio is meaningful on a noisy machine); and the gateway's resident memory with
//! 1,000 concurrent open streams. The gateway runs in a child process (this binary re-executed
//! with `--serve`), so its RSS is its own and it does not share a runtime with the load.
//!
//! A third side, a bare proxy (`--serve-bare`: `reference_impl::bare`, hyper server, hyper-util
//! pooled client, nothing else), shows the ceiling: on one 2-core machine the load, the mock and
//! the proxy share the cores, and a proxy does both a server's and a client's socket work per
//! request.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::{Gateway, GatewayConfig, ProviderConfig, ProviderKind};

const BODY: &str =
    r#"{"model":"bench","messages":[{"role":"user","content":"Say something short."}]}"#;

/// Throughput rounds; each runs every side once, in alternating order.
const ROUNDS: u64 = 8;

struct Args {
    requests: usize,
    seconds: u64,
    streams: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 5_000,
        seconds: 5,
        streams: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--requests" => args.requests = value("--requests")? as usize,
            "--seconds" => args.seconds = value("--seconds")?,
            "--streams" => args.streams = value("--streams")? as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Some(mode @ ("--serve" | "--serve-bare")) = argv.get(1).map(String::as_str) {
        let Some(upstream) = argv.get(2) else {
            eprintln!("overhead: {mode} needs the upstream URL");
            std::process::exit(1);
        };
        if mode == "--serve" {
            runtime.block_on(serve(upstream));
        } else {
            runtime.block_on(serve_bare(upstream));
        }
        return;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("overhead: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(bench(args));
}

/// Child process: a gateway in front of `upstream` until stdin closes.
async fn serve(upstream: &str) {
    let mut provider = ProviderConfig::new("mock", ProviderKind::OpenAi, upstream);
    provider.pool.max_idle_per_host = 2048;
    let mut config = GatewayConfig::with_providers(vec![provider]);
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    let handle = match Gateway::start(config).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("overhead: gateway: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", handle.url());
    // The parent closes our stdin when it is done (or dies).
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    handle.shutdown().await;
}

/// Child process: the bare proxy (`reference_impl::bare`) in front of `upstream` until stdin
/// closes, as the ceiling any gateway's ratio can reach on this machine.
async fn serve_bare(upstream: &str) {
    let proxy = match reference_impl::bare::BareProxy::new(upstream) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("overhead: {e}");
            std::process::exit(1);
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("http://{}", listener.local_addr().expect("address"));
    let stdin_closed = tokio::task::spawn_blocking(|| std::io::stdin().lines().count());
    tokio::select! {
        () = proxy.serve(listener) => {}
        _ = stdin_closed => {}
    }
}

struct GatewayProcess {
    child: Child,
    url: String,
}

impl GatewayProcess {
    fn spawn(mode: &str, upstream: &str) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .args([mode, upstream])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn gateway process");
        let stdout = child.stdout.take().expect("child stdout");
        let mut url = String::new();
        BufReader::new(stdout)
            .read_line(&mut url)
            .expect("gateway prints its URL");
        Self {
            child,
            url: url.trim().to_owned(),
        }
    }

    /// User and system CPU time the process has used, from /proc (clock ticks of 10 ms).
    fn cpu(&self) -> Option<(Duration, Duration)> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split(' ').skip(11);
        let tick = |v: &str| v.parse::<u64>().ok().map(|t| Duration::from_millis(t * 10));
        Some((tick(fields.next()?)?, tick(fields.next()?)?))
    }

    /// Resident set size in MiB, from /proc.
    fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn client(max_idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle)
        .http1_only()
        .no_proxy()
        .build()
        .expect("client")
}

async fn one(client: &reqwest::Client, url: &str) -> Option<u64> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let overhead = response
        .headers()
        .get("x-gateway-overhead-us")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    response.bytes().await.ok()?;
    Some(overhead.unwrap_or(0))
}

/// `total` requests spread over `concurrency` tasks; overhead header values in a histogram.
async fn overhead_at(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    total: usize,
) -> (Histogram<u64>, usize) {
    let per_task = total / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let mut failed = 0;
                for _ in 0..per_task {
                    match one(&client, &url).await {
                        Some(us) => h.saturating_record(us),
                        None => failed += 1,
                    }
                }
                (h, failed)
            })
        })
        .collect();
    let mut merged = Histogram::<u64>::new(3).expect("histogram");
    let mut failed = 0;
    for task in tasks {
        let (h, f) = task.await.expect("task");
        merged.add(&h).expect("same bounds");
        failed += f;
    }
    (merged, failed)
}

/// Completed requests, failures and time spent, summed over rounds.
#[derive(Default)]
struct Side {
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

impl Side {
    fn add(&mut self, (ok, failed, elapsed): (u64, u64, Duration)) {
        self.ok += ok;
        self.failed += failed;
        self.elapsed += elapsed;
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Completed and failed requests at `concurrency` for `duration`, and the time it took.
async fn throughput(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> (u64, u64, Duration) {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match one(&client, &url).await {
                        Some(_) => ok += 1,
                        None => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (o, f) = task.await.expect("task");
        ok += o;
        failed += f;
    }
    (ok, failed, started.elapsed())
}

/// Opens `n` streams that stay open (slow mock pacing), 100 at a time as real traffic ramps
/// (a burst of 1,000 simultaneous connects overflows loopback accept queues, which measures
/// the kernel, not the gateway), waits until each has its first chunk, then samples the
/// gateway's RSS.
async fn rss_with_open_streams(gateway: &GatewayProcess, n: usize) -> (usize, Option<f64>) {
    const BATCH: usize = 100;
    let client = client(n);
    let url = format!("{}/v1/chat/completions", gateway.url);
    let body = r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"Tell me a long story."}]}"#;
    let release = Arc::new(tokio::sync::Notify::new());
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        for _ in batch {
            let (client, url, release, opened_tx) = (
                client.clone(),
                url.clone(),
                release.clone(),
                opened_tx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-mock-ttft-ms", "0")
                    .header("x-mock-itl-ms", "500")
                    .header("x-mock-tokens", "1000")
                    .body(body)
                    .send()
                    .await;
                let open = match response {
                    Ok(mut r) if r.status().is_success() => match r.chunk().await {
                        Ok(Some(_)) => Ok(r),
                        other => Err(format!("first chunk: {other:?}")),
                    },
                    Ok(r) => Err(format!("status {}: {:?}", r.status(), r.text().await)),
                    Err(e) => Err(format!("send: {e:?}")),
                };
                // Registered before reporting in, so the release cannot be missed.
                let notified = release.notified();
                let _ = opened_tx.send(());
                notified.await;
                open.map(drop)
            }));
        }
        for _ in batch {
            opened.recv().await;
        }
    }
    // Let the gateway settle with every stream open and a few chunks flowing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = gateway.rss_mib();
    release.notify_waiters();
    let mut open = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => open += 1,
            Ok(Err(why)) => eprintln!("  stream failed to open: {why}"),
            Err(e) => eprintln!("  stream task failed: {e}"),
        }
    }
    (open, rss)
}

fn line(label: &str, h: &Histogram<u64>, failed: usize) {
    println!(
        "  {label:<22} p50 {:>5} us   p99 {:>5} us   p99.9 {:>5} us   max {:>6} us   (n = {}, failed = {failed})",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len(),
    );
}

async fn bench(args: Args) {
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    let gateway = GatewayProcess::spawn("--serve", mock.url());
    let bare = GatewayProcess::spawn("--serve-bare", mock.url());
    let bare_url = format!("{}/v1/chat/completions", bare.url);
    let through = format!("{}/v1/chat/completions", gateway.url);
    let direct_url = format!("{}/v1/chat/completions", mock.url());
    let client = client(256);
    println!("gateway overhead benchmark (loopback, native mock, zero delay, non-streaming)");
    println!(
        "  mock {}  gateway {} (child pid {})",
        mock.url(),
        gateway.url,
        gateway.child.id()
    );

    // Warm up connections, allocator and caches on both paths.
    overhead_at(&client, &through, 64, 3_000).await;
    throughput(&client, &direct_url, 64, Duration::from_secs(1)).await;

    println!("overhead (x-gateway-overhead-us):");
    let (c1, failed1) = overhead_at(&client, &through, 1, args.requests).await;
    line("concurrency 1", &c1, failed1);
    let (c64, failed64) = overhead_at(&client, &through, 64, args.requests * 4).await;
    line("concurrency 64", &c64, failed64);

    println!(
        "throughput (concurrency 64, {} s per side, in {ROUNDS} rounds of A B C, C B A, ... so drift in machine load hits every side):",
        args.seconds
    );
    let round = Duration::from_millis(args.seconds * 1000 / ROUNDS).max(Duration::from_millis(500));
    // Sides: 0 direct to the mock, 1 through the gateway, 2 through the bare proxy.
    let urls = [&direct_url, &through, &bare_url];
    let mut sides: [Side; 3] = Default::default();
    let mut round_ratios = Vec::new();
    let mut gateway_cpu = (Duration::ZERO, Duration::ZERO);
    for i in 0..ROUNDS {
        let order = if i % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        let mut this_round: [Side; 3] = Default::default();
        for side in order {
            let cpu_before = gateway.cpu();
            let result = throughput(&client, urls[side], 64, round).await;
            if side == 1
                && let (Some((u0, s0)), Some((u1, s1))) = (cpu_before, gateway.cpu())
            {
                gateway_cpu.0 += u1 - u0;
                gateway_cpu.1 += s1 - s0;
            }
            this_round[side].add(result);
            sides[side].add(result);
        }
        round_ratios.push(this_round[1].rate() / this_round[0].rate() * 100.0);
    }
    round_ratios.sort_by(f64::total_cmp);
    let [direct, gateway_side, bare_side] = &sides;
    let (direct_rps, gateway_rps, bare_rps) =
        (direct.rate(), gateway_side.rate(), bare_side.rate());
    println!(
        "  direct to mock         {direct_rps:>9.0} req/s (failed {})",
        direct.failed
    );
    println!(
        "  through gateway        {gateway_rps:>9.0} req/s (failed {})",
        gateway_side.failed
    );
    println!(
        "  through bare proxy     {bare_rps:>9.0} req/s (failed {}; hyper in, hyper out, nothing else)",
        bare_side.failed
    );
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / gateway_side.ok.max(1) as f64;
    println!(
        "  gateway CPU per request {:>6.1} us user + {:.1} us system (the kernel's loopback TCP)",
        per_request(gateway_cpu.0),
        per_request(gateway_cpu.1)
    );
    println!(
        "  bare proxy / direct    {:>9.1} %   (the ceiling for any hyper proxy here)",
        bare_rps / direct_rps * 100.0
    );
    println!(
        "  gateway / bare proxy   {:>9.1} %   (what the gateway's own work costs)",
        gateway_rps / bare_rps * 100.0
    );
    let ratio = gateway_rps / direct_rps;
    println!(
        "  ratio                  {:>9.1} %   (per round: min {:.1}, median {:.1}, max {:.1})",
        ratio * 100.0,
        round_ratios[0],
        round_ratios[round_ratios.len() / 2],
        round_ratios[round_ratios.len() - 1],
    );

    let idle_rss = gateway.rss_mib();
    let (open, rss) = rss_with_open_streams(&gateway, args.streams).await;
    let mib = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} MiB"));
    println!("memory (gateway process RSS):");
    println!("  after the load above   {}", mib(idle_rss));
    println!("  with {open} open streams {}", mib(rss));

    let checks = [
        (
            "overhead p99 at c=1 <= 300 us",
            c1.value_at_quantile(0.99) <= 300,
        ),
        (
            "overhead p99 at c=64 <= 1000 us",
            c64.value_at_quantile(0.99) <= 1_000,
        ),
        ("through gateway >= 50 % of direct", ratio >= 0.5),
        (
            "RSS with open streams < 100 MB",
            rss.is_some_and(|r| r * 1.048_576 < 100.0) && open == args.streams,
        ),
    ];
    println!("targets:");
    for (name, ok) in checks {
        println!("  [{}] {name}", if ok { "met" } else { "MISSED" });
    }
}
