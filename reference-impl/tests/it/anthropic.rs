//! OpenAI <-> Anthropic translation through the gateway, byte for byte.

use mock_providers::wiremock::Reply;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{anthropic, chat, header, openai, post, sse_data, start, stream_text};

/// `created` is the gateway's clock; pin it so bodies compare byte for byte.
fn pin_created(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(i + "\"created\":".len());
        out.push_str(head);
        out.push('0');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

const MESSAGE: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-test","content":[{"type":"text","text":"Hi \"you\"\n"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":3}}"#;

#[tokio::test]
async fn non_streaming_request_and_response_are_translated() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(has_header("anthropic-version", "2023-06-01"))
        .and(has_header("x-api-key", "sk-test"))
        .and(body_json(json!({
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
            "system": "be brief",
            "stop_sequences": ["END"],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_raw(MESSAGE, "application/json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let mut provider = anthropic("claude", &upstream.uri());
    provider.api_key = Some("sk-test".into());
    let gw = start(vec![provider], |c| {
        c.models[0].candidates[0].model = Some("claude-test".into());
    })
    .await;

    let mut body = chat("gpt-4o", false);
    body["max_tokens"] = json!(64);
    body["stop"] = json!("END");
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "claude");
    assert_eq!(
        pin_created(&response.text().await.unwrap()),
        r#"{"id":"msg_01","object":"chat.completion","created":0,"model":"claude-test","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"you\"\n"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#
    );
    upstream.verify().await;
}

const EVENTS: &str = concat!(
    "event: message_start\n",
    r#"data: {"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}"#,
    "\n\nevent: content_block_start\n",
    r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
    "\n\nevent: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}"#,
    "\n\nevent: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":0}"#,
    "\n\nevent: message_delta\n",
    r#"data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":2}}"#,
    "\n\nevent: message_stop\n",
    r#"data: {"type":"message_stop"}"#,
    "\n\n",
);

#[tokio::test]
async fn streaming_events_become_openai_chunks_with_usage() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(EVENTS, "text/event-stream"))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = start(vec![anthropic("claude", &upstream.uri())], |_| {}).await;
    let mut body = chat("claude-test", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post(&gw, &body).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let head = r#"data: {"id":"msg_02","object":"chat.completion.chunk","created":0,"model":"claude-test","choices":"#;
    let expected = [
        format!(r#"{head}[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#),
        format!(r#"{head}[{{"index":0,"delta":{{"content":"Hello"}},"logprobs":null,"finish_reason":null}}]}}"#),
        format!(r#"{head}[{{"index":0,"delta":{{"content":" world"}},"logprobs":null,"finish_reason":null}}]}}"#),
        format!(r#"{head}[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"length"}}]}}"#),
        format!(r#"{head}[],"usage":{{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}}}"#),
        "data: [DONE]".to_owned(),
    ]
    .map(|e| e + "\n\n")
    .concat();
    assert_eq!(pin_created(&response.text().await.unwrap()), expected);
    upstream.verify().await;
}

#[tokio::test]
async fn anthropic_error_status_falls_back_and_error_body_is_translated() {
    let (claude, gpt) = (MockServer::start().await, MockServer::start().await);
    Reply::anthropic()
        .status(529)
        .mock()
        .expect(1)
        .mount(&claude)
        .await;
    Reply::openai().mock().expect(1).mount(&gpt).await;
    let gw = start(
        vec![
            anthropic("claude", &claude.uri()),
            openai("gpt", &gpt.uri()),
        ],
        |_| {},
    )
    .await;
    let response = post(&gw, &chat("m", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "gpt");
    claude.verify().await;

    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#,
            "application/json",
        ))
        .mount(&bad)
        .await;
    let gw = start(vec![anthropic("claude", &bad.uri())], |_| {}).await;
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "max_tokens: too large", "type": "invalid_request_error", "param": null, "code": null}})
    );
}

/// The mocks generate a completion of the same length and shape in either dialect (the words
/// depend on the body bytes, which differ), so the translated Anthropic answer must have the
/// OpenAI mock's token counts, chunk count and finish reason.
#[tokio::test]
async fn translated_mock_answers_match_the_openai_mock() {
    let (claude, gpt) = (MockServer::start().await, MockServer::start().await);
    Reply::anthropic().tokens(12).mock().mount(&claude).await;
    Reply::openai().tokens(12).mock().mount(&gpt).await;
    let via_claude = start(vec![anthropic("claude", &claude.uri())], |_| {}).await;
    let via_gpt = start(vec![openai("gpt", &gpt.uri())], |_| {}).await;

    for stream in [false, true] {
        let mut body = chat("model-x", stream);
        body["stream_options"] = json!({"include_usage": true});
        let a = post(&via_claude, &body).await.text().await.unwrap();
        let b = post(&via_gpt, &body).await.text().await.unwrap();
        if stream {
            let content_chunks = |s: &str| {
                sse_data(s)
                    .iter()
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter(|v| {
                        v["choices"][0]["delta"]["content"]
                            .as_str()
                            .is_some_and(|c| !c.is_empty())
                    })
                    .count()
            };
            assert_eq!(content_chunks(&a), 12);
            assert_eq!(content_chunks(&b), 12);
            assert!(!stream_text(&a).is_empty());
            assert_eq!(sse_data(&a).len(), sse_data(&b).len());
            let usage = |s: &str| -> Value {
                let data = sse_data(s);
                let last = &data[data.len() - 2];
                serde_json::from_str::<Value>(last).unwrap()["usage"]["completion_tokens"].clone()
            };
            assert_eq!(usage(&a), usage(&b));
            assert!(a.ends_with("data: [DONE]\n\n") && b.ends_with("data: [DONE]\n\n"));
        } else {
            let (a, b): (Value, Value) = (
                serde_json::from_str(&a).unwrap(),
                serde_json::from_str(&b).unwrap(),
            );
            assert!(
                !a["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                a["choices"][0]["finish_reason"],
                b["choices"][0]["finish_reason"]
            );
            assert_eq!(
                a["usage"]["completion_tokens"],
                b["usage"]["completion_tokens"]
            );
        }
    }
}

#[tokio::test]
async fn tool_messages_are_rejected_for_anthropic_but_served_by_an_openai_fallback() {
    let (claude, gpt) = (MockServer::start().await, MockServer::start().await);
    Reply::anthropic().mock().expect(0).mount(&claude).await;
    Reply::openai().mock().expect(1).mount(&gpt).await;
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]});
    let only_claude = start(vec![anthropic("claude", &claude.uri())], |_| {}).await;
    let response = post(&only_claude, &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "messages[1].role");

    let both = start(
        vec![
            anthropic("claude", &claude.uri()),
            openai("gpt", &gpt.uri()),
        ],
        |_| {},
    )
    .await;
    let response = post(&both, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "gpt");
    claude.verify().await;
    gpt.verify().await;
}
