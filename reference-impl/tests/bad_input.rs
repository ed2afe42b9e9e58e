//! Malformed requests get a 4xx OpenAI error body and never reach an upstream.

mod common;

use common::{client, header, openai, start};
use mock_providers::wiremock::Reply;
use reference_impl::config::Candidate;
use reference_impl::{GatewayHandle, ModelRoute};
use serde_json::Value;
use wiremock::MockServer;

async fn gateway(upstream: &MockServer) -> GatewayHandle {
    start(vec![openai("a", &upstream.uri())], |c| {
        c.server.body_limit_bytes = 4096;
        c.models = vec![ModelRoute {
            name: "known".into(),
            candidates: vec![Candidate {
                provider: "a".into(),
                model: None,
            }],
        }];
    })
    .await
}

async fn send(
    gw: &GatewayHandle,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("error body is JSON");
    (status, body, headers)
}

/// Every OpenAI error body has exactly these four keys.
fn assert_openai_error(body: &Value) {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {body}"));
    let mut keys: Vec<_> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
    assert!(!error["message"].as_str().unwrap().is_empty());
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn each_bad_input_gets_its_status_and_an_openai_error() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = gateway(&upstream).await;
    let ok_message = r#"[{"role":"user","content":"hi"}]"#;

    // (case, content type, body, expected status, expected `param`)
    type Case = (
        &'static str,
        Option<&'static str>,
        String,
        u16,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("invalid JSON", JSON, "{\"model\":".into(), 400, None),
        ("not an object", JSON, "[1,2]".into(), 400, None),
        (
            "missing model",
            JSON,
            format!(r#"{{"messages":{ok_message}}}"#),
            400,
            None,
        ),
        (
            "model wrong type",
            JSON,
            format!(r#"{{"model":7,"messages":{ok_message}}}"#),
            400,
            Some("model"),
        ),
        (
            "missing messages",
            JSON,
            r#"{"model":"known"}"#.into(),
            400,
            None,
        ),
        (
            "messages wrong type",
            JSON,
            r#"{"model":"known","messages":"hi"}"#.into(),
            400,
            Some("messages"),
        ),
        (
            "empty messages",
            JSON,
            r#"{"model":"known","messages":[]}"#.into(),
            400,
            Some("messages"),
        ),
        (
            "bad role",
            JSON,
            r#"{"model":"known","messages":[{"role":"boss","content":"x"}]}"#.into(),
            400,
            Some("messages[0].role"),
        ),
        (
            "stream wrong type",
            JSON,
            format!(r#"{{"model":"known","messages":{ok_message},"stream":"yes"}}"#),
            400,
            Some("stream"),
        ),
        (
            "unknown model",
            JSON,
            format!(r#"{{"model":"nope","messages":{ok_message}}}"#),
            404,
            Some("model"),
        ),
        (
            "wrong content type",
            Some("text/plain"),
            format!(r#"{{"model":"known","messages":{ok_message}}}"#),
            415,
            None,
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            "model=known".into(),
            415,
            None,
        ),
        (
            "no content type",
            None,
            format!(r#"{{"model":"known","messages":{ok_message}}}"#),
            415,
            None,
        ),
        (
            "body over the limit",
            JSON,
            format!(
                r#"{{"model":"known","messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(5000)
            ),
            413,
            None,
        ),
    ];
    for (name, content_type, body, status, param) in cases {
        let (got, error, headers) = send(&gw, content_type, body).await;
        assert_eq!(got, status, "{name}: {error}");
        assert_openai_error(&error);
        assert_eq!(error["error"]["param"].as_str(), param, "{name}: {error}");
        assert_eq!(headers["x-gateway-provider"], "none", "{name}");
        assert!(headers.contains_key("x-gateway-overhead-us"), "{name}");
    }
    upstream.verify().await;
}

#[tokio::test]
async fn body_over_the_limit_without_content_length_is_rejected_too() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = gateway(&upstream).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, error, _) = send(&gw, JSON, body).await;
    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "payload_too_large");
    upstream.verify().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_openai_errors() {
    let upstream = MockServer::start().await;
    let gw = gateway(&upstream).await;
    let response = client()
        .get(format!("{}/v1/nothing", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_openai_error(&response.json().await.unwrap());
    let response = client()
        .get(format!("{}/v1/chat/completions", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_openai_error(&response.json().await.unwrap());
    let response = common::post(&gw, &common::chat("nope", false)).await;
    assert_eq!(header(&response, "content-type"), "application/json");
}
