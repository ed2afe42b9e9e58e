//! The Anthropic front door, `POST /v1/messages`: the same pipeline as chat completions (cache,
//! limiter, queue, routing, fallback), Anthropic upstreams passed through, OpenAI upstreams
//! translated both ways, and Anthropic error shapes.

use std::time::Duration;

use mock_providers::wiremock::Reply;
use mock_providers::{MockConfig, MockServer as NativeMock, Profile};
use reference_impl::GatewayHandle;
use reference_impl::limiter::{LimiterConfig, TierLimit, TierLimits};
use reference_impl::queue::QueueConfig;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{self, anthropic, client, header, openai, sse_data, start};

fn messages(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": stream,
    })
}

async fn send(gateway: &GatewayHandle, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", gateway.url()))
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

/// The `type` of each event's data, in order.
fn event_types(body: &str) -> Vec<String> {
    sse_data(body)
        .iter()
        .map(|data| {
            let event: Value = serde_json::from_str(data).expect("event data is JSON");
            event["type"].as_str().expect("typed event").to_owned()
        })
        .collect()
}

/// The joined `text_delta` text of an Anthropic stream.
fn stream_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["delta"]["type"] == "text_delta")
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

const EVENT_SEQUENCE: [&str; 7] = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
];

/// Event types with consecutive `content_block_delta`s folded into one.
fn folded(types: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = types.iter().map(String::as_str).collect();
    out.dedup_by(|a, b| a == b && *a == "content_block_delta");
    out
}

#[tokio::test]
async fn both_upstream_kinds_answer_in_anthropic_shape_streamed_and_not() {
    let mock = NativeMock::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    for (kind, provider) in [
        ("openai", openai("up", mock.url())),
        ("anthropic", anthropic("up", mock.url())),
    ] {
        let gw = start(vec![provider], |_| {}).await;
        let whole = client()
            .post(format!("{}/v1/messages", gw.url()))
            .header("x-mock-tokens", "5")
            .json(&messages("m", false))
            .send()
            .await
            .unwrap();
        assert_eq!(whole.status(), 200, "{kind}");
        assert_eq!(header(&whole, "x-gateway-provider"), "up");
        assert!(
            header(&whole, "x-gateway-overhead-us")
                .parse::<u64>()
                .is_ok(),
            "{kind}"
        );
        let message: Value = whole.json().await.unwrap();
        assert_eq!(message["type"], "message", "{kind}: {message}");
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["content"][0]["type"], "text");
        assert!(
            !message["content"][0]["text"].as_str().unwrap().is_empty(),
            "{kind}"
        );
        assert_eq!(message["stop_reason"], "end_turn", "{kind}");
        assert_eq!(message["usage"]["output_tokens"], 5, "{kind}");
        assert!(
            message["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{kind}"
        );

        let streamed = client()
            .post(format!("{}/v1/messages", gw.url()))
            .header("x-mock-tokens", "5")
            .json(&messages("m", true))
            .send()
            .await
            .unwrap();
        assert_eq!(streamed.status(), 200, "{kind}");
        assert!(header(&streamed, "content-type").starts_with("text/event-stream"));
        let body = streamed.text().await.unwrap();
        assert_eq!(
            folded(&event_types(&body)),
            EVENT_SEQUENCE,
            "{kind}: {body}"
        );
        // Five tokens, each a text delta (the mock's words differ from request to request).
        let deltas = event_types(&body)
            .iter()
            .filter(|t| *t == "content_block_delta")
            .count();
        assert_eq!(deltas, 5, "{kind}");
        assert!(!stream_text(&body).is_empty(), "{kind}");
        let end: Value = sse_data(&body)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        assert_eq!(end["usage"]["output_tokens"], 5, "{kind}");
        assert_eq!(end["delta"]["stop_reason"], "end_turn", "{kind}");
        gw.shutdown().await;
    }
}

/// An OpenAI upstream's chunks, and exactly the Anthropic events a client gets for them.
#[tokio::test]
async fn openai_stream_becomes_this_exact_anthropic_event_sequence() {
    let chunk = |rest: &str| {
        format!(
            r#"data: {{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x",{rest}}}"#
        )
    };
    let upstream_body = [
        chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"length"}]"#),
        chunk(
            r#""choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}"#,
        ),
        "data: [DONE]".to_owned(),
    ]
    .join("\n\n")
        + "\n\n";
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(upstream_body, "text/event-stream"))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |_| {}).await;

    let response = send(&gw, &messages("m", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "event: message_start\n\
         data: {\"type\":\"message_start\",\"message\":{\"id\":\"c1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n\
         event: content_block_start\n\
         data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
         event: ping\n\
         data: {\"type\": \"ping\"}\n\n\
         event: content_block_delta\n\
         data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
         event: content_block_delta\n\
         data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n\
         event: content_block_stop\n\
         data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\n\
         data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":7,\"output_tokens\":2}}\n\n\
         event: message_stop\n\
         data: {\"type\":\"message_stop\"}\n\n"
    );

    // What the OpenAI upstream was asked: the Messages request translated, usage requested.
    let sent: Value = upstream.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(
        sent,
        json!({
            "model": "m",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
            "max_tokens": 64,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

/// An Anthropic upstream gets the client's bytes and its answer comes back byte for byte.
#[tokio::test]
async fn anthropic_upstream_is_passed_through_both_ways() {
    let upstream = MockServer::start().await;
    Reply::anthropic().tokens(6).mock().mount(&upstream).await;
    let gw = start(vec![anthropic("claude", &upstream.uri())], |_| {}).await;
    let direct = |body: &Value| {
        client()
            .post(format!("{}/v1/messages", upstream.uri()))
            .json(body)
            .send()
    };
    for stream in [false, true] {
        let body = messages("claude-x", stream);
        let expected = direct(&body).await.unwrap().text().await.unwrap();
        let response = send(&gw, &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-gateway-provider"), "claude");
        assert_eq!(response.text().await.unwrap(), expected, "stream: {stream}");
    }
    let sent = upstream.received_requests().await.unwrap();
    let through_gateway = &sent[1];
    assert_eq!(
        through_gateway.headers["anthropic-version"], "2023-06-01",
        "the gateway speaks Anthropic's versioned API"
    );
    assert_eq!(
        through_gateway.body,
        serde_json::to_vec(&messages("claude-x", false)).unwrap()
    );
}

#[tokio::test]
async fn a_second_identical_request_is_a_cache_hit_and_the_chat_door_does_not_share_it() {
    let upstream = MockServer::start().await;
    Reply::openai()
        .tokens(4)
        .mock()
        .expect(2)
        .mount(&upstream)
        .await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |c| {
        c.cache.enabled = true;
    })
    .await;
    // Valid at both front doors: the same bytes must not answer each other.
    let body = json!({
        "model": "m",
        "max_tokens": 16,
        "temperature": 0,
        "messages": [{"role": "user", "content": "hi"}],
    });

    let first = send(&gw, &body).await;
    assert_eq!(header(&first, "x-cache"), "miss");
    assert_eq!(header(&first, "x-gateway-provider"), "gpt");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["type"], "message");

    let second = send(&gw, &body).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-cache"), "hit");
    assert_eq!(header(&second, "x-gateway-provider"), "cache");
    assert!(!header(&second, "x-gateway-overhead-us").is_empty());
    assert_eq!(second.json::<Value>().await.unwrap(), first);

    // The same request streamed: replayed from the cache as Anthropic events.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let replay = send(&gw, &streamed).await;
    assert_eq!(header(&replay, "x-cache"), "hit");
    let events = replay.text().await.unwrap();
    assert_eq!(folded(&event_types(&events)), EVENT_SEQUENCE, "{events}");
    assert_eq!(stream_text(&events), first["content"][0]["text"]);

    // The chat completions door has its own namespace: a miss, answered in OpenAI's shape.
    let chat = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&chat, "x-cache"), "miss");
    let chat: Value = chat.json().await.unwrap();
    assert_eq!(chat["object"], "chat.completion");
    upstream.verify().await;
}

#[tokio::test]
async fn a_streamed_answer_is_cached_in_anthropic_shape() {
    let upstream = MockServer::start().await;
    Reply::anthropic()
        .tokens(5)
        .mock()
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = start(vec![anthropic("claude", &upstream.uri())], |c| {
        c.cache.enabled = true;
        c.cache.force = true;
    })
    .await;
    let first = send(&gw, &messages("m", true)).await;
    assert_eq!(header(&first, "x-cache"), "miss");
    let first = first.text().await.unwrap();
    // The stream's end fills the cache after the last byte went out.
    let mut whole = None;
    for _ in 0..100 {
        let response = send(&gw, &messages("m", false)).await;
        if header(&response, "x-cache") == "hit" {
            whole = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let whole = whole.expect("the streamed answer was stored");
    assert_eq!(whole["type"], "message");
    assert_eq!(whole["content"][0]["text"], stream_text(&first).as_str());
    assert_eq!(whole["usage"]["output_tokens"], 5);
    upstream.verify().await;
}

#[tokio::test]
async fn a_failing_anthropic_upstream_falls_back_to_an_openai_one() {
    let claude = MockServer::start().await;
    Reply::anthropic().status(529).mock().mount(&claude).await;
    let gpt = MockServer::start().await;
    Reply::openai().tokens(3).mock().mount(&gpt).await;
    let gw = start(
        vec![
            anthropic("claude", &claude.uri()),
            openai("gpt", &gpt.uri()),
        ],
        |_| {},
    )
    .await;
    for stream in [false, true] {
        let response = send(&gw, &messages("m", stream)).await;
        assert_eq!(response.status(), 200, "stream: {stream}");
        assert_eq!(header(&response, "x-gateway-provider"), "gpt");
        let body = response.text().await.unwrap();
        if stream {
            assert_eq!(folded(&event_types(&body)), EVENT_SEQUENCE, "{body}");
        } else {
            let message: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(message["type"], "message");
            assert_eq!(message["usage"]["output_tokens"], 3);
        }
    }
    assert!(!claude.received_requests().await.unwrap().is_empty());
}

/// The Anthropic error body: exactly `{"type":"error","error":{"type","message"}}`.
async fn anthropic_error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["type"], "error", "{body}");
    let error = body["error"].as_object().expect("error object");
    assert_eq!(error.len(), 2, "{body}");
    (
        status,
        error["type"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn bad_input_gets_anthropic_errors_with_the_right_status() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().mount(&upstream).await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |c| {
        c.models[0].name = "known".into();
        c.server.body_limit_bytes = 4_096;
        c.limiter = LimiterConfig {
            tiers: TierLimits {
                free: TierLimit {
                    requests: 2,
                    period_secs: 60,
                    tokens_per_minute: None,
                },
                ..TierLimits::default()
            },
            ..LimiterConfig::default()
        };
    })
    .await;
    let url = format!("{}/v1/messages", gw.url());
    let raw = |body: String, content_type: &'static str| {
        client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: [(String, &str, u16, &str, &str); 7] = [
        (
            "{".into(),
            "application/json",
            400,
            "invalid_request_error",
            "Invalid JSON",
        ),
        (
            r#"{"model":"known","messages":[{"role":"user","content":"x"}]}"#.into(),
            "application/json",
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            r#"{"model":"known","max_tokens":5,"messages":[{"role":"user","content":7}]}"#.into(),
            "application/json",
            400,
            "invalid_request_error",
            "messages[0].content",
        ),
        (
            r#"{"model":"known","max_tokens":5,"messages":[]}"#.into(),
            "application/json",
            400,
            "invalid_request_error",
            "messages: ",
        ),
        (
            messages("known", false).to_string(),
            "text/plain",
            415,
            "invalid_request_error",
            "Content-Type",
        ),
        (
            format!(
                r#"{{"model":"known","max_tokens":5,"messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(5_000)
            ),
            "application/json",
            413,
            "request_too_large",
            "4096 bytes",
        ),
        (
            messages("unknown", false).to_string(),
            "application/json",
            404,
            "not_found_error",
            "unknown",
        ),
    ];
    for (body, content_type, status, kind, says) in cases {
        let (got_status, got_kind, message) =
            anthropic_error(raw(body.clone(), content_type).await.unwrap()).await;
        assert_eq!(
            (got_status, got_kind.as_str()),
            (status, kind),
            "{body:.80}"
        );
        assert!(message.contains(says), "{message} should name {says}");
    }

    // None of those took from the quota of 2; the third valid request is refused.
    for _ in 0..2 {
        assert_eq!(send(&gw, &messages("known", false)).await.status(), 200);
    }
    let refused = send(&gw, &messages("known", false)).await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let (status, kind, _) = anthropic_error(refused).await;
    assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
}

#[tokio::test]
async fn a_full_queue_is_529_overloaded_and_failing_upstreams_are_api_errors() {
    let upstream = MockServer::start().await;
    Reply::openai()
        .delay(Duration::from_millis(600))
        .mock()
        .mount(&upstream)
        .await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |c| {
        c.queue = Some(QueueConfig {
            max_concurrent: 1,
            max_queued: 0,
            ..QueueConfig::default()
        });
    })
    .await;
    let slow = tokio::spawn(send_owned(gw.url().to_owned(), messages("m", false)));
    common::wait_until_the_slot_is_taken(&gw).await;
    let refused = send(&gw, &messages("m", false)).await;
    assert!(!header(&refused, "retry-after").is_empty());
    let (status, kind, _) = anthropic_error(refused).await;
    assert_eq!((status, kind.as_str()), (529, "overloaded_error"));
    assert_eq!(slow.await.unwrap(), 200);

    let broken = MockServer::start().await;
    Reply::openai().status(500).mock().mount(&broken).await;
    let gw = start(vec![openai("gpt", &broken.uri())], |_| {}).await;
    let (status, kind, message) = anthropic_error(send(&gw, &messages("m", false)).await).await;
    assert_eq!((status, kind.as_str()), (502, "api_error"));
    assert!(message.contains("500"), "{message}");
}

async fn send_owned(url: String, body: Value) -> u16 {
    client()
        .post(format!("{url}/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_upstream_failing_mid_stream_ends_with_an_anthropic_error_event() {
    let mock = NativeMock::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    for (kind, provider, fault) in [
        ("openai", openai("up", mock.url()), "disconnect-after:3"),
        (
            "anthropic",
            anthropic("up", mock.url()),
            "disconnect-after:3",
        ),
        ("anthropic", anthropic("up", mock.url()), "error-after:3"),
    ] {
        let gw = start(vec![provider], |_| {}).await;
        let response = client()
            .post(format!("{}/v1/messages", gw.url()))
            .header("x-mock-fault", fault)
            .header("x-mock-tokens", "10")
            // Paced, so the failure comes after the first events rather than with them (a
            // stream that fails in its first read falls back instead).
            .header("x-mock-itl-ms", "5")
            .json(&messages("m", true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{kind} {fault}");
        let body = response.text().await.unwrap();
        let last = body
            .trim_end()
            .rsplit("\n\n")
            .next()
            .expect("at least one event");
        assert!(
            last.starts_with("event: error\ndata: "),
            "{kind} {fault}: {body}"
        );
        let error: Value =
            serde_json::from_str(last.trim_start_matches("event: error\ndata: ")).unwrap();
        assert_eq!(error["type"], "error", "{kind} {fault}");
        assert!(error["error"]["type"].is_string(), "{kind} {fault}");
        assert!(!event_types(&body).contains(&"message_stop".to_owned()));
        gw.shutdown().await;
    }
}
