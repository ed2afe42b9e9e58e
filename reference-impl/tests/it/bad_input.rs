//! Malformed requests get a 4xx OpenAI error body and never reach an upstream.

use mock_providers::wiremock::Reply;
use reference_impl::config::Candidate;
use reference_impl::{GatewayHandle, ModelRoute};
use serde_json::Value;
use wiremock::MockServer;

use crate::common::{self, client, header, openai, start};

async fn gateway(upstream: &MockServer) -> GatewayHandle {
    start(vec![openai("a", &upstream.uri())], |c| {
        c.server.body_limit_bytes = LIMIT;
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

/// Body limit of the test gateway: room for the deep-nesting case, far below the huge body.
const LIMIT: usize = 64 * 1024;

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
                "x".repeat(LIMIT)
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
        (0..=(LIMIT / 1024)).map(|_| Ok(vec![b' '; 1024])).collect();
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

/// `depth` nested arrays: `[[[...]]]`.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = gateway(&upstream).await;
    let deep = nested(10_000);
    for (field, body) in [
        (
            "unknown field",
            format!(
                r#"{{"model":"known","messages":[{{"role":"user","content":"hi"}}],"metadata":{deep}}}"#
            ),
        ),
        (
            "message content",
            format!(r#"{{"model":"known","messages":[{{"role":"user","content":{deep}}}]}}"#),
        ),
    ] {
        let (status, error, _) = send(&gw, JSON, body).await;
        assert_eq!(status, 400, "{field}: {error}");
        assert_openai_error(&error);
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("nested deeper"), "{field}: {message}");
    }
    // The gateway is still serving.
    let health = client().get(format!("{}/health", gw.url())).send().await;
    assert_eq!(health.unwrap().status(), 200);
    upstream.verify().await;
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = gateway(&upstream).await;
    let mut in_string = br#"{"model":"known","messages":[{"role":"user","content":"hi "#.to_vec();
    in_string.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    in_string.extend_from_slice(br#""}]}"#);
    let mut in_model = br#"{"model":"kn"#.to_vec();
    in_model.push(0x80);
    in_model.extend_from_slice(br#"own","messages":[{"role":"user","content":"hi"}]}"#);
    let leading = [&[0xef, 0xbb, 0xbf, 0xff][..], br#"{"model":"known"}"#].concat();
    for (case, body) in [
        ("content", in_string),
        ("model", in_model),
        ("before the object", leading),
    ] {
        let (status, error, _) = send(&gw, JSON, body).await;
        assert_eq!(status, 400, "{case}: {error}");
        assert_openai_error(&error);
        assert_eq!(error["error"]["type"], "invalid_request_error", "{case}");
    }
    upstream.verify().await;
}

#[tokio::test]
async fn huge_body_is_refused_before_it_is_read() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = gateway(&upstream).await;
    // 16 MiB, 256 times the limit: refused from `content-length` without reading it.
    let content = "x".repeat(16 << 20);
    let body =
        format!(r#"{{"model":"known","messages":[{{"role":"user","content":"{content}"}}]}}"#);
    let (status, error, _) = send(&gw, JSON, body).await;
    assert_eq!(status, 413, "{error}");
    assert_openai_error(&error);
    assert_eq!(error["error"]["code"], "payload_too_large");
    upstream.verify().await;
}

/// Control characters in a model name must not reach a response header (or the upstream):
/// the request is refused with a 400 naming `model`, even where a `*` route serves any model.
#[tokio::test]
async fn model_names_with_control_characters_are_refused() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    // JSON escapes, so the parsed name holds the control characters themselves.
    for model in [
        r"gpt\r\nx-injected: 1",
        r"gpt\nx-injected: 1",
        r"gpt\r\n\r\n<html>",
        r"gpt\u0000",
        r"gpt\u001b[31m",
        r"gpt\u007f",
        r"gpt\u0085x-injected: 1",
    ] {
        let body =
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        let (status, error, headers) = send(&gw, JSON, body).await;
        assert_eq!(status, 400, "{model}: {error}");
        assert_openai_error(&error);
        assert_eq!(error["error"]["param"], "model", "{model}");
        assert!(!headers.contains_key("x-injected"), "{model}: {headers:?}");
        assert_eq!(headers["x-gateway-provider"], "none", "{model}");
        for value in headers.values() {
            assert!(
                !value.as_bytes().iter().any(u8::is_ascii_control),
                "{model}: {value:?}"
            );
        }
    }
    upstream.verify().await;
}
