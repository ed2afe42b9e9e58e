//! Shared helpers: start a gateway in front of given upstreams, and build requests. `browser`
//! finds and starts headless Chromium, the reports' file of it.

#[path = "../../../reports/tests/it/common/browser.rs"]
pub mod browser;
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::config::RoutingConfig;
use reference_impl::{Gateway, GatewayConfig, GatewayHandle, ProviderConfig, ProviderKind};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};

/// A native mock provider on a loopback port that answers at once (`Profile::fast`).
pub async fn mock() -> MockServer {
    MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts")
}

pub fn openai(name: &str, url: &str) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::OpenAi, url)
}

pub fn anthropic(name: &str, url: &str) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::Anthropic, url)
}

/// A gateway on an ephemeral loopback port with short timeouts, so failing tests end quickly.
pub async fn start(
    providers: Vec<ProviderConfig>,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> GatewayHandle {
    let mut config = GatewayConfig::with_providers(providers);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.routing = RoutingConfig {
        attempt_timeout_ms: 5_000,
        deadline_ms: 10_000,
        backoff_ms: 10,
        ..RoutingConfig::default()
    };
    tweak(&mut config);
    Gateway::start(config).await.expect("gateway starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "stream": stream,
    })
}

pub async fn post(gateway: &GatewayHandle, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// Joined `delta.content` of OpenAI chunks.
pub fn stream_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A plain connection to the Redis at `url`, for looking at what the gateway stored.
pub async fn redis_connection(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

/// The gateway's `/metrics` text, over a connection of its own so no idle pooled connection is
/// left behind to count as an open connection or a live task.
pub async fn metrics_text(gateway: &GatewayHandle) -> String {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/metrics", gateway.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the unlabelled series `name` in the gateway's `/metrics`.
pub async fn metric(gateway: &GatewayHandle, name: &str) -> f64 {
    metrics_text(gateway)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Gauges that count things alive (requests, streams, connections, upstream calls, queue
/// places and slots, breaker probes, coalescing flights): each must fall back to 0 when the
/// gateway is idle, except the connection serving the scrape itself.
pub const ALIVE_GAUGES: [&str; 9] = [
    "gateway_requests_in_flight",
    "gateway_open_streams",
    "gateway_open_connections",
    "gateway_active_websockets",
    "gateway_upstream_in_flight",
    "gateway_breaker_probes_in_flight",
    "gateway_queue_depth",
    "gateway_queue_in_flight",
    "gateway_cache_flights_in_flight",
];

/// Every series of [`ALIVE_GAUGES`] in `/metrics` (labelled ones once per label set).
pub async fn alive_gauges(gateway: &GatewayHandle) -> Vec<(String, f64)> {
    metrics_text(gateway)
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            if !ALIVE_GAUGES.contains(&name) {
                return None;
            }
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The alive gauges that are not at their idle value (1 for the scrape's own connection).
pub async fn gauges_off(gateway: &GatewayHandle) -> Vec<(String, f64)> {
    alive_gauges(gateway)
        .await
        .into_iter()
        .filter(|(series, value)| {
            let idle = if series == "gateway_open_connections" {
                1.0
            } else {
                0.0
            };
            *value != idle
        })
        .collect()
}

/// Polls `check` every 20 ms until it holds or `within` has passed; whether it held.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits up to `within` for every alive gauge to be idle; returns the ones still off.
pub async fn gauges_settle(gateway: &GatewayHandle, within: Duration) -> Vec<(String, f64)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let off = gauges_off(gateway).await;
        if off.is_empty() || std::time::Instant::now() > deadline {
            return off;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 5 s) until a request holds the first provider's only queue slot, as
/// `/admin/performance/request-queue` reports it; panics if none ever does.
pub async fn wait_until_the_slot_is_taken(gateway: &GatewayHandle) {
    let queue_url = format!("{}/admin/performance/request-queue", gateway.url());
    let taken = async || {
        let queue: Value = client()
            .get(&queue_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        queue["providers"][0]["queue"]["in_flight"] == 1
    };
    assert!(
        eventually(Duration::from_secs(5), taken).await,
        "the first request never took the slot"
    );
}

/// A client socket with a small receive buffer, so what the client does not read stays in
/// the gateway's bounds rather than in the client's kernel.
pub async fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Asserts that the gateway left part of `upstream`'s answer unread in its upstream socket:
/// held back by a client that does not read, it reads its upstream no faster. (Whether the mock
/// is still sending says nothing: the kernel's autotuned receive buffer can take a whole answer.)
pub fn assert_upstream_held_back(upstream: &MockServer) {
    assert!(
        unread_from(upstream.addr().port()) > 0,
        "the gateway has read all its upstream sent (mock in flight: {})",
        upstream.stats().in_flight
    );
}

/// The bytes waiting unread in this machine's IPv4 sockets connected to `port`, from
/// `/proc/net/tcp` (whose `rx_queue` column is what the kernel holds for the socket's reader).
fn unread_from(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (_, remote_port) = fields.get(2)?.split_once(':')?;
            let (_, rx_queue) = fields.get(4)?.split_once(':')?;
            (u16::from_str_radix(remote_port, 16).ok()? == port)
                .then(|| u64::from_str_radix(rx_queue, 16).ok())
                .flatten()
        })
        .sum()
}
