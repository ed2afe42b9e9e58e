//! Liveness, readiness, models, metrics and the headers every response carries.

use mock_providers::wiremock::Reply;
use reference_impl::config::Candidate;
use reference_impl::{Gateway, GatewayConfig, GatewayError, ModelRoute};
use serde_json::Value;
use wiremock::MockServer;

use crate::common::{chat, client, header, openai, post, start};

#[tokio::test]
async fn health_ready_models_and_metrics() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |c| {
        c.models.push(ModelRoute {
            name: "gpt-4o".into(),
            candidates: vec![Candidate {
                provider: "a".into(),
                model: Some("gpt-4o-2024".into()),
            }],
        });
    })
    .await;
    let get = |path: &str| client().get(format!("{}{path}", gw.url())).send();
    assert_eq!(get("/health").await.unwrap().status(), 200);
    assert_eq!(get("/ready").await.unwrap().status(), 200);
    let models: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "gpt-4o");

    let response = post(&gw, &chat("gpt-4o", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "a");
    let overhead: u64 = header(&response, "x-gateway-overhead-us")
        .parse()
        .expect("overhead header is a number");
    assert!(overhead > 0);
    // The route renamed the model for the upstream.
    let sent: Value =
        serde_json::from_slice(&upstream.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-2024");

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for series in [
        "gateway_overhead_us_bucket{le=\"+Inf\"} 1",
        "gateway_overhead_us_count 1",
        "gateway_responses_total{class=\"2xx\"} 1",
        "gateway_pool_requests_total{provider=\"a\"} 1",
        "gateway_upstream_reliability{provider=\"a\"} 1",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
}

#[tokio::test]
async fn passthrough_body_reaches_the_upstream_unchanged() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(1).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    let raw = r#"{ "model":"m",  "messages":[{"role":"user","content":"hi"}], "seed": 7, "logit_bias": {"1": 2} }"#;
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .header("content-type", "application/json")
        .header("x-mock-tokens", "3")
        .header("x-not-forwarded", "1")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = &upstream.received_requests().await.unwrap()[0];
    assert_eq!(received.body, raw.as_bytes());
    assert_eq!(received.headers["x-mock-tokens"], "3");
    assert!(received.headers.get("x-not-forwarded").is_none());
    upstream.verify().await;
}

#[tokio::test]
async fn invalid_config_is_refused_naming_the_field() {
    let mut config = GatewayConfig::default();
    config.routing.max_attempts = 0;
    match Gateway::start(config).await {
        Err(GatewayError::Config(e)) => {
            assert!(e.to_string().contains("routing.max_attempts"), "{e}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("started with an invalid config"),
    }
}

#[tokio::test]
async fn http2_upstream_pool_works_and_reuses_one_connection() {
    let upstream = mock_providers::MockServer::start(mock_providers::MockConfig::new(
        mock_providers::Profile::fast(),
    ))
    .await
    .unwrap();
    let mut provider = openai("h2", upstream.url());
    provider.pool.http2 = true;
    let gw = start(vec![provider], |_| {}).await;
    let bodies: Vec<Value> = (0..8).map(|i| chat("m", i % 2 == 0)).collect();
    let requests = bodies.iter().map(|body| post(&gw, body));
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
        assert!(!response.text().await.unwrap().is_empty());
    }
    let pool: Value = client()
        .get(format!("{}/admin/performance/connection-pool", gw.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Eight concurrent requests share one multiplexed connection.
    assert_eq!(
        pool["providers"][0]["pool"]["connections_opened"], 1,
        "{pool}"
    );
    assert_eq!(pool["providers"][0]["pool"]["http2"], true);
}

#[tokio::test]
async fn injected_busy_work_shows_in_the_overhead_header() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().mount(&upstream).await;
    let plain = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    let slowed = start(vec![openai("a", &upstream.uri())], |c| {
        c.inject.busy_us = 20_000;
    })
    .await;
    let overhead = |response: &reqwest::Response| -> u64 {
        header(response, "x-gateway-overhead-us").parse().unwrap()
    };
    let slow = post(&slowed, &chat("m", false)).await;
    assert_eq!(slow.status(), 200);
    // The spin lasts at least `busy_us`, however fast or loaded the machine is.
    assert!(overhead(&slow) >= 20_000, "{}", overhead(&slow));
    let fast = post(&plain, &chat("m", false)).await;
    assert_eq!(fast.status(), 200);
    assert!(overhead(&fast) < overhead(&slow));
}
