//! HTTP/2 with prior knowledge (h2c) from clients: served beside HTTP/1.1 on the same port,
//! with the same header deadline, body limit and connection cap.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reference_impl::GatewayHandle;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, chat, mock, openai, start};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// hyper's pooled client speaking only HTTP/2, without TLS: prior knowledge.
fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn chat_request(
    gw: &GatewayHandle,
    body: &Value,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut request = Request::post(format!("{}/v1/chat/completions", gw.url()))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

/// One HTTP/2 connection of its own, its driver task spawned.
async fn h2_connection<B>(gw: &GatewayHandle) -> (SendRequest<B>, tokio::task::JoinHandle<()>)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

async fn body_json(response: http::Response<hyper::body::Incoming>) -> Value {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("json body")
}

#[tokio::test]
async fn h2c_clients_get_chat_completions_streamed_and_not() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let client = h2c_client();

    let response = client
        .request(chat_request(&gw, &chat("gpt-4o", false), &[]))
        .await
        .expect("h2c answer");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-gateway-overhead-us"));
    let body = body_json(response).await;
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );

    let response = client
        .request(chat_request(
            &gw,
            &chat("gpt-4o", true),
            &[("x-mock-tokens", "12")],
        ))
        .await
        .expect("h2c stream");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("stream")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert_eq!(
        common::stream_text(&text).split_whitespace().count(),
        12,
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // HTTP/1.1 on the same port as before.
    let http1 = common::post(&gw, &chat("gpt-4o", false)).await;
    assert_eq!(http1.version(), reqwest::Version::HTTP_11);
    assert_eq!(http1.status(), 200);
}

#[tokio::test]
async fn the_body_limit_applies_over_h2_with_and_without_a_content_length() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |c| {
        c.server.body_limit_bytes = 1024;
    })
    .await;
    let mut big = chat("gpt-4o", false);
    big["messages"][1]["content"] = Value::String("x".repeat(4096));

    let response = h2c_client()
        .request(chat_request(&gw, &big, &[]))
        .await
        .expect("answer");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error = body_json(response).await;
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");

    // Streamed in frames with no content-length: cut off while reading.
    let (mut send, _driver) = h2_connection::<Full<Bytes>>(&gw).await;
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = big
        .to_string()
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let request = Request::post(format!("{}/v1/chat/completions", gw.url()))
        .header("content-type", "application/json")
        .body(StreamBody::new(futures::stream::iter(chunks)).boxed())
        .expect("request");
    let (mut streamed, _driver) = h2_connection(&gw).await;
    let response = streamed.send_request(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A body within the limit on the first connection is still served.
    send.ready().await.expect("connection usable");
    let ok = send
        .send_request(chat_request(&gw, &chat("gpt-4o", false), &[]))
        .await
        .expect("answer");
    assert_eq!(ok.status(), StatusCode::OK);
}

/// Reads until the server closes the connection; how long that took from `since`.
async fn closed_after(mut tcp: TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    let deadline = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {} // the server's SETTINGS and GOAWAY
            Err(_) => panic!("the connection was still open after {deadline:?}"),
        }
    }
}

#[tokio::test]
async fn the_header_deadline_applies_to_h2_connections() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |c| {
        c.server.header_read_timeout_ms = TIMEOUT.as_millis() as u64;
    })
    .await;
    let slack = Duration::from_millis(50);

    // The preface, then nothing; half a preface, then nothing.
    for sent in [PREFACE, &PREFACE[..9]] {
        let since = Instant::now();
        let mut tcp = TcpStream::connect(gw.addr()).await.expect("connect");
        tcp.write_all(sent).await.expect("send");
        let closed = closed_after(tcp, since).await;
        println!(
            "{} preface bytes, then silence: closed after {closed:?}",
            sent.len()
        );
        assert!(closed >= TIMEOUT - slack, "closed after {closed:?}");
        assert!(closed < TIMEOUT * 10, "closed after {closed:?}");
    }

    // A client's connection left idle after a request is closed at the deadline too ...
    let (mut send, driver) = h2_connection(&gw).await;
    let answered = send
        .send_request(chat_request(&gw, &chat("gpt-4o", false), &[]))
        .await
        .expect("answer");
    assert_eq!(answered.status(), StatusCode::OK);
    body_json(answered).await;
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the idle h2 connection was closed")
        .expect("driver");
    assert!(
        idle.elapsed() >= TIMEOUT - slack,
        "closed after {:?}",
        idle.elapsed()
    );

    // ... but a stream that outlasts the deadline is not cut.
    let (mut send, _driver) = h2_connection(&gw).await;
    let started = Instant::now();
    let response = send
        .send_request(chat_request(
            &gw,
            &chat("gpt-4o", true),
            &[("x-mock-tokens", "20"), ("x-mock-itl-ms", "40")],
        ))
        .await
        .expect("stream");
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("whole stream")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(started.elapsed() > TIMEOUT * 2, "{:?}", started.elapsed());
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn the_connection_cap_counts_h2_connections() {
    let upstream = mock().await;
    // Two general slots; the other eight are reserved for probes.
    let gw = start(vec![openai("up", upstream.url())], |c| {
        c.server.max_connections = reference_impl::server::RESERVED_CONNECTIONS + 2;
        c.server.header_read_timeout_ms = 30_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut send, driver) = h2_connection(&gw).await;
        let response = send
            .send_request(chat_request(&gw, &chat("gpt-4o", false), &[]))
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        held.push((send, driver));
    }
    // A third h2 connection lands on a reserved slot: a chat request there is refused at once.
    let (mut send, _driver) = h2_connection(&gw).await;
    let refused = send
        .send_request(chat_request(&gw, &chat("gpt-4o", false), &[]))
        .await
        .expect("answer");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.version(), Version::HTTP_2);
    let error = body_json(refused).await;
    assert_eq!(error["error"]["code"], "connection_limit", "{error}");
    // A probe on another reserved h2 connection is answered.
    let (mut probe, _driver) = h2_connection(&gw).await;
    let health = probe
        .send_request(
            Request::get(format!("{}/health", gw.url()))
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(health.status(), StatusCode::OK);

    // Closing one held connection frees its slot for the next client.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut send, _driver) = h2_connection(&gw).await;
        let response = send
            .send_request(chat_request(&gw, &chat("gpt-4o", false), &[]))
            .await
            .expect("answer");
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
