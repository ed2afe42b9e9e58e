//! Cache, coalescing, circuit breaker, rate limiter and queue, wired into the gateway and
//! checked through it against wiremock call counts.

use std::time::Duration;

use mock_providers::wiremock::Reply;
use reference_impl::GatewayConfig;
use reference_impl::cache::CacheConfig;
use reference_impl::config::ApiKey;
use reference_impl::limiter::{LimiterConfig, Tier, TierLimit, TierLimits};
use reference_impl::queue::QueueConfig;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::common::{self, chat, client, header, metrics_text, openai, post, sse_data, start};

fn cached(config: &mut GatewayConfig) {
    config.cache = CacheConfig::default();
}

fn deterministic(stream: bool) -> Value {
    let mut body = chat("m", stream);
    body["temperature"] = json!(0);
    body
}

#[tokio::test]
async fn a_cache_hit_makes_no_upstream_call_and_replays_as_a_stream() {
    let upstream = MockServer::start().await;
    Reply::openai()
        .tokens(5)
        .mock()
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = start(vec![openai("a", &upstream.uri())], cached).await;

    let first = post(&gw, &deterministic(false)).await;
    assert_eq!(header(&first, "x-cache"), "miss");
    let first: Value = first.json().await.unwrap();
    let second = post(&gw, &deterministic(false)).await;
    assert_eq!(header(&second, "x-cache"), "hit");
    assert_eq!(header(&second, "x-gateway-provider"), "cache");
    assert_eq!(second.json::<Value>().await.unwrap(), first);

    // The same request, streamed, is answered from the same entry (stream is not in the key).
    let streamed = post(&gw, &deterministic(true)).await;
    assert_eq!(header(&streamed, "x-cache"), "hit");
    let body = streamed.text().await.unwrap();
    assert_eq!(
        common::stream_text(&body),
        first["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");
    upstream.verify().await;
}

#[tokio::test]
async fn random_sampling_bypasses_the_cache() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(2).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], cached).await;
    for _ in 0..2 {
        let response = post(&gw, &chat("m", false)).await;
        assert_eq!(header(&response, "x-cache"), "bypass");
    }
    upstream.verify().await;
}

#[tokio::test]
async fn identical_concurrent_requests_make_one_upstream_call() {
    for stream in [false, true] {
        let upstream = MockServer::start().await;
        Reply::openai()
            .tokens(6)
            .delay(Duration::from_millis(400))
            .mock()
            .expect(1)
            .mount(&upstream)
            .await;
        let gw = start(vec![openai("a", &upstream.uri())], cached).await;
        let requests = (0..5).map(|_| {
            let url = format!("{}/v1/chat/completions", gw.url());
            async move {
                let response = client()
                    .post(url)
                    .json(&deterministic(stream))
                    .send()
                    .await
                    .unwrap();
                let cache = header(&response, "x-cache").to_owned();
                (cache, response.text().await.unwrap())
            }
        });
        let answers = futures::future::join_all(requests).await;
        let mut kinds: Vec<&str> = answers.iter().map(|(c, _)| c.as_str()).collect();
        kinds.sort_unstable();
        // A late starter may find the stored answer instead of the flight.
        assert_eq!(
            kinds.iter().filter(|k| **k == "miss").count(),
            1,
            "stream {stream}: {kinds:?}"
        );
        assert!(
            kinds
                .iter()
                .all(|k| ["miss", "coalesced", "hit"].contains(k)),
            "{kinds:?}"
        );
        let texts: Vec<String> = answers
            .iter()
            .map(|(_, body)| match stream {
                true => common::stream_text(body),
                false => {
                    serde_json::from_str::<Value>(body).unwrap()["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                }
            })
            .collect();
        assert!(
            texts.iter().all(|t| t == &texts[0] && !t.is_empty()),
            "{texts:?}"
        );
        upstream.verify().await;
    }
}

#[tokio::test]
async fn breaker_opens_after_the_fifth_failure_and_routing_falls_back() {
    let (a, b) = (MockServer::start().await, MockServer::start().await);
    Reply::openai().status(500).mock().expect(5).mount(&a).await;
    Reply::openai().mock().expect(7).mount(&b).await;
    let gw = start(vec![openai("a", &a.uri()), openai("b", &b.uri())], |c| {
        // Isolate the breaker: the router's own reliability score would route around `a` sooner.
        c.routing.min_reliability = 0.0;
        c.providers[1].cost = 2.0; // `a` ranks first while its circuit is closed
    })
    .await;
    for i in 0..7 {
        let response = post(&gw, &chat("m", false)).await;
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(header(&response, "x-gateway-provider"), "b");
    }
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("gateway_breaker_state{provider=\"a\"} 2"),
        "{metrics}"
    );
    a.verify().await;
    b.verify().await;
}

#[tokio::test]
async fn every_circuit_open_gives_503_with_retry_after() {
    let a = MockServer::start().await;
    Reply::openai().status(503).mock().expect(5).mount(&a).await;
    let gw = start(vec![openai("a", &a.uri())], |c| {
        c.routing.max_attempts = 1;
        c.routing.min_reliability = 0.0;
    })
    .await;
    for _ in 0..5 {
        assert_eq!(post(&gw, &chat("m", false)).await.status(), 502);
    }
    let response = post(&gw, &chat("m", false)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(header(&response, "retry-after"), "60");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "circuit_open");
    a.verify().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(3).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], |c| {
        c.limiter = LimiterConfig {
            tiers: TierLimits {
                free: TierLimit {
                    requests: 2,
                    period_secs: 3600,
                    tokens_per_minute: None,
                },
                ..TierLimits::default()
            },
            ..LimiterConfig::default()
        };
        c.api_keys = vec![ApiKey {
            key: "sk-pro".into(),
            tier: Tier::Pro,
        }];
    })
    .await;
    let send = |key: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", gw.url()))
            .bearer_auth(key)
            .json(&chat("m", false))
            .send()
    };
    let first = send("sk-free").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "1");
    assert_eq!(send("sk-free").await.unwrap().status(), 200);
    let denied = send("sk-free").await.unwrap();
    assert_eq!(denied.status(), 429);
    assert_eq!(header(&denied, "x-ratelimit-remaining-requests"), "0");
    assert!(header(&denied, "retry-after").parse::<u64>().unwrap() > 0);
    assert_eq!(header(&denied, "x-gateway-provider"), "none");
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Another key's tier has its own bucket; the denied request never reached the upstream.
    let pro = send("sk-pro").await.unwrap();
    assert_eq!(pro.status(), 200);
    assert_eq!(header(&pro, "x-ratelimit-limit-requests"), "1000");
    upstream.verify().await;
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_503() {
    let upstream = MockServer::start().await;
    Reply::openai()
        .delay(Duration::from_millis(800))
        .mock()
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = start(vec![openai("a", &upstream.uri())], |c| {
        c.queue = Some(QueueConfig {
            max_concurrent: 1,
            max_queued: 0,
            ..QueueConfig::default()
        });
    })
    .await;
    let url = gw.url().to_owned();
    let slow = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&chat("m", false))
            .send()
            .await
            .unwrap()
            .status()
    });
    common::wait_until_the_slot_is_taken(&gw).await;
    let refused = post(&gw, &chat("m", false)).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(header(&refused, "retry-after"), "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    assert_eq!(slow.await.unwrap(), 200);
    upstream.verify().await;
}

#[tokio::test]
async fn admin_cache_endpoints_show_and_clear_entries() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().expect(2).mount(&upstream).await;
    let gw = start(vec![openai("a", &upstream.uri())], cached).await;
    assert_eq!(
        header(&post(&gw, &deterministic(false)).await, "x-cache"),
        "miss"
    );
    let url = format!("{}/admin/performance/cache", gw.url());
    let stats: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["stats"]["entries"], 1, "{stats}");
    assert_eq!(client().delete(&url).send().await.unwrap().status(), 200);
    assert_eq!(
        header(&post(&gw, &deterministic(false)).await, "x-cache"),
        "miss"
    );
    let bad = client()
        .delete(format!("{url}/not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    upstream.verify().await;
}
