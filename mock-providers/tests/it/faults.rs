//! Every fault kind, observed by a real HTTP client; the control API; bad input.

use std::time::Duration;

use mock_providers::{FaultRates, MockServer, Outcome, Profile, Route, StatsSnapshot};
use serde_json::Value;

use crate::common::{anthropic_request, openai_request, read_events, start};

/// POSTs `body` to `path` on the mock with `x-mock-fault: fault`.
async fn send(mock: &MockServer, path: &str, body: &Value, fault: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", mock.url()))
        .header("x-mock-fault", fault)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn status_faults_carry_the_provider_error_and_retry_after() {
    let mock = start(Profile::fast()).await;
    let openai = "/v1/chat/completions";
    let r = send(&mock, openai, &openai_request(false, false), "429").await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        (
            r.headers()["retry-after"].to_str().unwrap(),
            r.headers()["retry-after-ms"].to_str().unwrap()
        ),
        ("1", "1000")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    for status in [500u16, 503] {
        let r = send(
            &mock,
            openai,
            &openai_request(true, false),
            &status.to_string(),
        )
        .await;
        assert_eq!(r.status(), status);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["type"],
            "server_error"
        );
    }
    let r = send(&mock, "/v1/messages", &anthropic_request(false), "529").await;
    assert_eq!(r.status(), 529);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );
    let stats = mock.stats();
    assert_eq!(
        [Outcome::Http429, Outcome::Http500, Outcome::Http503]
            .map(|o| stats.count(Route::ChatCompletions, o)),
        [1, 1, 1]
    );
    assert_eq!(stats.count(Route::Messages, Outcome::Http529), 1);
}

#[tokio::test]
async fn timeout_never_answers() {
    let mock = start(Profile::fast()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(format!("{}/v1/chat/completions", mock.url()))
        .header("x-mock-fault", "timeout")
        .json(&openai_request(false, false))
        .send()
        .await
        .expect_err("no answer within the client timeout");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        mock.stats().count(Route::ChatCompletions, Outcome::Timeout),
        1
    );
}

#[tokio::test]
async fn disconnect_after_n_tokens_breaks_the_stream() {
    let mock = start(Profile::fast()).await;
    let r = send(
        &mock,
        "/v1/chat/completions",
        &openai_request(true, false),
        "disconnect-after:3",
    )
    .await;
    let (events, error) = read_events(r).await.expect_err("the stream must break");
    let tokens = events
        .iter()
        .filter(|e| e.data.contains(r#""delta":{"content":"#))
        .count();
    assert_eq!(tokens, 3, "{error}");
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    let r = send(
        &mock,
        "/v1/messages",
        &anthropic_request(false),
        "disconnect-after:0",
    )
    .await;
    assert!(
        r.bytes().await.is_err(),
        "a non-streaming body is cut off too"
    );
}

#[tokio::test]
async fn error_after_n_tokens_sends_the_in_stream_error_event() {
    let mock = start(Profile::fast()).await;
    let r = send(
        &mock,
        "/v1/messages",
        &anthropic_request(true),
        "error-after:2",
    )
    .await;
    let events = read_events(r)
        .await
        .expect("a clean end after the error event");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "content_block_delta")
            .count(),
        2
    );
    let last = events.last().unwrap();
    assert_eq!(last.event, "error");
    let v: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    let r = send(
        &mock,
        "/v1/chat/completions",
        &openai_request(true, false),
        "error-after:1",
    )
    .await;
    let events = read_events(r).await.unwrap();
    let v: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(v["error"]["type"], "server_error");
}

#[tokio::test]
async fn malformed_sends_invalid_json() {
    let mock = start(Profile::fast()).await;
    let r = send(
        &mock,
        "/v1/chat/completions",
        &openai_request(true, false),
        "malformed",
    )
    .await;
    let events = read_events(r).await.unwrap();
    let bad = events
        .iter()
        .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
        .count();
    assert_eq!(bad, 1, "exactly one broken chunk");
    let r = send(
        &mock,
        "/v1/messages",
        &anthropic_request(false),
        "malformed",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
}

#[tokio::test]
async fn client_disconnect_is_counted_as_cancelled() {
    let mut profile = Profile::fast();
    profile.itl_ms = mock_providers::Distribution::constant(20.0);
    let mock = start(profile).await;
    let r = send(
        &mock,
        "/v1/chat/completions",
        &openai_request(true, false),
        "none-such",
    )
    .await;
    assert_eq!(r.status(), 400, "unknown fault values are rejected");
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&openai_request(true, false))
        .send()
        .await
        .unwrap();
    assert_eq!(mock.stats().in_flight, 1);
    drop(r);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock
        .stats()
        .count(Route::ChatCompletions, Outcome::Cancelled)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancellation not seen: {:?}",
            mock.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.stats().in_flight, 0);
}

#[tokio::test]
async fn profile_fault_rates_are_applied_and_counted() {
    let profile = Profile {
        faults: FaultRates {
            http_500: 0.5,
            ..FaultRates::default()
        },
        ..Profile::fast()
    };
    let mock = start(profile).await;
    let client = reqwest::Client::new();
    let mut failed = 0;
    for _ in 0..200 {
        let r = client
            .post(format!("{}/v1/chat/completions", mock.url()))
            .json(&openai_request(false, false))
            .send()
            .await
            .unwrap();
        failed += usize::from(r.status() == 500);
    }
    let stats = mock.stats();
    assert_eq!(
        stats.count(Route::ChatCompletions, Outcome::Http500) as usize,
        failed
    );
    assert_eq!(stats.requests, 200);
    assert!((70..130).contains(&failed), "{failed} of 200 failed at 50%");
}

#[tokio::test]
async fn control_api_reconfigures_reports_and_resets() {
    let mock = start(Profile::fast()).await;
    let client = reqwest::Client::new();
    let config = format!("{}/mock/config", mock.url());
    let mut profile: Profile = client
        .get(&config)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile, Profile::fast());
    profile.faults.http_503 = 1.0;
    assert_eq!(
        client
            .put(&config)
            .json(&profile)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = client
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&openai_request(false, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let stats: StatsSnapshot = client
        .get(format!("{}/mock/stats", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.count(Route::ChatCompletions, Outcome::Http503), 1);
    profile.faults.http_503 = 2.0;
    let r = client.put(&config).json(&profile).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("faults.http_503"));
    assert_eq!(
        client
            .post(format!("{}/mock/reset", mock.url()))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(mock.stats(), StatsSnapshot::default());
    assert_eq!(mock.profile(), Profile::fast());
}

#[tokio::test]
async fn bad_input_gets_the_providers_400_never_a_panic() {
    let mock = start(Profile::fast()).await;
    let client = reqwest::Client::new();
    let openai = format!("{}/v1/chat/completions", mock.url());
    let cases: [(&str, &[u8], Option<&str>); 5] = [
        (&openai, b"{not json", None),
        (&openai, br#"{"model":"gpt-4o"}"#, Some("messages")),
        (
            &openai,
            br#"{"model":"gpt-4o","messages":{"role":"user"}}"#,
            Some("messages"),
        ),
        (
            &openai,
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#,
            Some("stream"),
        ),
        (&openai, b"[1,2,3]", None),
    ];
    for (url, body, param) in cases {
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(body));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"].as_str(), param);
    }
    let r = client
        .post(format!("{}/v1/messages", mock.url()))
        .json(&serde_json::json!({"model": "claude"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "messages: Field required"
    );
    let r = client
        .post(&openai)
        .header("x-mock-tokens", "many")
        .json(&openai_request(false, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("x-mock-tokens"));
    assert_eq!(
        mock.stats()
            .count(Route::ChatCompletions, Outcome::BadRequest),
        6
    );
}

#[tokio::test]
async fn models_and_embeddings() {
    let mock = start(Profile::fast()).await;
    let client = reqwest::Client::new();
    let v: Value = client
        .get(format!("{}/v1/models", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["id"], "gpt-4o-mini");
    let embed = |input: Value| {
        let req = client.post(format!("{}/v1/embeddings", mock.url())).json(&serde_json::json!({"model": "text-embedding-3-small", "input": input, "dimensions": 64}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = embed(serde_json::json!([
        "Where is the Eiffel tower?",
        "where is the eiffel tower"
    ]))
    .await;
    let vec = |i: usize| -> Vec<f32> {
        serde_json::from_value(v["data"][i]["embedding"].clone()).unwrap()
    };
    assert_eq!(vec(0).len(), 64);
    assert!(mock_providers::cosine(&vec(0), &vec(1)) > 0.99);
    let r = client
        .post(format!("{}/v1/embeddings", mock.url()))
        .json(&serde_json::json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
