//! `GET /v1/realtime/chat` against the native mock: many connections streaming at once, bad
//! messages, a slow reader, keep-alive, and `gateway_active_websockets` through all of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mock_providers::{ChatRequest, Completion, Provider};
use reference_impl::GatewayHandle;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::common::{
    assert_upstream_held_back, client, gauges_settle, metric, mock, openai, small_window, start,
};

type Ws = WebSocketStream<TcpStream>;

/// Longest wait for any one message.
const MESSAGE_WAIT: Duration = Duration::from_secs(20);

/// A WebSocket to the gateway on `tcp`, the upgrade carrying `headers` (which every request
/// of the connection then carries, the mock's control headers included).
async fn upgrade(gw: &GatewayHandle, tcp: TcpStream, headers: &[(&'static str, &str)]) -> Ws {
    let url = format!("ws://{}/v1/realtime/chat", gw.addr());
    let mut request = url.as_str().into_client_request().expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    ws
}

async fn connect(gw: &GatewayHandle, headers: &[(&'static str, &str)]) -> Ws {
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    upgrade(gw, tcp, headers).await
}

/// A chat completions body asking for a stream with usage, as sent.
fn body(prompt: &str) -> String {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

fn chat(id: &str, body: &str) -> Message {
    Message::text(format!(r#"{{"type":"chat","id":"{id}","body":{body}}}"#))
}

/// The text the mock generates for `body` when told to say `tokens` tokens.
fn mock_text(body: &str, tokens: usize) -> String {
    let request = ChatRequest::parse(Provider::OpenAi, body.as_bytes()).expect("mock parses");
    Completion::new(&request, tokens, 0).text()
}

/// The next text message, as JSON (pings and pongs are skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(MESSAGE_WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a readable message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON message");
        }
    }
}

/// What came back for one request.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    deltas: usize,
    /// The `done` or `error` message.
    end: Option<Value>,
}

/// Reads until each of `ids` has ended; a message for any other id fails the test.
async fn answers(ws: &mut Ws, ids: &[&str]) -> HashMap<String, Answer> {
    let mut got: HashMap<String, Answer> = HashMap::new();
    while ids
        .iter()
        .any(|id| got.get(*id).is_none_or(|a| a.end.is_none()))
    {
        let message = next_json(ws).await;
        let id = message["id"].as_str().expect("a tagged message");
        assert!(ids.contains(&id), "{message}");
        let answer = got.entry(id.to_owned()).or_default();
        assert!(answer.end.is_none(), "a message after the end: {message}");
        match message["type"].as_str() {
            Some("delta") => {
                answer.deltas += 1;
                answer
                    .text
                    .push_str(message["content"].as_str().expect("content"));
            }
            Some("done" | "error") => answer.end = Some(message),
            _ => panic!("unknown message {message}"),
        }
    }
    got
}

/// Polls the unlabelled series `name` until it reads `value`, for up to 5 s.
async fn metric_reaches(gw: &GatewayHandle, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = metric(gw, name).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stays at {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_stream_every_answer_and_the_gauge_follows_them() {
    const CONNECTIONS: usize = 100;
    const TOKENS: usize = 20;
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    let paced = [("x-mock-itl-ms", "20"), ("x-mock-tokens", "20")];
    let mut sockets =
        futures::future::join_all((0..CONNECTIONS).map(|_| connect(&gw, &paced))).await;
    metric_reaches(&gw, "gateway_active_websockets", CONNECTIONS as f64).await;

    // Two requests on each connection, overlapping: 200 streams of 20 tokens 20 ms apart.
    let runs = sockets.iter_mut().enumerate().map(|(n, ws)| async move {
        let bodies = [body(&format!("first {n}")), body(&format!("second {n}"))];
        ws.send(chat("a", &bodies[0])).await.expect("send");
        ws.send(chat("b", &bodies[1])).await.expect("send");
        let got = answers(ws, &["a", "b"]).await;
        for (id, body) in ["a", "b"].into_iter().zip(&bodies) {
            let answer = &got[id];
            let end = answer.end.as_ref().expect("ended");
            assert_eq!(end["type"], "done", "{end}");
            assert_eq!(end["finish_reason"], "stop");
            assert_eq!(end["usage"]["completion_tokens"], TOKENS);
            assert_eq!(answer.deltas, TOKENS);
            assert_eq!(answer.text, mock_text(body, TOKENS));
        }
    });
    futures::future::join_all(runs).await;
    assert_eq!(
        metric(&gw, "gateway_active_websockets").await,
        CONNECTIONS as f64
    );

    for ws in &mut sockets {
        ws.close(None).await.expect("close");
    }
    drop(sockets);
    let off = gauges_settle(&gw, Duration::from_secs(5)).await;
    assert!(off.is_empty(), "gauges not back to idle: {off:?}");
    assert_eq!(metric(&gw, "gateway_active_websockets").await, 0.0);
}

#[tokio::test]
async fn bad_messages_are_answered_and_the_connection_stays_usable() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |config| {
        config.server.body_limit_bytes = 4096;
        config.websocket.max_in_flight = 1;
    })
    .await;
    // A plain GET is no upgrade: 426, in OpenAI's error shape.
    let plain = client()
        .get(format!("{}/v1/realtime/chat", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 426);
    let error: Value = plain.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upgrade_required");

    let mut ws = connect(&gw, &[("x-mock-itl-ms", "50"), ("x-mock-tokens", "10")]).await;

    ws.send(Message::text("not json")).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(
        (answer["type"].as_str(), answer["status"].as_u64()),
        (Some("error"), Some(400))
    );
    assert_eq!(answer["id"], Value::Null);
    assert_eq!(answer["error"]["type"], "invalid_request_error");

    ws.send(Message::text(r#"{"type":"chat","body":{}}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["error"]["param"], "id");

    ws.send(Message::Binary(Bytes::from_static(b"\x00")))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["status"], 400);

    // Refused by the pipeline, in OpenAI's error shape, for its id.
    let no_model = r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#;
    ws.send(chat("m", no_model)).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(
        (answer["id"].as_str(), answer["status"].as_u64()),
        (Some("m"), Some(400))
    );
    assert_eq!(answer["error"]["param"], "model");

    // A body over server.body_limit_bytes: 413, and the connection goes on.
    let big = body(&"x".repeat(4096));
    ws.send(chat("big", &big)).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(
        (answer["id"].as_str(), answer["status"].as_u64()),
        (Some("big"), Some(413))
    );

    // One request under way at most: the second is refused, the first completes.
    let first = body("first");
    ws.send(chat("1", &first)).await.unwrap();
    ws.send(chat("2", &body("second"))).await.unwrap();
    let got = answers(&mut ws, &["1", "2"]).await;
    let refused = got["2"].end.as_ref().unwrap();
    assert_eq!(refused["status"], 429, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_in_flight");
    assert_eq!(got["1"].end.as_ref().unwrap()["type"], "done");
    assert_eq!(got["1"].text, mock_text(&first, 10));

    // Without stream flags the gateway asks for them itself.
    let plain = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"plain"}]}"#;
    ws.send(chat("3", plain)).await.unwrap();
    let got = answers(&mut ws, &["3"]).await;
    assert_eq!(got["3"].deltas, 10);
    assert_eq!(
        got["3"].end.as_ref().unwrap()["usage"]["completion_tokens"],
        10
    );

    // A message beyond any body the limit allows closes the connection: 1009.
    ws.send(Message::text("x".repeat(64 * 1024))).await.unwrap();
    let closed = tokio::time::timeout(MESSAGE_WAIT, ws.next()).await.unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    drop(ws);
    let off = gauges_settle(&gw, Duration::from_secs(5)).await;
    assert!(off.is_empty(), "gauges not back to idle: {off:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_back_its_upstream_instead_of_growing_memory() {
    // The mock's longest answer, all at once: some 20 MB of SSE for 100,000 deltas.
    const TOKENS: usize = mock_providers::limits::MAX_TOKENS;
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |config| {
        config.websocket.outbound_queue = 4;
    })
    .await;
    let all_at_once = [("x-mock-tokens", "100000")];

    // How long the whole answer takes a client that reads as fast as it can.
    let mut fast = upgrade(&gw, small_window(gw.addr()).await, &all_at_once).await;
    let began = Instant::now();
    fast.send(chat("fast", &body("fast"))).await.unwrap();
    let got = answers(&mut fast, &["fast"]).await;
    let read_fast = began.elapsed();
    assert_eq!(got["fast"].deltas, TOKENS);
    drop(fast);

    // A client that reads nothing for longer than that: had the gateway read its upstream
    // regardless, the upstream answer would be in the gateway's memory by now.
    let mut slow = upgrade(&gw, small_window(gw.addr()).await, &all_at_once).await;
    let sent = body("slow");
    slow.send(chat("slow", &sent)).await.unwrap();
    tokio::time::sleep(read_fast.mul_f64(1.5).max(Duration::from_secs(1))).await;
    assert_upstream_held_back(&upstream);
    assert_eq!(
        metric(&gw, "gateway_upstream_in_flight{provider=\"up\"}").await,
        1.0
    );
    assert_eq!(metric(&gw, "gateway_open_streams").await, 1.0);

    // Once it reads, everything arrives, in order and complete.
    let got = answers(&mut slow, &["slow"]).await;
    assert_eq!(got["slow"].deltas, TOKENS);
    assert_eq!(got["slow"].text, mock_text(&sent, TOKENS));
    assert_eq!(got["slow"].end.as_ref().unwrap()["type"], "done");
    drop(slow);
    let off = gauges_settle(&gw, Duration::from_secs(5)).await;
    assert!(off.is_empty(), "gauges not back to idle: {off:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_and_a_silent_client_is_closed() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |config| {
        config.websocket.ping_interval_ms = 100;
        config.websocket.pong_timeout_ms = 300;
    })
    .await;

    // A client that reads all along: its ping gets its pong, the gateway's pings come (reading
    // answers them), and after many ping intervals it is still served.
    let mut alive = connect(&gw, &[]).await;
    let reader = tokio::spawn(async move {
        alive
            .send(Message::Ping(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        let (mut pong, mut pinged) = (false, false);
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(50), alive.next()).await {
                Ok(Some(Ok(Message::Pong(payload)))) => pong |= &payload[..] == b"hi",
                Ok(Some(Ok(Message::Ping(_)))) => pinged = true,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => {}
            }
        }
        alive
            .send(chat("after", &body("still here")))
            .await
            .unwrap();
        let got = answers(&mut alive, &["after"]).await;
        (pong, pinged, got, alive)
    });

    // A client that reads nothing answers no ping: it is closed, the reader is not.
    let silent = connect(&gw, &[]).await;
    metric_reaches(&gw, "gateway_active_websockets", 2.0).await;
    metric_reaches(&gw, "gateway_active_websockets", 1.0).await;
    let (pong, pinged, got, alive) = reader.await.unwrap();
    assert!(pong && pinged, "pong {pong}, pinged {pinged}");
    assert_eq!(got["after"].end.as_ref().unwrap()["type"], "done");
    assert_eq!(metric(&gw, "gateway_active_websockets").await, 1.0);
    drop((alive, silent));
    let off = gauges_settle(&gw, Duration::from_secs(5)).await;
    assert!(off.is_empty(), "gauges not back to idle: {off:?}");
}
