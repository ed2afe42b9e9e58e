//! A keyed mock: the right key is served, a missing or wrong one gets the provider's own 401, and
//! the refusals are counted as their own outcome.

use mock_providers::{MockConfig, MockError, MockServer, Outcome, Profile, Route};
use serde_json::Value;

use crate::common::{self, anthropic_request, openai_request};

const KEY: &str = "sk-mock-0123456789";
const OPENAI_WRONG: &str = r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
const OPENAI_MISSING: &str = r#"{"error":{"message":"You didn't provide an API key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
const ANTHROPIC: &str =
    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;

async fn keyed() -> MockServer {
    MockServer::start(MockConfig {
        api_key: Some(KEY.to_owned()),
        ..MockConfig::new(Profile::fast())
    })
    .await
    .expect("mock starts")
}

/// Sends `body` (a GET when `None`) to `path` with `headers`; returns the status and body text.
async fn call(
    mock: &MockServer,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", mock.url());
    let mut request = match body {
        Some(body) => client.post(url).json(body),
        None => client.get(url),
    };
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .timeout(common::REQUEST_TIMEOUT)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn openai_routes_take_a_bearer_key() {
    let mock = keyed().await;
    let chat = openai_request(false, false);
    let bearer = format!("Bearer {KEY}");
    let right = [("authorization", bearer.as_str())];
    let path = "/v1/chat/completions";
    assert_eq!(call(&mock, path, &right, Some(&chat)).await.0, 200);
    let stream = call(&mock, path, &right, Some(&openai_request(true, false))).await;
    assert!(stream.1.ends_with("data: [DONE]\n\n"), "{}", stream.1);
    assert_eq!(
        call(&mock, path, &[], Some(&chat)).await,
        (401, OPENAI_MISSING.to_owned())
    );
    for wrong in [
        format!("Bearer {KEY}x"),
        "Bearer sk-other".to_owned(),
        format!("Basic {KEY}"),
    ] {
        assert_eq!(
            call(&mock, path, &[("authorization", &wrong)], Some(&chat)).await,
            (401, OPENAI_WRONG.to_owned()),
            "{wrong}"
        );
    }
    // An Anthropic-style header is not an OpenAI key.
    assert_eq!(
        call(&mock, path, &[("x-api-key", KEY)], Some(&chat)).await,
        (401, OPENAI_MISSING.to_owned())
    );

    let embed = serde_json::json!({"model": "text-embedding-3-small", "input": "hello"});
    assert_eq!(
        call(&mock, "/v1/embeddings", &right, Some(&embed)).await.0,
        200
    );
    assert_eq!(
        call(&mock, "/v1/embeddings", &[], Some(&embed)).await,
        (401, OPENAI_MISSING.to_owned())
    );
    assert_eq!(call(&mock, "/v1/models", &right, None).await.0, 200);
    assert_eq!(
        call(&mock, "/v1/models", &[("authorization", "Bearer no")], None).await,
        (401, OPENAI_WRONG.to_owned())
    );

    let stats = mock.stats();
    assert_eq!(stats.count(Route::ChatCompletions, Outcome::Ok), 2);
    assert_eq!(
        stats.count(Route::ChatCompletions, Outcome::Unauthorized),
        5
    );
    assert_eq!(stats.count(Route::Embeddings, Outcome::Unauthorized), 1);
    assert_eq!(stats.count(Route::Models, Outcome::Unauthorized), 1);
    assert_eq!(stats.requests, 11);
}

#[tokio::test]
async fn messages_take_x_api_key_or_bearer() {
    let mock = keyed().await;
    let body = anthropic_request(false);
    let path = "/v1/messages";
    let bearer = format!("Bearer {KEY}");
    assert_eq!(
        call(&mock, path, &[("x-api-key", KEY)], Some(&body))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&mock, path, &[("authorization", &bearer)], Some(&body))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&mock, path, &[], Some(&body)).await,
        (401, ANTHROPIC.to_owned())
    );
    assert_eq!(
        call(
            &mock,
            path,
            &[("x-api-key", "sk-mock-012345678")],
            Some(&body)
        )
        .await,
        (401, ANTHROPIC.to_owned())
    );
    let stats = mock.stats();
    assert_eq!(stats.count(Route::Messages, Outcome::Ok), 2);
    assert_eq!(stats.count(Route::Messages, Outcome::Unauthorized), 2);
}

#[tokio::test]
async fn control_routes_need_no_key_and_the_stats_show_refusals() {
    let mock = keyed().await;
    call(
        &mock,
        "/v1/chat/completions",
        &[],
        Some(&openai_request(false, false)),
    )
    .await;
    let (status, body) = call(&mock, "/mock/stats", &[], None).await;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(stats["routes"]["chat_completions"]["unauthorized"], 1);
    assert_eq!(call(&mock, "/mock/config", &[], None).await.0, 200);
    assert_eq!(
        call(&mock, "/mock/reset", &[], Some(&Value::Null)).await.0,
        204
    );
}

#[tokio::test]
async fn unusable_keys_are_refused_at_start() {
    for key in ["", "two words", "tab\tkey"] {
        let started = MockServer::start(MockConfig {
            api_key: Some(key.to_owned()),
            ..MockConfig::new(Profile::fast())
        })
        .await;
        assert!(matches!(started, Err(MockError::ApiKey(_))), "{key:?}");
    }
}
