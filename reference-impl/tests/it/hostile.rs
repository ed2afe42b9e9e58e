//! Hostile values from every side: clients that hang up at any point of a request, and
//! upstreams that answer with absurd headers, statuses and bytes. The gateway must answer every
//! request it still can in the OpenAI error shape, never panic, and leave every gauge of things
//! alive at exactly its idle value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use mock_providers::{MockConfig, MockServer, Profile};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reference_impl::queue::QueueConfig;
use reference_impl::{GatewayConfig, GatewayHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{self, gauges_settle, metric, openai, start};

/// A client with no idle connections, so none stays open after the test drops its responses.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A small deterministic generator, so a failing run can be repeated exactly.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One request and the point at which its client gives up.
struct Abandoned {
    body: Value,
    headers: Vec<(&'static str, String)>,
    /// The client drops the request this long after sending it...
    after: Duration,
    /// ...or once it has read this many body chunks, whichever comes first.
    chunks: usize,
}

/// Requests that overlap in every stage the gateway can be holding something: waiting for the
/// upstream's first byte, relaying a stream, waiting for a queue slot (4 slots for 48
/// requests), and following a coalesced identical request (temperature 0, shared prompts).
fn abandoned_requests(rng: &mut XorShift) -> Vec<Abandoned> {
    (0..48)
        .map(|i| {
            let stream = rng.below(2) == 0;
            let coalesced = rng.below(3) == 0;
            let mut body = json!({
                "model": "m",
                "messages": [{"role": "user", "content": format!("request {i}")}],
                "stream": stream,
            });
            if coalesced {
                body["temperature"] = json!(0);
                body["messages"][0]["content"] = json!(format!("shared {}", i % 3));
            }
            let ttft = 20 + rng.below(150);
            Abandoned {
                body,
                headers: vec![
                    ("x-mock-ttft-ms", ttft.to_string()),
                    ("x-mock-itl-ms", "10".to_owned()),
                    ("x-mock-tokens", "30".to_owned()),
                ],
                after: Duration::from_millis(5 + rng.below(400)),
                chunks: 1 + rng.below(6) as usize,
            }
        })
        .collect()
}

async fn abandon(client: &reqwest::Client, url: &str, request: Abandoned) {
    let mut sent = client.post(url).json(&request.body);
    for (name, value) in &request.headers {
        sent = sent.header(*name, value);
    }
    let work = async {
        let mut response = sent.send().await.ok()?;
        for _ in 0..request.chunks {
            response.chunk().await.ok()??;
        }
        Some(())
    };
    // Dropping the request future is exactly what a client that hangs up does to the gateway.
    let _ = tokio::time::timeout(request.after, work).await;
}

/// A native mock and a gateway in front of it with its cache on and 4 queue slots, so requests
/// can be held in every stage; `tweak` adjusts the gateway's configuration further.
async fn cached_and_queued(tweak: impl FnOnce(&mut GatewayConfig)) -> (MockServer, GatewayHandle) {
    let upstream = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    let gw = start(vec![openai("up", upstream.url())], |c| {
        c.cache.enabled = true;
        c.queue = Some(QueueConfig {
            max_concurrent: 4,
            max_queued: 1_000,
            ..QueueConfig::default()
        });
        tweak(c);
    })
    .await;
    (upstream, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_abandoning_requests_at_any_point_leave_every_gauge_at_zero() {
    let (upstream, gw) = cached_and_queued(|_| {}).await;
    let seed = 0x9e37_79b9_7f4a_7c15;
    let requests = abandoned_requests(&mut XorShift(seed));
    let client = unpooled();
    let url = format!("{}/v1/chat/completions", gw.url());
    let sent = join_all(requests.into_iter().map(|r| abandon(&client, &url, r)));
    let watch = async {
        // While the requests are under way the gauges do move: the check below can fail.
        tokio::time::sleep(Duration::from_millis(60)).await;
        (
            metric(&gw, "gateway_requests_in_flight").await,
            metric(&gw, "gateway_queue_depth{provider=\"up\"}").await,
        )
    };
    let (_, (in_flight, depth)) = tokio::join!(sent, watch);
    assert!(
        in_flight > 0.0 && depth > 0.0,
        "in flight {in_flight}, queued {depth}"
    );
    drop(client);

    let off = gauges_settle(&gw, Duration::from_secs(10)).await;
    assert!(
        off.is_empty(),
        "seed {seed:#x}: gauges off after every client left: {off:?}"
    );
    assert_eq!(metric(&gw, "gateway_panics_total").await, 0.0);
    let coalesced = common::metrics_text(&gw).await;
    assert!(
        coalesced.contains("gateway_cache_lookups_total{result=\"coalesced\"}")
            && !coalesced.contains("gateway_cache_lookups_total{result=\"coalesced\"} 0\n"),
        "no request followed a coalesced one"
    );
    // The upstream's side of every abandoned request was closed too.
    for _ in 0..250 {
        if upstream.stats().in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.stats().in_flight, 0, "{:?}", upstream.stats());
    // And the gateway still serves.
    let response = unpooled()
        .post(&url)
        .json(&common::chat("m", false))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
}

/// `[inject] panic_one_in`: every third request that reaches an upstream panics inside the
/// gateway while it holds its in-flight gauge, a queue slot and, for repeated prompts, the
/// coalesced flight others follow. Each panic is a 500 for that request alone, and afterwards
/// every gauge is back at exactly 0 and the gateway still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_panics_release_everything_they_held() {
    let (_upstream, gw) = cached_and_queued(|c| c.inject.panic_one_in = 3).await;
    let client = unpooled();
    let url = format!("{}/v1/chat/completions", gw.url());
    let sent = (0..30).map(|i| {
        let mut body = json!({
            "model": "m",
            "messages": [{"role": "user", "content": format!("panic {i}")}],
            "stream": i % 2 == 0,
        });
        if i % 5 == 0 {
            body["temperature"] = json!(0);
            body["messages"][0]["content"] = json!("shared");
        }
        let (client, url) = (&client, &url);
        async move {
            let response = client
                .post(url)
                .header("x-mock-ttft-ms", "30")
                .json(&body)
                .send()
                .await
                .expect("every request is answered");
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
    });
    let statuses = join_all(sent).await;
    drop(client);
    let panics = metric(&gw, "gateway_panics_total").await;
    let errors = statuses.iter().filter(|s| **s == 500).count();
    assert!(panics >= 5.0, "{panics} panics: {statuses:?}");
    assert!(
        errors as f64 >= panics,
        "{panics} panics, statuses {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 500 | 502)),
        "{statuses:?}"
    );
    let off = gauges_settle(&gw, Duration::from_secs(10)).await;
    assert!(off.is_empty(), "gauges off after {panics} panics: {off:?}");
    let response = unpooled()
        .post(&url)
        .json(&common::chat("m", false))
        .send()
        .await
        .expect("gateway answers");
    assert!(matches!(response.status().as_u16(), 200 | 500));
}

/// A loopback HTTP/1.1 upstream that reads each request and answers it with the same raw
/// bytes, then closes the connection: any status line, header or body, however wrong.
struct RawUpstream {
    url: String,
    answer: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let answer = Arc::new(Mutex::new(Vec::new()));
        let shared = answer.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let answer = shared.lock().expect("answer").clone();
                tokio::spawn(answer_once(tcp, answer));
            }
        });
        Self { url, answer, task }
    }

    fn answer_with(&self, bytes: Vec<u8>) {
        *self.answer.lock().expect("answer") = bytes;
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `content-length` body, within 5 s), writes `answer`, closes.
async fn answer_once(mut tcp: TcpStream, answer: Vec<u8>) {
    let read = async {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            request.extend_from_slice(&buf[..n]);
            let Some(head) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&request[..head]).to_ascii_lowercase();
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= head + 4 + length {
                return Some(());
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        let _ = tcp.write_all(&answer).await;
        let _ = tcp.shutdown().await;
    }
}

/// An HTTP/1.1 response: status, extra header lines, and the body (read to the close unless a
/// header gives its length).
fn raw(status: u16, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n").into_bytes();
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A gateway whose only provider is `upstream`, with short timeouts and grace.
async fn gateway_for(upstream: &RawUpstream) -> GatewayHandle {
    start(vec![openai("raw", &upstream.url)], |c| {
        c.routing.attempt_timeout_ms = 2_000;
        c.routing.deadline_ms = 4_000;
        c.server.shutdown_grace_ms = 500;
    })
    .await
}

/// Status, the body as JSON (`Null` if it is not), and `retry-after`, of one whole exchange.
async fn exchange(gw: &GatewayHandle, path: &str, body: &Value) -> (u16, String, Option<u64>) {
    let response = unpooled()
        .post(format!("{}{path}", gw.url()))
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let text = response.text().await.expect("the whole body arrives");
    (status, text, retry_after)
}

/// The gateway did not panic, answered in a shape an OpenAI client reads, and is idle again.
async fn check_answer(
    gw: &GatewayHandle,
    stream: bool,
    (status, text, retry_after): (u16, String, Option<u64>),
) -> Result<(), String> {
    if status == 500 {
        return Err(format!("500 (a caught panic): {text}"));
    }
    let panics = metric(gw, "gateway_panics_total").await;
    if panics != 0.0 {
        return Err(format!("{panics} panics"));
    }
    if retry_after.is_some_and(|secs| secs > 3_600) {
        return Err(format!("retry-after {retry_after:?} above the ceiling"));
    }
    let well_formed = match (status, stream) {
        (200, true) => common::sse_data(&text).last().is_some_and(|last| {
            last == "[DONE]"
                || serde_json::from_str::<Value>(last)
                    .is_ok_and(|v| v["error"]["message"].is_string())
        }),
        (200, false) => serde_json::from_str::<Value>(&text).is_ok(),
        _ => serde_json::from_str::<Value>(&text).is_ok_and(|v| v["error"]["message"].is_string()),
    };
    if !well_formed {
        return Err(format!(
            "{status} with a body a client cannot read: {text:.300}"
        ));
    }
    let off = gauges_settle(gw, Duration::from_secs(5)).await;
    if !off.is_empty() {
        return Err(format!("gauges off: {off:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_upstream_values_get_clean_errors_never_a_panic() {
    let upstream = RawUpstream::start().await;
    let error = br#"{"error":{"message":"slow down","type":"rate_limit"}}"#;
    let endless_event = [b"data: ".as_slice(), &vec![b'x'; 5 * 1024 * 1024]].concat();
    let sse = "content-type: text/event-stream";
    let json_type = "content-type: application/json";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "retry-after 1e300",
            raw(429, &["retry-after: 1e300"], error),
        ),
        (
            "retry-after-ms u64::MAX",
            raw(503, &["retry-after-ms: 18446744073709551615"], error),
        ),
        ("retry-after inf", raw(429, &["retry-after: inf"], error)),
        ("retry-after -1", raw(429, &["retry-after: -1"], error)),
        (
            "content-length u64::MAX",
            raw(
                200,
                &[json_type, "content-length: 18446744073709551615"],
                b"{}",
            ),
        ),
        (
            "content-length 1 TB",
            raw(200, &[json_type, "content-length: 1000000000000"], b"{}"),
        ),
        (
            "content-length longer than the body",
            raw(200, &[json_type, "content-length: 500"], b"{\"choices\":"),
        ),
        (
            "error body 1 TB",
            raw(400, &[json_type, "content-length: 1000000000000"], b"{}"),
        ),
        (
            "SSE event never ends (5 MiB)",
            raw(200, &[sse], &endless_event),
        ),
        ("status 599", raw(599, &[], b"")),
        ("status 299", raw(299, &[json_type], b"not json")),
        // Statuses whose answer to the client could carry no body, and a redirect, which the
        // gateway does not follow: relayed as they are, the client would get no error at all.
        ("status 304", raw(304, &[json_type], error)),
        ("status 204", raw(204, &[], b"")),
        (
            "status 301 to https",
            raw(301, &["location: https://example.invalid/"], error),
        ),
    ];
    for (name, answer) in cases {
        upstream.answer_with(answer);
        for (path, stream) in [
            ("/v1/chat/completions", false),
            ("/v1/chat/completions", true),
            ("/v1/embeddings", false),
        ] {
            let gw = gateway_for(&upstream).await;
            let body = match path {
                "/v1/embeddings" => json!({"model": "m", "input": "hello"}),
                _ => common::chat("m", stream),
            };
            let answer = exchange(&gw, path, &body).await;
            let status = answer.0;
            if let Err(problem) = check_answer(&gw, stream, answer).await {
                panic!("{name} on {path} (stream {stream}): {problem}");
            }
            assert_ne!(
                status, 200,
                "{name} on {path}: a broken answer passed as a success"
            );
            gw.shutdown().await;
        }
    }
}

/// One arbitrary upstream answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    retry_after_ms: Option<String>,
    content_length: Option<String>,
    event_stream: bool,
    body: Vec<u8>,
    stream_request: bool,
}

/// Numbers, near-numbers and junk, as an upstream might put them in a header.
fn header_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        Just("1e300".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        "[ -~]{0,20}",
    ]
}

/// Pieces an SSE body is made of, well-formed and not.
fn sse_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"data: {"choices":[{"delta":{"content":"hi"}}]}"#.to_vec()),
        Just(b"data: [DONE]".to_vec()),
        Just(br#"data: {"error":{"message":"x"}}"#.to_vec()),
        Just(br#"data: {"usage":{"prompt_tokens":1}}"#.to_vec()),
        Just(b": ping".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let body = prop_oneof![
        proptest::collection::vec(sse_piece(), 0..8).prop_map(|p| p.concat()),
        proptest::collection::vec(any::<u8>(), 0..200),
        Just(br#"{"choices":[{"message":{"content":"hi"}}]}"#.to_vec()),
    ];
    let status = prop_oneof![Just(200u16), Just(429), Just(503), 200u16..=599];
    (
        status,
        proptest::option::of(header_number()),
        proptest::option::of(header_number()),
        proptest::option::of(prop_oneof![header_number(), Just("0".to_owned())]),
        any::<bool>(),
        body,
        any::<bool>(),
    )
        .prop_map(
            |(status, retry_after, retry_after_ms, content_length, event_stream, body, stream)| {
                Answer {
                    status,
                    retry_after,
                    retry_after_ms,
                    content_length,
                    event_stream,
                    body,
                    stream_request: stream,
                }
            },
        )
}

impl Answer {
    fn bytes(&self) -> Vec<u8> {
        let content_type = match self.event_stream {
            true => "text/event-stream",
            false => "application/json",
        };
        let mut headers = vec![format!("content-type: {content_type}")];
        for (name, value) in [
            ("retry-after", &self.retry_after),
            ("retry-after-ms", &self.retry_after_ms),
            ("content-length", &self.content_length),
        ] {
            if let Some(value) = value {
                headers.push(format!("{name}: {value}"));
            }
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        raw(self.status, &headers, &self.body)
    }
}

/// Arbitrary statuses, `retry-after`, `retry-after-ms`, `content-length` and body bytes from a
/// real (in-process, loopback) upstream, through a real gateway: never a panic, always an
/// answer a client can read, and every gauge idle afterwards.
#[test]
fn arbitrary_upstream_answers_never_panic_or_leave_a_gauge_off() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = runtime.block_on(RawUpstream::start());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&answer(), |answer| {
        runtime.block_on(async {
            upstream.answer_with(answer.bytes());
            let gw = gateway_for(&upstream).await;
            let body = common::chat("m", answer.stream_request);
            let exchanged = exchange(&gw, "/v1/chat/completions", &body).await;
            let checked = check_answer(&gw, answer.stream_request, exchanged).await;
            gw.shutdown().await;
            checked.map_err(TestCaseError::fail)
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
