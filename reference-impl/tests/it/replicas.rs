//! Two gateway instances sharing one real `redis-server`: one rate limit across both, a
//! response cached by one is a hit on the other, and killing Redis mid-run fails no request.

use std::time::{Duration, Instant};

use mock_providers::{MockConfig, MockServer, Outcome, Profile, Route};
use reference_impl::GatewayHandle;
use reference_impl::cache::RedisCacheConfig;
use reference_impl::limiter::{RedisLimiterConfig, TierLimit};
use serde_json::{Value, json};

use crate::common::{self, client, header, metric, openai, redis::RedisServer, start};

/// A gateway over `upstream` with its limiter (free tier: `requests` per hour) and cache both
/// on Redis at `redis`.
async fn replica(upstream: &str, redis: &str, requests: u64) -> GatewayHandle {
    start(vec![openai("mock", upstream)], |config| {
        config.limiter.enabled = true;
        config.limiter.tiers.free = TierLimit {
            requests,
            period_secs: 3_600,
            tokens_per_minute: None,
        };
        config.limiter.redis = Some(RedisLimiterConfig {
            url: redis.to_owned(),
            timeout_ms: 200,
            key_prefix: "replicas:ratelimit".to_owned(),
        });
        config.cache.enabled = true;
        config.cache.redis = Some(RedisCacheConfig {
            url: redis.to_owned(),
            timeout_ms: 200,
            ttl_secs: 60,
        });
    })
    .await
}

async fn ask(gateway: &GatewayHandle, key: &str, prompt: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(key)
        .json(&json!({
            "model": "gpt-test",
            "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        }))
        .send()
        .await
        .expect("gateway answers")
}

async fn fast_mock() -> MockServer {
    MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts")
}

#[tokio::test]
async fn replicas_share_one_limit_through_redis() {
    let redis = RedisServer::start();
    let mock = fast_mock().await;
    let replicas = [
        replica(mock.url(), &redis.url(), 10).await,
        replica(mock.url(), &redis.url(), 10).await,
    ];
    let mut statuses = Vec::new();
    for i in 0..16 {
        // Distinct prompts: every request reaches the limiter and the upstream, no cache hit.
        let response = ask(&replicas[i % 2], "sk-shared", &format!("question {i}")).await;
        statuses.push(response.status().as_u16());
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(
        (admitted, limited),
        (10, 6),
        "10 per hour in total across both replicas, not 10 each: {statuses:?}"
    );
    assert_eq!(mock.stats().count(Route::ChatCompletions, Outcome::Ok), 10);
}

#[tokio::test]
async fn a_response_cached_by_one_replica_is_a_hit_on_the_other() {
    let redis = RedisServer::start();
    let mock = fast_mock().await;
    let (a, b) = (
        replica(mock.url(), &redis.url(), 1_000).await,
        replica(mock.url(), &redis.url(), 1_000).await,
    );
    let first = ask(&a, "sk-cache", "what is a circuit breaker?").await;
    assert_eq!(header(&first, "x-cache"), "miss");
    let answer: Value = first.json().await.unwrap();

    // The write to Redis runs in the background: ask the other replica until it is there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let hit = loop {
        let response = ask(&b, "sk-cache", "what is a circuit breaker?").await;
        if header(&response, "x-cache") == "hit" {
            break response;
        }
        assert!(Instant::now() < deadline, "replica b never saw a's entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cached: Value = hit.json().await.unwrap();
    assert_eq!(cached["choices"], answer["choices"]);
}

#[tokio::test]
async fn killing_and_restarting_redis_mid_run_fails_no_request() {
    let redis = RedisServer::start();
    let port = redis.port();
    let url = redis.url();
    let mock = fast_mock().await;
    let replicas = [
        replica(mock.url(), &url, 100_000).await,
        replica(mock.url(), &url, 100_000).await,
    ];
    let run = |from: usize, to: usize| {
        let replicas = &replicas;
        async move {
            let mut failed = Vec::new();
            for i in from..to {
                // Every third prompt repeats, so cache reads and writes both happen.
                let prompt = format!("prompt {}", if i % 3 == 0 { 0 } else { i });
                let response = ask(&replicas[i % 2], "sk-load", &prompt).await;
                if response.status() != 200 {
                    failed.push((i, response.status().as_u16()));
                }
            }
            failed
        }
    };

    assert_eq!(run(0, 60).await, vec![], "with redis up");
    drop(redis);
    assert_eq!(run(60, 120).await, vec![], "with redis killed");
    // Redis really was gone: both tiers counted the failures they rode through.
    for series in [
        "gateway_cache_redis_errors_total",
        "gateway_ratelimit_redis_fallbacks_total",
    ] {
        let count = metric(&replicas[0], series).await;
        assert!(count > 0.0, "{series} = {count}");
    }
    let redis = RedisServer::start_on(port);
    assert_eq!(run(120, 180).await, vec![], "after redis restarted");

    // The restarted server is used again: new entries and limiter buckets land in it.
    let mut connection = common::redis_connection(&redis.url()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = ask(&replicas[0], "sk-load", "after the restart").await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut connection)
            .await
            .expect("keys");
        let cache = keys.iter().any(|k| k.starts_with("ai:completion:"));
        let limiter = keys.iter().any(|k| k.starts_with("replicas:ratelimit"));
        if cache && limiter {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas never wrote to the restarted redis: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
