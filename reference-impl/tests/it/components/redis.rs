//! The Redis tiers against a real `redis-server` that each test starts on a free loopback port.
//!
//! Needs `redis-server` on the PATH (Debian package `redis-server`; `.ci/run` installs it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use reference_impl::cache::{
    CacheConfig, CacheRequest, Cacheability, Lookup, RedisCacheConfig, ResponseCache,
};
use reference_impl::limiter::{
    KeyId, LimiterConfig, RateLimiter, RedisLimiterConfig, Tier, TierLimit,
};

use crate::common::{self, redis::RedisServer};

fn shared_limiter(url: &str, requests: u64) -> RateLimiter {
    let mut config = LimiterConfig::default();
    config.tiers.free = TierLimit {
        requests,
        period_secs: 3_600,
        tokens_per_minute: None,
    };
    config.redis = Some(RedisLimiterConfig {
        url: url.to_owned(),
        timeout_ms: 500,
        key_prefix: "test:ratelimit".to_owned(),
    });
    RateLimiter::new(config).expect("valid config")
}

#[tokio::test]
async fn two_limiters_sharing_redis_share_one_limit() {
    let redis = RedisServer::start();
    let (a, b) = (
        shared_limiter(&redis.url(), 10),
        shared_limiter(&redis.url(), 10),
    );
    let key = KeyId::from_api_key("sk-shared");
    let mut admitted = 0;
    for round in 0..15 {
        let limiter = if round % 2 == 0 { &a } else { &b };
        let decision = limiter.check(&key, Tier::Free, "m").await;
        admitted += usize::from(!decision.is_denied());
    }
    assert_eq!(admitted, 10, "one limit across both replicas");
    assert_eq!(a.stats().redis_fallbacks + b.stats().redis_fallbacks, 0);

    // Token budgets are shared too, charged after the response.
    let mut config = LimiterConfig::default();
    config.tiers.pro.tokens_per_minute = Some(100);
    config.redis = Some(RedisLimiterConfig {
        url: redis.url(),
        timeout_ms: 500,
        key_prefix: "test:tokens".to_owned(),
    });
    let (c, d) = (
        RateLimiter::new(config.clone()).expect("valid"),
        RateLimiter::new(config).expect("valid"),
    );
    assert!(!c.check(&key, Tier::Pro, "m").await.is_denied());
    c.charge_tokens(&key, Tier::Pro, 150).await;
    assert!(
        d.check(&key, Tier::Pro, "m").await.is_denied(),
        "d sees c's usage"
    );
}

#[tokio::test]
async fn killing_redis_mid_run_falls_back_to_local_limits() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis.url(), 1_000);
    let key = KeyId::from_api_key("sk-fallback");
    for _ in 0..5 {
        assert!(!limiter.check(&key, Tier::Free, "m").await.is_denied());
    }
    drop(redis);
    let started = Instant::now();
    for _ in 0..20 {
        // Every request still gets a decision, from the local buckets.
        assert!(!limiter.check(&key, Tier::Free, "m").await.is_denied());
    }
    let stats = limiter.stats();
    assert_eq!(stats.allowed, 25);
    assert_eq!(stats.redis_fallbacks, 20);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "each fallback is bounded"
    );
}

const COMPLETION: &[u8] = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"shared"},"finish_reason":"stop"}]}"#;

fn redis_cache(url: &str, timeout_ms: u64) -> ResponseCache {
    ResponseCache::new(CacheConfig {
        redis: Some(RedisCacheConfig {
            url: url.to_owned(),
            timeout_ms,
            ttl_secs: 60,
        }),
        ..CacheConfig::default()
    })
    .expect("valid config")
}

fn request(cache: &ResponseCache, content: &str) -> CacheRequest {
    let body = serde_json::json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": content}]});
    match cache.classify(body.to_string().as_bytes(), &HeaderMap::new()) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(reason) => panic!("bypass {reason:?}"),
    }
}

#[tokio::test]
async fn a_completion_written_by_one_replica_is_a_hit_for_another() {
    let redis = RedisServer::start();
    let (a, b) = (
        redis_cache(&redis.url(), 500),
        redis_cache(&redis.url(), 500),
    );
    let request = request(&a, "shared question");
    let Lookup::Lead(leader) = a.lookup(&request).await else {
        panic!("first lookup leads");
    };
    leader.complete(Bytes::from_static(COMPLETION));

    // The write to Redis runs in the background: wait (bounded) until it landed.
    let mut connection = common::redis_connection(&redis.url()).await;
    let key = request.key.to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis::cmd("EXISTS")
        .arg(&key)
        .query_async::<bool>(&mut connection)
        .await
        .expect("exists")
    {
        assert!(
            Instant::now() < deadline,
            "write-through never reached redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Lookup::Hit(hit) = b.lookup(&request).await else {
        panic!("replica b reads a's answer from redis");
    };
    assert_eq!(hit.body, COMPLETION);
    // Promoted into b's memory: the next hit does not need Redis.
    assert!(matches!(b.lookup(&request).await, Lookup::Hit(_)));
    let stats = b.stats();
    assert_eq!(
        (stats.hits, stats.redis_hits, stats.redis_errors),
        (2, 1, 0)
    );
}

#[tokio::test]
async fn a_slow_or_dead_redis_degrades_to_memory_only() {
    let redis = RedisServer::start();
    let cache = redis_cache(&redis.url(), 50);
    let warm = request(&cache, "warm");
    let Lookup::Lead(leader) = cache.lookup(&warm).await else {
        panic!("leads");
    };
    leader.complete(Bytes::from_static(COMPLETION));

    // Block the server for 2 s: lookups must give up after 50 ms and count it.
    let mut blocker = common::redis_connection(&redis.url()).await;
    let sleeper = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async(&mut blocker)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let slow = request(&cache, "while redis sleeps");
    assert!(matches!(cache.lookup(&slow).await, Lookup::Lead(_)));
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.stats().redis_errors >= 1);
    sleeper.await.expect("sleeper task");

    drop(redis);
    let dead = request(&cache, "after redis died");
    let Lookup::Lead(leader) = cache.lookup(&dead).await else {
        panic!("leads");
    };
    leader.complete(Bytes::from_static(COMPLETION));
    assert!(matches!(cache.lookup(&dead).await, Lookup::Hit(_)));
    assert!(matches!(cache.lookup(&warm).await, Lookup::Hit(_)));
    assert!(cache.stats().redis_errors >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_the_cache_clears_redis_too_and_only_the_gateways_keys() {
    use ::redis::AsyncCommands;

    let redis = RedisServer::start();
    let upstream = mock_providers::MockServer::start(mock_providers::MockConfig::new(
        mock_providers::Profile::fast(),
    ))
    .await
    .expect("mock starts");
    let gw = common::start(vec![common::openai("up", upstream.url())], |c| {
        c.cache = CacheConfig {
            redis: Some(RedisCacheConfig {
                url: redis.url(),
                timeout_ms: 500,
                ttl_secs: 600,
            }),
            ..CacheConfig::default()
        };
    })
    .await;
    let mut connection = common::redis_connection(&redis.url()).await;
    // Someone else's data in the same database, and more of the gateway's keys than one SCAN
    // step returns.
    let () = connection
        .set("other-app:state", "keep")
        .await
        .expect("set");
    for i in 0..1_200 {
        let key = format!("{}m:{i:032x}", reference_impl::cache::KEY_PREFIX);
        let () = connection.set(key, b"\0{}").await.expect("set");
    }
    let mut body = common::chat("m", false);
    body["temperature"] = serde_json::json!(0);
    let ask = || async {
        let response = common::post(&gw, &body).await;
        assert_eq!(response.status(), 200);
        common::header(&response, "x-cache").to_owned()
    };
    assert_eq!(ask().await, "miss");
    // The Redis write happens in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = connection.keys("ai:completion:*").await.expect("keys");
        if keys.len() == 1_201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not written to redis: {}",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ask().await, "hit");

    let cleared: serde_json::Value = common::client()
        .delete(format!("{}/admin/performance/cache", gw.url()))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(cleared["redis_keys_removed"], 1_201, "{cleared}");
    let left: Vec<String> = connection.keys("ai:completion:*").await.expect("keys");
    assert!(left.is_empty(), "{left:?}");
    let other: Option<String> = connection.get("other-app:state").await.expect("get");
    assert_eq!(other.as_deref(), Some("keep"));
    // Neither memory nor Redis answers it any more: the upstream is asked again.
    assert_eq!(ask().await, "miss");
    assert_eq!(
        upstream.stats().count(
            mock_providers::Route::ChatCompletions,
            mock_providers::Outcome::Ok
        ),
        2
    );
}
