//! Streaming against the native mock: mid-stream failures, client disconnects, shutdown.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mock_providers::{MockServer, Outcome, Route};
use reference_impl::GatewayHandle;
use serde_json::{Value, json};

use crate::common::{
    anthropic, assert_upstream_held_back, chat, client, eventually, header, metric, mock, openai,
    small_window, sse_data, start,
};

/// Tokens 50 ms apart, so the first event reaches the client well before a fault strikes.
/// (Unpaced, a fault may arrive together with the first event; nothing has reached the client
/// then, so the gateway falls back instead, which is the other behaviour under test elsewhere.)
const PACED: (&str, &str) = ("x-mock-itl-ms", "50");

fn content_chunks(body: &str) -> usize {
    sse_data(body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .count()
}

/// A gateway in front of a fresh mock that speaks `provider`'s wire format.
async fn gateway_over(provider: &str) -> (MockServer, GatewayHandle) {
    let upstream = mock().await;
    let config = match provider {
        "openai" => openai("up", upstream.url()),
        _ => anthropic("up", upstream.url()),
    };
    let gw = start(vec![config], |_| {}).await;
    (upstream, gw)
}

fn request(
    gw: &GatewayHandle,
    body: &Value,
    mock_headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut builder = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(body);
    for (name, value) in mock_headers {
        builder = builder.header(*name, *value);
    }
    builder
}

#[tokio::test]
async fn include_usage_is_passed_through() {
    let upstream = mock().await;
    let gw = start(vec![openai("a", upstream.url())], |_| {}).await;
    let mut body = chat("m", true);
    let without = request(&gw, &body, &[])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!without.contains("\"usage\":{"), "{without}");
    body["stream_options"] = json!({"include_usage": true});
    let with = request(&gw, &body, &[])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&with);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 16);
    assert_eq!(data.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn upstream_disconnect_mid_stream_ends_with_an_error_event() {
    for provider in ["openai", "anthropic"] {
        let (_upstream, gw) = gateway_over(provider).await;
        let response = request(
            &gw,
            &chat("m", true),
            &[("x-mock-fault", "disconnect-after:3"), PACED],
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{provider}");
        let body = response.text().await.unwrap();
        let data = sse_data(&body);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["type"], "upstream_error",
            "{provider}: {body}"
        );
        assert!(!body.contains("[DONE]"), "{provider}");
        assert_eq!(content_chunks(&body), 3, "{provider}: {body}");
        assert_eq!(
            metric(&gw, "gateway_streams_broken_total").await,
            1.0,
            "{provider}"
        );
    }
}

#[tokio::test]
async fn upstream_error_event_is_forwarded_once() {
    for provider in ["openai", "anthropic"] {
        let (_upstream, gw) = gateway_over(provider).await;
        let body = request(
            &gw,
            &chat("m", true),
            &[("x-mock-fault", "error-after:2"), PACED],
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let errors: Vec<Value> = sse_data(&body)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v.get("error").is_some())
            .collect();
        assert_eq!(errors.len(), 1, "{provider}: {body}");
        assert!(
            errors[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        // The provider's own error type survives translation.
        let kind = errors[0]["error"]["type"].as_str().unwrap();
        assert!(kind.ends_with("_error"), "{provider}: {kind}");
    }
}

#[tokio::test]
async fn malformed_stream_chunk_ends_the_stream_with_an_error_event() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let body = request(
        &gw,
        &chat("m", true),
        &[("x-mock-fault", "malformed"), PACED],
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let last: Value = serde_json::from_str(sse_data(&body).last().expect(&body)).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid event"),
        "{body}"
    );
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let mut response = request(
        &gw,
        &chat("m", true),
        &[("x-mock-itl-ms", "100"), ("x-mock-tokens", "200")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    let cancelled = || {
        upstream
            .stats()
            .count(Route::ChatCompletions, Outcome::Cancelled)
            == 1
    };
    assert!(
        eventually(Duration::from_secs(5), async || cancelled()).await,
        "upstream saw no cancellation: {:?}",
        upstream.stats()
    );
    assert_eq!(metric(&gw, "gateway_open_streams").await, 0.0);
}

#[tokio::test]
async fn client_disconnect_while_waiting_cancels_the_upstream() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let result = request(&gw, &chat("m", false), &[("x-mock-ttft-ms", "10000")])
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.is_err(), "the client gave up");
    let cancelled = || {
        upstream
            .stats()
            .count(Route::ChatCompletions, Outcome::Cancelled)
            == 1
    };
    assert!(
        eventually(Duration::from_secs(5), async || cancelled()).await,
        "upstream saw no cancellation: {:?}",
        upstream.stats()
    );
}

#[tokio::test]
async fn shutdown_lets_open_streams_finish_then_stops_accepting() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let url = gw.url().to_owned();
    let response = request(
        &gw,
        &chat("m", true),
        &[("x-mock-itl-ms", "20"), ("x-mock-tokens", "20")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(header(&response, "x-gateway-provider"), "up");
    let shutdown = tokio::spawn(gw.shutdown());
    let body = response.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "stream was cut: {body}");
    shutdown.await.unwrap();
    let after = client().get(format!("{url}/health")).send().await;
    assert!(after.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn shutdown_grace_period_ends_long_streams_with_an_error_event() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |c| {
        c.server.shutdown_grace_ms = 100;
    })
    .await;
    let response = request(
        &gw,
        &chat("m", true),
        &[("x-mock-itl-ms", "100"), ("x-mock-tokens", "200")],
    )
    .send()
    .await
    .unwrap();
    let shutdown = tokio::spawn(gw.shutdown());
    let body = response.text().await.unwrap();
    let last: Value = serde_json::from_str(sse_data(&body).last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{body}"
    );
    shutdown.await.unwrap();
}

/// A stream of the mock's longest answer (some 24 MB of SSE, all at once), asked for on a
/// connection of its own whose receive buffer is small, so that what the client does not read
/// stays in the gateway's bounds rather than in the client's kernel.
async fn longest_stream(gw: &GatewayHandle, prompt: &str) -> hyper::Response<Incoming> {
    let tcp = small_window(gw.addr()).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut body = chat("m", true);
    body["messages"][1]["content"] = prompt.into();
    let request = hyper::Request::post("/v1/chat/completions")
        .header("host", gw.addr().to_string())
        .header("content-type", "application/json")
        .header(
            "x-mock-tokens",
            mock_providers::limits::MAX_TOKENS.to_string(),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = sender.send_request(request).await.expect("response head");
    assert_eq!(response.status(), 200);
    response
}

async fn read_to_end(response: hyper::Response<Incoming>) -> String {
    let body = response.into_body().collect().await.expect("whole body");
    String::from_utf8(body.to_bytes().to_vec()).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_reader_holds_back_its_upstream_instead_of_growing_memory() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;

    // How long the whole answer takes a client that reads as fast as it can.
    let began = Instant::now();
    let fast = read_to_end(longest_stream(&gw, "fast").await).await;
    let read_fast = began.elapsed();
    assert_eq!(content_chunks(&fast), mock_providers::limits::MAX_TOKENS);

    // A client that reads nothing for longer than that: had the gateway read its upstream
    // regardless, the answer would be in the gateway's memory by now.
    let slow = longest_stream(&gw, "slow").await;
    tokio::time::sleep(read_fast.mul_f64(1.5).max(Duration::from_secs(1))).await;
    assert_upstream_held_back(&upstream);
    assert_eq!(metric(&gw, "gateway_open_streams").await, 1.0);

    // Once it reads, everything arrives, in order and complete.
    let slow = read_to_end(slow).await;
    assert_eq!(content_chunks(&slow), mock_providers::limits::MAX_TOKENS);
    assert!(
        slow.ends_with("data: [DONE]\n\n"),
        "{}",
        &slow[slow.len() - 200..]
    );
}
