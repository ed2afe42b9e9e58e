//! Requests/s of the native mock beside a wiremock server sending the same body, in one run, and
//! the native server's memory after many requests (wiremock keeps every request; ours must not).
//!
//! `cargo run --release -p mock-providers --example throughput -- [SECONDS] [TOTAL_REQUESTS]`
//! (defaults: 5 s per server, 1,000,000 requests for the memory check).
//!
//! The load comes from `wrk` when it is installed (a separate, lean process, so the figure is the
//! server's and not the load generator's), otherwise from an in-process hyper client; the output
//! says which. Both servers always get the same generator.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mock_providers::wiremock::Reply;
use mock_providers::{MockConfig, MockServer, Profile};
use tokio::net::{TcpListener, TcpStream};

const CONCURRENCY: usize = 64;

fn body() -> Vec<u8> {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say something short."}]})
        .to_string()
        .into_bytes()
}

/// The benchmark's request to `addr`, with `body`.
fn chat_request(addr: SocketAddr, body: Bytes) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request")
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sends requests from `CONCURRENCY` keep-alive connections until `limit` passes or `count` are
/// done; returns requests/s. A bare hyper connection per worker keeps the load generator's own
/// cost low, since it shares the machine with the server it measures.
async fn drive(addr: SocketAddr, limit: Duration, count: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(body());
    let start = Instant::now();
    let worker = || {
        let (done, body) = (Arc::clone(&done), body.clone());
        async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            while start.elapsed() < limit && done.fetch_add(1, Relaxed) < count {
                let request = chat_request(addr, body.clone());
                sender.ready().await.expect("connection stays open");
                let response = sender.send_request(request).await.expect("response");
                assert!(
                    response.status().is_success(),
                    "status {}",
                    response.status()
                );
                response.into_body().collect().await.expect("body");
            }
        }
    };
    join_all((0..CONCURRENCY).map(|_| worker())).await;
    done.load(Relaxed).min(count) as f64 / start.elapsed().as_secs_f64()
}

/// Something that serves on the thread that started it, until dropped.
type Running = Box<dyn std::any::Any>;

/// Runs `start` on a new thread with a single-threaded runtime (as wiremock runs its server)
/// and keeps what it started serving until the returned sender is dropped.
fn on_own_thread<F>(start: impl FnOnce() -> F + Send + 'static) -> (SocketAddr, Sender<()>)
where
    F: Future<Output = (SocketAddr, Running)>,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (addr, _running) = start().await;
            addr_tx.send(addr).expect("main thread waits");
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .ok();
        });
    });
    (addr_rx.recv().expect("server started"), stop_tx)
}

async fn native_mock() -> (SocketAddr, Running) {
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("native mock");
    (mock.addr(), Box::new(mock))
}

/// A bare hyper HTTP/1 server that reads each request and answers `body` as is: no routing,
/// no parsing, no encoding. What it reaches is the floor every hyper-based server pays here
/// (HTTP parsing and loopback writes), so it bounds what the native mock could reach.
async fn bare_hyper(body: Bytes) -> (SocketAddr, Running) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).expect("nodelay");
            let body = body.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let body = body.clone();
                async move {
                    request.into_body().collect().await?;
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    (addr, Box::new(()))
}

/// The body the native mock answers to the benchmark's request.
async fn native_answer(addr: SocketAddr) -> Bytes {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let response = sender
        .send_request(chat_request(addr, Bytes::from(body())))
        .await
        .expect("response");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn wrk_available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Runs `wrk` against `addr` for `limit` and returns its requests/s.
fn wrk(addr: SocketAddr, limit: Duration) -> f64 {
    let script =
        std::env::temp_dir().join(format!("gatebench-throughput-{}.lua", std::process::id()));
    let body = String::from_utf8(body()).expect("utf-8");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    std::fs::write(&script, lua).expect("write wrk script");
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONCURRENCY}"),
            &format!("-d{}s", limit.as_secs().max(1)),
        ])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}/v1/chat/completions"))
        .output()
        .expect("run wrk");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("arguments are whole numbers"));
    let seconds = Duration::from_secs(args.next().unwrap_or(5));
    let total = args.next().unwrap_or(1_000_000);

    // Memory first, while nothing else has grown the heap: RSS after 10,000 requests vs after `total`.
    let mem = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("native mock");
    drive(mem.addr(), Duration::MAX, 10_000).await;
    let rss_10k = rss();
    let started = Instant::now();
    drive(mem.addr(), Duration::MAX, total.saturating_sub(10_000)).await;
    let rss_total = rss();
    let served = mem.stats().requests;
    drop(mem);

    // wiremock serves from one thread of its own with a single-threaded runtime; give the native
    // server the same, so the ratio compares the servers and not their threading.
    let (native, _native_thread) = on_own_thread(native_mock);
    let answer = native_answer(native).await;
    let (bare, _bare_thread) = on_own_thread(move || bare_hyper(answer));
    let wm = wiremock::MockServer::start().await;
    Reply::openai().tokens(16).mock().mount(&wm).await;
    let wm_addr = *wm.address();

    let generator = if wrk_available() {
        "wrk, 1 thread"
    } else {
        "in-process hyper client"
    };
    let measure = async |addr: SocketAddr, limit: Duration| {
        if wrk_available() {
            // Off the runtime's workers: a blocked worker would halve the native server's threads.
            tokio::task::spawn_blocking(move || wrk(addr, limit))
                .await
                .expect("wrk task")
        } else {
            drive(addr, limit, u64::MAX).await
        }
    };
    // Warm both up, then measure each for the same time, native before and after to see drift.
    measure(native, Duration::from_secs(1)).await;
    measure(wm_addr, Duration::from_secs(1)).await;
    measure(bare, Duration::from_secs(1)).await;
    let native_a = measure(native, seconds).await;
    let rss_before_wm = rss();
    let wiremock = measure(wm_addr, seconds).await;
    let wm_growth = rss().saturating_sub(rss_before_wm);
    let native_b = measure(native, seconds).await;
    let bare_rps = measure(bare, seconds).await;
    let native_rps = (native_a + native_b) / 2.0;
    println!(
        "non-streaming chat completion, 16 tokens, {CONCURRENCY} keep-alive connections, {}s per run, load from {generator}",
        seconds.as_secs()
    );
    println!("  native mock   {native_rps:>10.0} req/s  (runs: {native_a:.0}, {native_b:.0})");
    println!(
        "  wiremock      {wiremock:>10.0} req/s  (RSS grew {:.1} MB while it ran)",
        wm_growth as f64 / 1e6
    );
    println!("  ratio         {:>10.2}x", native_rps / wiremock);
    println!(
        "  bare hyper    {bare_rps:>10.0} req/s  ({:.2}x wiremock: fixed bytes, no routing or parsing, the ceiling of a hyper server here)",
        bare_rps / wiremock
    );
    println!(
        "memory: RSS after 10,000 requests {:.1} MB, after {served} requests {:.1} MB (growth {:+.2} MB, {:.0}s)",
        rss_10k as f64 / 1e6,
        rss_total as f64 / 1e6,
        (rss_total as f64 - rss_10k as f64) / 1e6,
        started.elapsed().as_secs_f64()
    );
}
