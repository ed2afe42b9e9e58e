//! The bytes on the wire, exactly, for both providers; and that the native server and the wiremock
//! builders agree byte for byte.

use mock_providers::wiremock::Reply;
use mock_providers::{ChatRequest, Completion, Profile, Provider, StreamEnd};
use serde_json::Value;

use crate::common::{CREATED, anthropic_request, openai_request, post, read_events, start};

fn three_tokens() -> Profile {
    Profile {
        output_tokens: mock_providers::Distribution::constant(3.0),
        ..Profile::fast()
    }
}

fn completion(provider: Provider, body: &Value) -> Completion {
    let req = ChatRequest::parse(provider, body.to_string().as_bytes()).expect("valid request");
    Completion::new(&req, 3, CREATED)
}

#[tokio::test]
async fn openai_non_streaming_body_is_exact() {
    let mock = start(three_tokens()).await;
    let body = openai_request(false, false);
    let c = completion(Provider::OpenAi, &body);
    let response = post(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let expected = format!(
        r#"{{"id":"{}","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default","system_fingerprint":"fp_mock"}}"#,
        c.id,
        c.text()
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn openai_stream_is_exact_and_ends_with_done() {
    let mock = start(three_tokens()).await;
    let body = openai_request(true, true);
    let c = completion(Provider::OpenAi, &body);
    let response = post(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let head = format!(
        r#"data: {{"id":"{}","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":"#,
        c.id
    );
    let mut expected = format!(
        "{head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
    );
    for t in &c.tokens {
        expected += &format!(
            "{head}[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        );
    }
    expected += &format!(
        "{head}[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"
    );
    expected += &format!(
        "{head}[],\"usage\":{{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14,\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n"
    );
    expected += "data: [DONE]\n\n";
    assert_eq!(text, expected);
}

#[tokio::test]
async fn openai_stream_without_usage_parses_and_reassembles_the_text() {
    let mock = start(three_tokens()).await;
    let body = openai_request(true, false);
    let response = post(&mock, "/v1/chat/completions", &body).await;
    let events = read_events(response).await.expect("stream completes");
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage field without include_usage"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, completion(Provider::OpenAi, &body).text());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn anthropic_non_streaming_body_is_exact() {
    let mock = start(three_tokens()).await;
    let body = anthropic_request(false);
    let c = completion(Provider::Anthropic, &body);
    let text = post(&mock, "/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    let expected = format!(
        r#"{{"id":"{}","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[{{"type":"text","text":"{}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":11,"output_tokens":3}}}}"#,
        c.id,
        c.text()
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn anthropic_stream_is_exact_with_every_event_type() {
    let mock = start(three_tokens()).await;
    let body = anthropic_request(true);
    let c = completion(Provider::Anthropic, &body);
    let text = post(&mock, "/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    let mut expected = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-latest\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":11,\"output_tokens\":1}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
         event: ping\ndata: {{\"type\": \"ping\"}}\n\n",
        c.id
    );
    for t in &c.tokens {
        expected += &format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n"
        );
    }
    expected += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
                 event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n\
                 event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    assert_eq!(text, expected);
}

#[tokio::test]
async fn anthropic_stream_parses_and_ends_with_message_stop() {
    let mock = start(Profile::fast()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.url()))
        .json(&anthropic_request(true))
        .send()
        .await
        .unwrap();
    let events = read_events(response).await.expect("stream completes");
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count(),
        16
    );
    for e in &events {
        let v: Value = serde_json::from_str(&e.data).expect("every data line is JSON");
        assert_eq!(v["type"], e.event.as_str());
    }
}

#[tokio::test]
async fn max_tokens_caps_output_and_sets_the_length_finish() {
    let mock = start(Profile::fast()).await;
    let mut body = openai_request(false, false);
    body["max_tokens"] = 4.into();
    let v: Value = post(&mock, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let mut body = anthropic_request(false);
    body["max_tokens"] = 2.into();
    let v: Value = post(&mock, "/v1/messages", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["usage"]["output_tokens"].as_u64(),
            v["stop_reason"].as_str()
        ),
        (Some(2), Some("max_tokens"))
    );
}

#[tokio::test]
async fn any_model_name_is_echoed_back_escaped() {
    let mock = start(Profile::fast()).await;
    let mut body = openai_request(false, false);
    body["model"] = "my-org/\"odd\" model\n".into();
    let v: Value = post(&mock, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "my-org/\"odd\" model\n");
}

/// The same requests, once to the native server and once to wiremock, give the same bytes.
#[tokio::test]
async fn wiremock_builders_and_native_server_send_identical_bodies() {
    let native = start(Profile::fast()).await;
    let wm = wiremock::MockServer::start().await;
    Reply::openai()
        .tokens(16)
        .created(CREATED)
        .mock()
        .mount(&wm)
        .await;
    Reply::anthropic()
        .tokens(16)
        .created(CREATED)
        .mock()
        .mount(&wm)
        .await;
    let client = reqwest::Client::new();
    let cases = [
        ("/v1/chat/completions", openai_request(false, false)),
        ("/v1/chat/completions", openai_request(true, false)),
        ("/v1/chat/completions", openai_request(true, true)),
        ("/v1/messages", anthropic_request(false)),
        ("/v1/messages", anthropic_request(true)),
        (
            "/v1/chat/completions",
            serde_json::json!({"model": "gpt-4o"}),
        ),
    ];
    for (path, body) in cases {
        let get = |base: String| {
            let req = client.post(format!("{base}{path}")).json(&body);
            async move {
                let r = req.send().await.unwrap();
                (
                    r.status(),
                    r.headers()["content-type"].clone(),
                    r.bytes().await.unwrap(),
                )
            }
        };
        let a = get(native.url().to_owned()).await;
        let b = get(wm.uri()).await;
        assert_eq!(a, b, "{path} {body}");
    }
}

#[test]
fn error_status_bodies_have_each_providers_shape() {
    for status in [429, 500, 503, 529] {
        let v: Value = serde_json::from_slice(
            &mock_providers::ApiError::for_status(Provider::OpenAi, status).body(),
        )
        .unwrap();
        assert!(
            v["error"]["message"].is_string() && v["error"]["type"].is_string(),
            "{v}"
        );
        assert!(
            v["error"].get("param").is_some() && v["error"].get("code").is_some(),
            "{v}"
        );
        let v: Value = serde_json::from_slice(
            &mock_providers::ApiError::for_status(Provider::Anthropic, status).body(),
        )
        .unwrap();
        assert_eq!(v["type"], "error");
        assert!(v["error"]["type"].is_string(), "{v}");
    }
    let s = Provider::OpenAi.stream_script(
        &Completion::new(
            &ChatRequest::openai(br#"{"model":"m","messages":[{}]}"#).unwrap(),
            2,
            0,
        ),
        false,
        StreamEnd::Complete,
    );
    assert!(
        String::from_utf8(s.into_bytes().to_vec())
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}
