//! Fault matrix: what a client sees when the primary provider fails in each way a provider can.
//!
//! ```text
//! cargo run --release -p reference-impl --example fault_matrix
//! ```
//!
//! Each case starts two native mocks (a primary with the fault and a healthy fallback) and a
//! fresh gateway in front of them, sends the same bounded mix of streaming and non-streaming
//! requests, and classifies every answer: answered (a complete completion, from either
//! provider), a clean error (an OpenAI error body, or a stream ending with an error event), or
//! lost (no answer, or a stream cut without an error event). It then checks the gateway's
//! counters against what the mocks saw. The Redis case kills and restarts a real
//! `redis-server` under the limiter and cache tiers. The hostile-value cases put a raw
//! loopback upstream (any status line, header or body) in the primary's place, and the last
//! case has clients hang up mid-request; both check that nothing panics and every gauge of
//! things alive returns to 0. Prints a markdown table; exits non-zero if any case fails.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mock_providers::{
    Distribution, FaultRates, MockConfig, MockServer, Outcome, Profile, Route, StatsSnapshot,
};
use reference_impl::cache::{CacheConfig, RedisCacheConfig};
use reference_impl::limiter::{LimiterConfig, RedisLimiterConfig, TierLimit};
use reference_impl::{Gateway, GatewayConfig, GatewayHandle, ProviderConfig, ProviderKind};
use serde_json::{Value, json};

#[path = "../tests/it/common/redis.rs"]
mod redis;
use redis::RedisServer;

/// Requests per case, half of them streaming.
const REQUESTS: usize = 40;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// What a passing case looks like besides "nothing lost, counters agree".
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// The fault strikes before anything reaches the client, so the fallback answers all.
    AllAnswered,
    /// The fault can strike after content reached the client; those end with an error event.
    AnsweredOrCleanError,
}

struct Case {
    name: &'static str,
    primary: ProviderKind,
    /// The primary's profile fails every request this way.
    faults: FaultRates,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let every = |set: fn(&mut FaultRates)| {
        let mut rates = FaultRates::default();
        set(&mut rates);
        rates
    };
    let case = |name, primary, faults, expect| Case {
        name,
        primary,
        faults,
        expect,
    };
    use Expect::*;
    use ProviderKind::*;
    vec![
        case(
            "500 burst",
            OpenAi,
            every(|f| f.http_500 = 1.0),
            AllAnswered,
        ),
        case("503", OpenAi, every(|f| f.http_503 = 1.0), AllAnswered),
        case("529", Anthropic, every(|f| f.http_529 = 1.0), AllAnswered),
        case(
            "429 with retry-after",
            OpenAi,
            every(|f| f.http_429 = 1.0),
            AllAnswered,
        ),
        case(
            "hang (timeout)",
            OpenAi,
            every(|f| f.timeout = 1.0),
            AllAnswered,
        ),
        case(
            "disconnect mid-stream",
            OpenAi,
            every(|f| f.disconnect = 1.0),
            AnsweredOrCleanError,
        ),
        case(
            "malformed chunk",
            OpenAi,
            every(|f| f.malformed = 1.0),
            AnsweredOrCleanError,
        ),
        case(
            "Anthropic mid-stream error",
            Anthropic,
            every(|f| f.error_event = 1.0),
            AnsweredOrCleanError,
        ),
    ]
}

/// How one request ended, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// A complete completion; `true` if the fallback produced it.
    Answered {
        fallback: bool,
    },
    CleanError,
    Lost,
}

/// One row of the table.
struct Row {
    case: String,
    sent: usize,
    answered: usize,
    via_fallback: usize,
    clean: usize,
    lost: usize,
    gateway: String,
    mocks: String,
    failures: Vec<String>,
}

impl Row {
    fn new(case: &str, answers: &[Answer]) -> Self {
        let count = |f: fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
        Self {
            case: case.to_owned(),
            sent: answers.len(),
            answered: count(|a| matches!(a, Answer::Answered { .. })),
            via_fallback: count(|a| matches!(a, Answer::Answered { fallback: true })),
            clean: count(|a| *a == Answer::CleanError),
            lost: count(|a| *a == Answer::Lost),
            gateway: String::new(),
            mocks: String::new(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    fn print(&self) {
        let verdict = match self.failures.as_slice() {
            [] => "pass".to_owned(),
            failures => format!("**FAIL**: {}", failures.join("; ")),
        };
        println!(
            "| {} | {} | {} ({} via fallback) | {} | {} | {} | {} | {} |",
            self.case,
            self.sent,
            self.answered,
            self.via_fallback,
            self.clean,
            self.lost,
            self.gateway,
            self.mocks,
            verdict
        );
    }
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        for case in cases() {
            rows.push(run_case(&case).await);
        }
        match has_redis_server() {
            true => rows.push(run_redis_case().await),
            false => println!("redis killed and restarted: skipped: no redis-server"),
        }
        for (name, answer) in hostile_answers() {
            rows.push(run_hostile_case(name, answer).await);
        }
        rows.push(run_hang_up_case().await);
        rows
    });
    println!(
        "| case | requests sent | answered OK | clean errors | lost | gateway counters | mocks saw | result |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    if rows.iter().all(|r| r.failures.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// 16 tokens 2 ms apart, so a mid-stream fault usually strikes after content reached the client.
fn paced() -> Profile {
    Profile {
        itl_ms: Distribution::constant(2.0),
        ..Profile::fast()
    }
}

async fn mock(profile: Profile) -> MockServer {
    MockServer::start(MockConfig::new(profile))
        .await
        .expect("mock starts")
}

/// Primary (cheaper, so preferred while healthy) and fallback, with short attempt timeouts.
fn gateway_config(primary: ProviderConfig, fallback_url: &str) -> GatewayConfig {
    let mut primary = primary;
    primary.cost = 1.0;
    let mut fallback = ProviderConfig::new("fallback", ProviderKind::OpenAi, fallback_url);
    fallback.cost = 2.0;
    let mut config = GatewayConfig::with_providers(vec![primary, fallback]);
    config.server.listen = (Ipv4Addr::LOCALHOST, 0).into();
    config.routing.attempt_timeout_ms = 500;
    config.routing.deadline_ms = 5_000;
    config.routing.backoff_ms = 10;
    config
}

async fn run_case(case: &Case) -> Row {
    let primary_mock = mock(paced()).await;
    let fallback_mock = mock(paced()).await;
    let profile = Profile {
        faults: case.faults,
        ..paced()
    };
    primary_mock.set_profile(profile).expect("valid profile");
    let primary = ProviderConfig::new("primary", case.primary, primary_mock.url());
    let gw = Gateway::start(gateway_config(primary, fallback_mock.url()))
        .await
        .expect("gateway starts");
    let answers = send_all(&gw, |_| json!(null)).await;
    let alive = get_ok(&gw, "/health").await;
    let metrics = scrape(&gw).await;
    let primary_seen = settled_stats(&primary_mock).await;
    let fallback_seen = settled_stats(&fallback_mock).await;
    gw.shutdown().await;

    let mut row = Row::new(case.name, &answers);
    let route = match case.primary {
        ProviderKind::OpenAi => Route::ChatCompletions,
        ProviderKind::Anthropic => Route::Messages,
    };
    let injected = faults(&primary_seen, route);
    let failed = metrics.provider("gateway_upstream_failures_total", "primary");
    let broken = metrics.get("gateway_streams_broken_total");
    let opened = metrics.provider("gateway_breaker_opened_total", "primary");
    let retries = metrics.get("gateway_retries_total");
    let sent_primary = metrics.provider("gateway_pool_requests_total", "primary");
    let sent_fallback = metrics.provider("gateway_pool_requests_total", "fallback");
    row.gateway = format!(
        "to primary {sent_primary}, to fallback {sent_fallback}, primary attempts failed {failed}, \
         streams broken {broken}, retries {retries}, breaker opened {opened}"
    );
    row.mocks = format!(
        "primary {} ({}), fallback {} ({})",
        primary_seen.requests,
        outcomes(&primary_seen),
        fallback_seen.requests,
        outcomes(&fallback_seen)
    );
    row.check(alive, "gateway stopped answering /health");
    row.check(row.lost == 0, format!("{} requests lost", row.lost));
    match case.expect {
        Expect::AllAnswered => row.check(
            row.answered == row.sent,
            format!("{} of {} answered", row.answered, row.sent),
        ),
        Expect::AnsweredOrCleanError => row.check(
            row.answered + row.clean == row.sent,
            "answers and clean errors do not add up",
        ),
    }
    row.check(
        sent_primary == primary_seen.requests && sent_fallback == fallback_seen.requests,
        "requests sent upstream differ from requests the mocks saw",
    );
    row.check(
        failed == injected,
        format!("mock injected {injected} faults, gateway counted {failed} failed attempts"),
    );
    row.check(
        faults(&fallback_seen, Route::ChatCompletions) == 0,
        "the fallback failed",
    );
    row
}

/// Faults the mock injected (everything it counted except successes and cancellations).
fn faults(stats: &StatsSnapshot, route: Route) -> u64 {
    [
        Outcome::Http429,
        Outcome::Http500,
        Outcome::Http503,
        Outcome::Http529,
        Outcome::Timeout,
        Outcome::Disconnect,
        Outcome::ErrorEvent,
        Outcome::Malformed,
    ]
    .into_iter()
    .map(|o| stats.count(route, o))
    .sum()
}

/// `name count` pairs of every outcome the mock counted.
fn outcomes(stats: &StatsSnapshot) -> String {
    let pairs: Vec<String> = stats
        .routes
        .values()
        .flatten()
        .map(|(outcome, n)| format!("{outcome} {n}"))
        .collect();
    pairs.join(", ")
}

/// The mock's counters once no request is in flight there (at most 2 s).
async fn settled_stats(mock: &MockServer) -> StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(2);
    while mock.stats().in_flight > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mock.stats()
}

/// Sends `REQUESTS` requests, alternating streaming and not, `CONCURRENCY` at a time;
/// `extra(i)` is merged into request `i`'s body.
async fn send_all(gw: &GatewayHandle, extra: impl Fn(usize) -> Value) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("{}/v1/chat/completions", gw.url());
    let requests = (0..REQUESTS).map(|i| {
        let stream = i % 2 == 0;
        let mut body = json!({
            "model": "m",
            "messages": [{"role": "user", "content": format!("request {i}")}],
            "stream": stream,
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra(i)) {
            body.extend(extra);
        }
        let request = client.post(&url).json(&body);
        async move { classify(request.send().await, stream).await }
    });
    futures::stream::iter(requests)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Reads a whole response and decides how it ended.
async fn classify(sent: reqwest::Result<reqwest::Response>, stream: bool) -> Answer {
    let Ok(response) = sent else {
        return Answer::Lost;
    };
    let status = response.status();
    let fallback = response
        .headers()
        .get("x-gateway-provider")
        .is_some_and(|v| v == "fallback");
    let Ok(body) = response.text().await else {
        return Answer::Lost;
    };
    if !status.is_success() {
        return match serde_json::from_str::<Value>(&body) {
            Ok(v) if v["error"]["message"].is_string() => Answer::CleanError,
            _ => Answer::Lost,
        };
    }
    if !stream {
        return match serde_json::from_str::<Value>(&body) {
            Ok(v) if v["choices"][0]["message"]["content"].is_string() => {
                Answer::Answered { fallback }
            }
            _ => Answer::Lost,
        };
    }
    let data: Vec<&str> = body
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    let content = data.iter().any(|d| d.contains("\"content\""));
    match data.last() {
        Some(&"[DONE]") if content => Answer::Answered { fallback },
        Some(last) => match serde_json::from_str::<Value>(last) {
            Ok(v) if v["error"]["message"].is_string() => Answer::CleanError,
            _ => Answer::Lost,
        },
        None => Answer::Lost,
    }
}

async fn get_ok(gw: &GatewayHandle, path: &str) -> bool {
    match reqwest::get(format!("{}{path}", gw.url())).await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

/// The gateway's `/metrics` page.
struct Metrics(String);

impl Metrics {
    fn get(&self, series: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse::<f64>().ok())?
            })
            .map_or(0, |v| v as u64)
    }

    fn provider(&self, name: &str, provider: &str) -> u64 {
        self.get(&format!("{name}{{provider=\"{provider}\"}}"))
    }
}

async fn scrape(gw: &GatewayHandle) -> Metrics {
    let text = match reqwest::get(format!("{}/metrics", gw.url())).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Metrics(text)
}

/// Whether a `redis-server` is on the PATH.
fn has_redis_server() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    })
}

/// Limiter and cache on a real Redis: a batch of requests with Redis up, one with it killed, one
/// right after it is started again (empty), and one more that must find both tiers recovered.
async fn run_redis_case() -> Row {
    let redis = RedisServer::start();
    let (port, url) = (redis.port(), redis.url());
    let primary_mock = mock(paced()).await;
    let fallback_mock = mock(paced()).await;
    let primary = ProviderConfig::new("primary", ProviderKind::OpenAi, primary_mock.url());
    let mut config = gateway_config(primary, fallback_mock.url());
    config.limiter = LimiterConfig {
        enabled: true,
        redis: Some(RedisLimiterConfig {
            url: url.clone(),
            timeout_ms: 50,
            key_prefix: "fault-matrix".to_owned(),
        }),
        ..LimiterConfig::default()
    };
    config.limiter.tiers.free = TierLimit {
        requests: 1_000_000,
        period_secs: 3600,
        tokens_per_minute: None,
    };
    config.cache = CacheConfig {
        redis: Some(RedisCacheConfig {
            url,
            timeout_ms: 50,
            ttl_secs: 60,
        }),
        ..CacheConfig::default()
    };
    let gw = Gateway::start(config).await.expect("gateway starts");
    // Temperature 0 makes every request cacheable; a prompt of its own makes each one a miss
    // in memory and so a lookup in Redis.
    let cacheable = |phase: &'static str| {
        move |i: usize| {
            json!({
                "temperature": 0,
                "messages": [{"role": "user", "content": format!("{phase} request {i}")}],
            })
        }
    };

    let mut answers = send_all(&gw, cacheable("up")).await;
    let up = scrape(&gw).await;
    drop(redis);
    answers.extend(send_all(&gw, cacheable("killed")).await);
    let down = scrape(&gw).await;
    let _restarted = RedisServer::start_on(port);
    // The connection managers reconnect in the background while the first batch runs; the
    // second batch must find both tiers back on Redis.
    answers.extend(send_all(&gw, cacheable("restarted")).await);
    let restarted = scrape(&gw).await;
    answers.extend(send_all(&gw, cacheable("recovered")).await);
    let back = scrape(&gw).await;
    let alive = get_ok(&gw, "/health").await;
    let primary_seen = settled_stats(&primary_mock).await;
    let fallback_seen = settled_stats(&fallback_mock).await;
    gw.shutdown().await;

    let mut row = Row::new("Redis killed and restarted", &answers);
    let fallbacks = |m: &Metrics| m.get("gateway_ratelimit_redis_fallbacks_total");
    let errors = |m: &Metrics| m.get("gateway_cache_redis_errors_total");
    let phase = |m: &Metrics, before: &Metrics| {
        (fallbacks(m) - fallbacks(before), errors(m) - errors(before))
    };
    let (limit_up, cache_up) = (fallbacks(&up), errors(&up));
    let (limit_down, cache_down) = phase(&down, &up);
    let (limit_restart, cache_restart) = phase(&restarted, &down);
    let (limit_back, cache_back) = phase(&back, &restarted);
    let sent_primary = back.provider("gateway_pool_requests_total", "primary");
    let sent_fallback = back.provider("gateway_pool_requests_total", "fallback");
    row.gateway = format!(
        "to primary {sent_primary}, to fallback {sent_fallback}; limiter decided locally / cache \
         Redis errors: up {limit_up}/{cache_up}, killed {limit_down}/{cache_down}, just restarted \
         {limit_restart}/{cache_restart}, after that {limit_back}/{cache_back}"
    );
    row.mocks = format!(
        "primary {} ({}), fallback {}",
        primary_seen.requests,
        outcomes(&primary_seen),
        fallback_seen.requests
    );
    row.check(alive, "gateway stopped answering /health");
    row.check(row.lost == 0, format!("{} requests lost", row.lost));
    row.check(
        row.answered == row.sent,
        format!("{} of {} answered", row.answered, row.sent),
    );
    row.check(
        limit_up == 0 && cache_up == 0,
        "Redis errors while Redis was up",
    );
    row.check(
        limit_down > 0 && cache_down > 0,
        "the tiers did not notice Redis was gone",
    );
    row.check(
        limit_back == 0 && cache_back == 0,
        "the tiers did not recover after the restart",
    );
    row.check(
        sent_primary + sent_fallback == primary_seen.requests + fallback_seen.requests,
        "requests sent upstream differ from requests the mocks saw",
    );
    row
}

/// Gauges of things alive that must read 0 on an idle gateway (the scrape's own connection
/// aside).
const ALIVE_GAUGES: [&str; 3] = [
    "gateway_requests_in_flight",
    "gateway_open_streams",
    "gateway_upstream_in_flight",
];

/// Absurd but well-formed answers a primary can give, as raw HTTP/1.1 bytes.
fn hostile_answers() -> Vec<(&'static str, Vec<u8>)> {
    let error = r#"{"error":{"message":"slow down","type":"rate_limit"}}"#;
    let raw = |head: &str, body: &[u8]| {
        [
            format!("{head}\r\nconnection: close\r\n\r\n").as_bytes(),
            body,
        ]
        .concat()
    };
    vec![
        (
            "429 with retry-after: 1e300",
            raw("HTTP/1.1 429 X\r\nretry-after: 1e300", error.as_bytes()),
        ),
        (
            "503 with retry-after-ms: 18446744073709551615",
            raw(
                "HTTP/1.1 503 X\r\nretry-after-ms: 18446744073709551615",
                error.as_bytes(),
            ),
        ),
        (
            "200 with content-length: 1 TB",
            raw(
                "HTTP/1.1 200 X\r\ncontent-type: application/json\r\ncontent-length: 1000000000000",
                b"{}",
            ),
        ),
        (
            "SSE event that never ends (5 MiB)",
            raw(
                "HTTP/1.1 200 X\r\ncontent-type: text/event-stream",
                &[b"data: ".as_slice(), &vec![b'x'; 5 << 20]].concat(),
            ),
        ),
    ]
}

/// A loopback upstream that reads each request and answers it with `answer`, then closes;
/// returns its URL and how many requests it answered.
async fn raw_upstream(answer: Vec<u8>) -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let answered = Arc::new(AtomicU64::new(0));
    let (answer, count) = (Arc::new(answer), answered.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (answer, count) = (answer.clone(), count.clone());
            tokio::spawn(async move {
                // Reads the head and the (small) body the gateway sends, then answers.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    let Some(head) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if request.len() >= head + 4 + length {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = tcp.write_all(&answer).await;
                        let _ = tcp.shutdown().await;
                        break;
                    }
                }
            });
        }
    });
    (url, answered)
}

/// The alive gauges once the gateway has been idle for a moment (at most 2 s), as `name value`.
async fn settled_gauges(gw: &GatewayHandle) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let metrics = scrape(gw).await;
        let values: Vec<u64> = ALIVE_GAUGES.iter().map(|g| metrics.get(g)).collect();
        let idle = values.iter().all(|v| *v == 0)
            && metrics.provider("gateway_upstream_in_flight", "primary") == 0
            && metrics.provider("gateway_upstream_in_flight", "fallback") == 0;
        if idle || Instant::now() > deadline {
            let text: Vec<String> = ALIVE_GAUGES
                .iter()
                .zip(&values)
                .map(|(g, v)| format!("{} {v}", g.trim_start_matches("gateway_")))
                .collect();
            return (idle, text.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The primary answers every request with the same absurd bytes; the fallback is healthy.
async fn run_hostile_case(name: &str, answer: Vec<u8>) -> Row {
    let (primary_url, primary_seen) = raw_upstream(answer).await;
    let fallback_mock = mock(paced()).await;
    let primary = ProviderConfig::new("primary", ProviderKind::OpenAi, primary_url);
    let gw = Gateway::start(gateway_config(primary, fallback_mock.url()))
        .await
        .expect("gateway starts");
    let answers = send_all(&gw, |_| json!(null)).await;
    let alive = get_ok(&gw, "/health").await;
    let (idle, gauges) = settled_gauges(&gw).await;
    let metrics = scrape(&gw).await;
    let fallback_seen = settled_stats(&fallback_mock).await;
    gw.shutdown().await;

    let mut row = Row::new(name, &answers);
    let panics = metrics.get("gateway_panics_total");
    let failed = metrics.provider("gateway_upstream_failures_total", "primary");
    let sent_primary = metrics.provider("gateway_pool_requests_total", "primary");
    let sent_fallback = metrics.provider("gateway_pool_requests_total", "fallback");
    let primary_answered = primary_seen.load(Ordering::Relaxed);
    row.gateway = format!(
        "to primary {sent_primary}, to fallback {sent_fallback}, primary attempts failed \
         {failed}, panics {panics}; idle after: {gauges}"
    );
    row.mocks = format!(
        "primary (raw) {primary_answered}, fallback {} ({})",
        fallback_seen.requests,
        outcomes(&fallback_seen)
    );
    row.check(alive, "gateway stopped answering /health");
    row.check(panics == 0, format!("{panics} panics"));
    row.check(idle, format!("gauges off when idle: {gauges}"));
    row.check(row.lost == 0, format!("{} requests lost", row.lost));
    row.check(
        row.answered == row.sent,
        format!("{} of {} answered", row.answered, row.sent),
    );
    row.check(
        sent_primary == primary_answered && failed == primary_answered,
        "requests sent to the primary differ from its answers or the failures counted",
    );
    row
}

/// Clients that give up after 20 ms on requests whose upstream takes 50 ms to answer: every
/// request is abandoned mid-flight, and the gauges must still return to 0.
async fn run_hang_up_case() -> Row {
    let primary_mock = mock(paced()).await;
    let fallback_mock = mock(paced()).await;
    let primary = ProviderConfig::new("primary", ProviderKind::OpenAi, primary_mock.url());
    let gw = Gateway::start(gateway_config(primary, fallback_mock.url()))
        .await
        .expect("gateway starts");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("{}/v1/chat/completions", gw.url());
    let requests = (0..REQUESTS).map(|i| {
        let body = json!({
            "model": "m",
            "messages": [{"role": "user", "content": format!("hang up {i}")}],
            "stream": i % 2 == 0,
        });
        let request = client.post(&url).header("x-mock-ttft-ms", "50").json(&body);
        // Gives up 20 ms after sending, before the whole answer can have arrived (a stream's
        // headers may have): dropping the future is what a client that hangs up does.
        let whole = async move { request.send().await?.bytes().await };
        async move {
            tokio::time::timeout(Duration::from_millis(20), whole)
                .await
                .is_err()
        }
    });
    let gave_up: Vec<bool> = futures::stream::iter(requests)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    drop(client);
    let alive = get_ok(&gw, "/health").await;
    let (idle, gauges) = settled_gauges(&gw).await;
    let metrics = scrape(&gw).await;
    let primary_seen = settled_stats(&primary_mock).await;
    gw.shutdown().await;

    let abandoned = gave_up.iter().filter(|g| **g).count();
    let mut row = Row::new("clients hang up after 20 ms (upstream 50 ms)", &[]);
    row.sent = gave_up.len();
    let panics = metrics.get("gateway_panics_total");
    row.gateway =
        format!("{abandoned} abandoned by their clients, panics {panics}; idle after: {gauges}");
    row.mocks = format!(
        "primary {} ({})",
        primary_seen.requests,
        outcomes(&primary_seen)
    );
    row.check(alive, "gateway stopped answering /health");
    row.check(panics == 0, format!("{panics} panics"));
    row.check(idle, format!("gauges off when idle: {gauges}"));
    row.check(abandoned == REQUESTS, "some clients did not hang up");
    row
}
