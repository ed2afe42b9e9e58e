//! `https://` upstreams: the gateway's pooled client speaks TLS (HTTP/1.1, or HTTP/2 by ALPN)
//! to a mock serving a self-signed certificate, trusted through the provider's `pool.ca_file`;
//! an upstream it cannot trust is a 502 that says why, and a CA file it cannot use stops the
//! gateway at start, naming the field.

use http::StatusCode;
use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::{Gateway, GatewayConfig};
use serde_json::Value;

use crate::common::{chat, openai, post, sse_data, start, stream_text};

async fn tls_mock() -> MockServer {
    let mut config = MockConfig::new(Profile::fast());
    config.tls = true;
    MockServer::start(config).await.expect("TLS mock starts")
}

#[tokio::test]
async fn https_upstreams_answer_through_a_trusted_ca_over_http1_and_http2() {
    let mock = tls_mock().await;
    assert!(mock.url().starts_with("https://"), "{}", mock.url());
    let ca = mock
        .certificate_path()
        .expect("the mock's certificate")
        .to_owned();
    for http2 in [false, true] {
        let mut provider = openai("mock", mock.url());
        provider.pool.ca_file = Some(ca.clone());
        provider.pool.http2 = http2;
        let gateway = start(vec![provider], |_| {}).await;

        let answer = post(&gateway, &chat("gpt-4o", false)).await;
        assert_eq!(answer.status(), StatusCode::OK, "http2 = {http2}");
        let body: Value = answer.json().await.expect("json");
        assert!(
            body["choices"][0]["message"]["content"].is_string(),
            "{body}"
        );

        let streamed = post(&gateway, &chat("gpt-4o", true)).await;
        assert_eq!(streamed.status(), StatusCode::OK, "http2 = {http2}");
        let text = streamed.text().await.expect("stream");
        assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
        assert!(!stream_text(&text).is_empty(), "{text}");
        gateway.shutdown().await;
    }
    let stats = mock.stats();
    assert_eq!(stats.requests, 4, "{stats:?}");
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_a_502_that_says_so() {
    let mock = tls_mock().await;
    let gateway = start(vec![openai("mock", mock.url())], |config| {
        config.routing.max_attempts = 1;
    })
    .await;
    let answer = post(&gateway, &chat("gpt-4o", false)).await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let body: Value = answer.json().await.expect("OpenAI error shape");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("mock") && message.contains("certificate"),
        "{message}"
    );
    assert_eq!(mock.stats().requests, 0, "nothing reached the mock");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_ca_file_that_is_not_a_certificate_stops_the_gateway_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("gatebench-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").expect("written");
    for ca_file in [not_pem, dir.join("missing.pem")] {
        let mut provider = openai("secure", "https://127.0.0.1:9");
        provider.pool.ca_file = Some(ca_file.clone());
        let mut config = GatewayConfig::with_providers(vec![provider]);
        config.server.listen = "127.0.0.1:0".parse().expect("address");
        let error = Gateway::start(config)
            .await
            .err()
            .expect("refused at start")
            .to_string();
        assert!(
            error.contains("providers.secure.pool.ca_file")
                && error.contains(&ca_file.display().to_string()),
            "{error}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
