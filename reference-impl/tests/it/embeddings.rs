//! `POST /v1/embeddings` through the gateway: passed to an OpenAI-compatible provider, with
//! fallback past a failing one, and clean errors for bad bodies and Anthropic-only models.

use mock_providers::wiremock::Reply;
use mock_providers::{MockConfig, MockServer, Outcome, Profile, Route};
use reference_impl::GatewayHandle;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{anthropic, client, header, openai, post, start};

async fn embed(gateway: &GatewayHandle, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/embeddings", gateway.url()))
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test]
async fn embeddings_fall_back_past_a_failing_provider() {
    let failing = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&failing)
        .await;
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .unwrap();
    let gw = start(
        vec![openai("a", &failing.uri()), openai("b", mock.url())],
        |_| {},
    )
    .await;

    let response = embed(
        &gw,
        &json!({"model": "text-embedding-3-small", "input": ["a cat", "a dog"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-gateway-provider"), "b");
    assert!(
        header(&response, "x-gateway-overhead-us")
            .parse::<u64>()
            .is_ok()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(body["data"][0]["embedding"].as_array().unwrap().len() > 1);
    assert_eq!(mock.stats().count(Route::Embeddings, Outcome::Ok), 1);
    failing.verify().await;
}

#[tokio::test]
async fn bad_embedding_bodies_get_openai_errors_without_an_upstream_call() {
    let upstream = wiremock::MockServer::start().await;
    Reply::openai().mock().expect(0).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    for body in [
        json!({"model": "m"}),
        json!({"input": "x"}),
        json!({"model": 7, "input": "x"}),
    ] {
        let response = embed(&gw, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
    }
    upstream.verify().await;
}

#[tokio::test]
async fn a_model_served_only_by_anthropic_has_no_embeddings() {
    let upstream = wiremock::MockServer::start().await;
    Reply::anthropic().mock().expect(0).mount(&upstream).await;
    let gw = start(vec![anthropic("claude", &upstream.uri())], |_| {}).await;
    let response = embed(&gw, &json!({"model": "claude-x", "input": "hello"})).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embeddings"),
        "{error}"
    );
    upstream.verify().await;
}

#[tokio::test]
async fn the_semantic_tier_answers_a_reworded_prompt_from_the_providers_embeddings() {
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .unwrap();
    let gw = start(vec![openai("mock", mock.url())], |config| {
        config.cache.enabled = true;
        config.cache.semantic.enabled = true;
    })
    .await;
    let ask = |text: &str| json!({"model": "gpt-test", "messages": [{"role": "user", "content": text}], "temperature": 0});

    let first = post(&gw, &ask("What is the capital city of France?")).await;
    assert_eq!(header(&first, "x-cache"), "miss");
    let answer: Value = first.json().await.unwrap();
    let reworded = post(&gw, &ask("what is the capital city of france")).await;
    assert_eq!(header(&reworded, "x-cache"), "hit");
    let cached: Value = reworded.json().await.unwrap();
    assert_eq!(cached["choices"], answer["choices"]);
    let unrelated = post(&gw, &ask("Write a haiku about autumn leaves")).await;
    assert_eq!(header(&unrelated, "x-cache"), "miss");

    let stats = mock.stats();
    assert_eq!(
        stats.count(Route::ChatCompletions, Outcome::Ok),
        2,
        "{stats:?}"
    );
    assert!(
        stats.count(Route::Embeddings, Outcome::Ok) >= 3,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_semantic_tier_without_an_openai_provider_is_a_config_error() {
    let mut config = reference_impl::GatewayConfig::with_providers(vec![anthropic(
        "claude",
        "http://127.0.0.1:9",
    )]);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.cache.enabled = true;
    config.cache.semantic.enabled = true;
    let error = reference_impl::Gateway::start(config)
        .await
        .err()
        .expect("no embeddings provider");
    assert!(
        error.to_string().contains("cache.semantic.provider"),
        "{error}"
    );
}
