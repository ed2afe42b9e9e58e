//! Fallback and retries before the first byte reaches the client, against wiremock upstreams
//! with exact call counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_providers::wiremock::Reply;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer};

use crate::common::{chat, eventually, header, openai, post, start};

async fn upstream() -> MockServer {
    MockServer::start().await
}

#[tokio::test]
async fn falls_back_on_429_to_the_next_provider() {
    let (a, b) = (upstream().await, upstream().await);
    Reply::openai()
        .rate_limited(Duration::from_secs(30))
        .mock()
        .expect(1)
        .mount(&a)
        .await;
    Reply::openai().mock().expect(1).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |_| {}).await;

    let response = post(&gw, &chat("gpt-test", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "b");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    a.verify().await;
    b.verify().await;
}

#[tokio::test]
async fn falls_back_on_every_5xx() {
    for status in [500, 502, 503, 529] {
        let (a, b) = (upstream().await, upstream().await);
        Reply::openai()
            .status(status)
            .mock()
            .expect(1)
            .mount(&a)
            .await;
        Reply::openai().mock().expect(1).mount(&b).await;
        let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |_| {}).await;
        let response = post(&gw, &chat("m", false)).await;
        assert_eq!(response.status(), 200, "after upstream {status}");
        assert_eq!(header(&response, "x-gateway-provider"), "b");
        a.verify().await;
        b.verify().await;
    }
}

#[tokio::test]
async fn streaming_request_falls_back_before_the_first_byte() {
    let (a, b) = (upstream().await, upstream().await);
    Reply::openai().status(503).mock().expect(1).mount(&a).await;
    Reply::openai().tokens(4).mock().expect(1).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |_| {}).await;
    let response = post(&gw, &chat("m", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "b");
    let body = response.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    a.verify().await;
    b.verify().await;
}

#[tokio::test]
async fn retry_after_ms_is_honoured_before_retrying_the_same_provider() {
    let a = upstream().await;
    Reply::openai()
        .rate_limited(Duration::from_millis(300))
        .mock()
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&a)
        .await;
    Reply::openai()
        .mock()
        .expect(1)
        .with_priority(2)
        .mount(&a)
        .await;
    let gw = start(vec![openai("a", &a.uri())], |_| {}).await;

    let began = Instant::now();
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 200);
    // A lower bound only: the gateway waited at least what the upstream asked for.
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "{:?}",
        began.elapsed()
    );
    // The wait is upstream time, not gateway overhead.
    let overhead: u64 = header(&response, "x-gateway-overhead-us").parse().unwrap();
    assert!(
        overhead < 300_000,
        "overhead {overhead} us includes the pause"
    );
    a.verify().await;
}

/// One request's 429 puts its provider in a cooldown; when the provider then answers a request
/// sent before that 429, the requests waiting out the cooldown go at once rather than after
/// the whole `retry-after`.
#[tokio::test]
async fn an_answer_ends_the_cooldown_for_the_requests_waiting_it_out() {
    let cooldown = Duration::from_secs(8);
    let a = upstream().await;
    let chat_path = || Mock::given(method("POST")).and(path("/v1/chat/completions"));
    chat_path()
        .and(body_string_contains("slow"))
        .respond_with(Reply::openai().delay(Duration::from_millis(500)))
        .with_priority(1)
        .expect(1)
        .mount(&a)
        .await;
    chat_path()
        .and(body_string_contains("limited"))
        .respond_with(Reply::openai().rate_limited(cooldown))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&a)
        .await;
    // The rate-limited request's own retry and the request that waits, both after the cooldown.
    Reply::openai()
        .mock()
        .with_priority(3)
        .expect(2)
        .mount(&a)
        .await;
    let gw = Arc::new(start(vec![openai("a", &a.uri())], |_| {}).await);
    let body =
        |content: &str| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    let send = |content: &'static str| {
        let gw = gw.clone();
        let body = body(content);
        tokio::spawn(async move { post(&gw, &body).await.status() })
    };

    let slow = send("slow");
    upstream_has(&a, 1).await;
    let limited = send("limited");
    upstream_has(&a, 2).await;
    // The 429 has reached the gateway, so the next request finds the provider cooling down.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let began = Instant::now();
    let waiting = post(&gw, &body("hello")).await;
    let waited = began.elapsed();
    assert_eq!(waiting.status(), 200);
    assert!(
        waited < cooldown / 2,
        "waited {waited:?}: the answer to the slow request did not end the cooldown"
    );
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(limited.await.unwrap(), 200);
    a.verify().await;
}

/// Waits (at most 5 s) until `upstream` has received `count` requests.
async fn upstream_has(upstream: &MockServer, count: usize) {
    let received = async || upstream.received_requests().await.map_or(0, |r| r.len()) >= count;
    assert!(
        eventually(Duration::from_secs(5), received).await,
        "the upstream never received {count} requests"
    );
}

#[tokio::test]
async fn rate_limit_past_the_deadline_returns_429_with_retry_after() {
    let a = upstream().await;
    Reply::openai()
        .rate_limited(Duration::from_secs(30))
        .mock()
        .expect(1)
        .mount(&a)
        .await;
    let gw = start(vec![openai("a", &a.uri())], |_| {}).await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), "30");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    a.verify().await;
}

#[tokio::test]
async fn attempts_are_bounded_and_cycle_through_candidates() {
    let (a, b) = (upstream().await, upstream().await);
    Reply::openai().status(503).mock().expect(2).mount(&a).await;
    Reply::openai().status(500).mock().expect(1).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |c| {
        c.routing.max_attempts = 3;
    })
    .await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 502);
    assert_eq!(header(&response, "x-gateway-provider"), "a");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_error");
    a.verify().await;
    b.verify().await;
}

#[tokio::test]
async fn client_errors_from_upstream_are_not_retried() {
    let (a, b) = (upstream().await, upstream().await);
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(400).set_body_raw(
            r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&a)
        .await;
    Reply::openai().mock().expect(0).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |_| {}).await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "bad temperature");
    assert_eq!(body["error"]["param"], "temperature");
    a.verify().await;
    b.verify().await;
}

#[tokio::test]
async fn slow_provider_times_out_and_the_next_one_answers() {
    let (a, b) = (upstream().await, upstream().await);
    Reply::openai()
        .delay(Duration::from_secs(3))
        .mock()
        .expect(1)
        .mount(&a)
        .await;
    Reply::openai().mock().expect(1).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |c| {
        c.routing.attempt_timeout_ms = 200;
    })
    .await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "b");
    b.verify().await;
}

#[tokio::test]
async fn unreachable_provider_falls_back() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let b = upstream().await;
    Reply::openai().mock().expect(1).mount(&b).await;
    let gw = start(vec![openai("dead", &dead), openai("b", &b.uri())], |_| {}).await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "b");
    b.verify().await;
}

#[tokio::test]
async fn upstream_garbage_is_a_502_after_all_attempts() {
    let a = upstream().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_raw("<html>oops</html>", "text/html"),
        )
        .expect(2)
        .mount(&a)
        .await;
    let gw = start(vec![openai("a", &a.uri())], |c| c.routing.max_attempts = 2).await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid response"),
        "{body}"
    );
    a.verify().await;
}
