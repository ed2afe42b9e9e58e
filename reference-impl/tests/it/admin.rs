//! Admin API: bearer token checks and the shape of each endpoint.

use mock_providers::wiremock::Reply;
use serde_json::Value;
use wiremock::MockServer;

use crate::common::{chat, client, openai, post, start};

const ENDPOINTS: [&str; 5] = [
    "stats",
    "health",
    "connection-pool",
    "request-queue",
    "optimize",
];

#[tokio::test]
async fn token_is_required_when_configured() {
    let upstream = MockServer::start().await;
    let gw = start(vec![openai("a", &upstream.uri())], |c| {
        c.admin.token = Some("s3cret".into());
    })
    .await;
    for endpoint in ENDPOINTS {
        let url = format!("{}/admin/performance/{endpoint}", gw.url());
        let missing = client().get(&url).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{endpoint} without token");
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "s3cret",
            "Basic s3cret",
        ] {
            let response = client()
                .get(&url)
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{endpoint} with {wrong:?}");
        }
        let ok = client()
            .get(&url)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{endpoint} with the token");
        let _: Value = ok.json().await.unwrap();
    }
}

#[tokio::test]
async fn without_a_token_loopback_clients_are_answered() {
    let upstream = MockServer::start().await;
    let gw = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    let response = client()
        .get(format!("{}/admin/performance/stats", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stats_count_requests_and_pool_shows_reuse() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(5).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |_| {}).await;
    for _ in 0..5 {
        assert_eq!(post(&gw, &chat("m", false)).await.status(), 200);
    }
    let get = |path: &'static str| {
        let url = format!("{}/admin/performance/{path}", gw.url());
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let stats = get("stats").await;
    assert_eq!(stats["requests"], 5);
    assert_eq!(stats["responses_2xx"], 5);
    assert_eq!(stats["overhead_us"]["count"], 5);
    assert!(
        stats["latency_us"]["p99"].as_u64().unwrap()
            >= stats["latency_us"]["p50"].as_u64().unwrap()
    );

    let pool = get("connection-pool").await;
    let a = &pool["providers"][0]["pool"];
    assert_eq!(a["requests"], 5);
    // Sequential requests reuse one keep-alive connection.
    assert_eq!(a["connections_opened"], 1, "{pool}");
    assert_eq!(a["in_flight"], 0);

    let health = get("health").await;
    assert_eq!(health["providers"][0]["healthy"], true);
    assert_eq!(health["providers"][0]["health"]["successes"], 5);
    upstream.verify().await;
}

#[tokio::test]
async fn optimize_recommends_something_for_an_unreliable_provider() {
    let upstream = MockServer::start().await;
    Reply::openai().status(503).mock().mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |c| {
        c.routing.max_attempts = 1;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(post(&gw, &chat("m", false)).await.status(), 502);
    }
    let url = format!("{}/admin/performance/optimize", gw.url());
    let body: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recommendations = body["recommendations"].as_array().unwrap();
    assert!(
        recommendations.iter().any(|r| r["area"] == "routing"),
        "{body}"
    );
}
