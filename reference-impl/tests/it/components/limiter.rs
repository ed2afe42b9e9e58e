//! Rate limiter admission counts, refill and headers, on tokio's paused clock.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;
use proptest::prelude::*;
use reference_impl::limiter::{
    Decision, KeyId, LimiterConfig, ModelLimit, RateLimiter, Scope, Tier, TierLimit,
};

fn admitted(limiter: &RateLimiter, key: &KeyId, tier: Tier, model: &str, attempts: usize) -> usize {
    (0..attempts)
        .filter(|_| !limiter.check_local_now(key, tier, model).is_denied())
        .count()
}

#[tokio::test(start_paused = true)]
async fn free_tier_admits_exactly_its_capacity_then_refills_at_the_rate() {
    let limiter = RateLimiter::new(LimiterConfig::default()).expect("valid config");
    let key = KeyId::from_api_key("sk-free");
    assert_eq!(admitted(&limiter, &key, Tier::Free, "m", 150), 100);

    // 100 per hour: one every 36 s.
    let Decision::Denied {
        scope,
        retry_after,
        quota,
        ..
    } = limiter.check(&key, Tier::Free, "m").await
    else {
        panic!("over the limit must be denied");
    };
    assert_eq!(scope, Scope::Key);
    assert_eq!(retry_after, Duration::from_secs(36));
    assert_eq!((quota.limit, quota.remaining), (100, 0));
    assert_eq!(quota.reset, Duration::from_secs(3_600));

    tokio::time::advance(Duration::from_millis(35_999)).await;
    assert_eq!(admitted(&limiter, &key, Tier::Free, "m", 5), 0);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(admitted(&limiter, &key, Tier::Free, "m", 5), 1);
    tokio::time::advance(Duration::from_secs(36 * 10)).await;
    assert_eq!(admitted(&limiter, &key, Tier::Free, "m", 50), 10);

    let other = KeyId::from_api_key("sk-other");
    assert_eq!(admitted(&limiter, &other, Tier::Pro, "m", 1_100), 1_000);
    let stats = limiter.stats();
    assert_eq!(stats.allowed, 100 + 1 + 10 + 1_000);
    assert_eq!(stats.denied_key, 50 + 1 + 5 + 4 + 40 + 100);
}

#[tokio::test(start_paused = true)]
async fn allowed_decisions_count_down_the_remaining_requests() {
    let limiter = RateLimiter::new(LimiterConfig::default()).expect("valid config");
    let key = KeyId::from_api_key("sk");
    let remaining: Vec<u64> = (0..3)
        .map(|_| match limiter.check_local_now(&key, Tier::Free, "m") {
            Decision::Allowed {
                quota: Some(quota), ..
            } => quota.remaining,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(remaining, [99, 98, 97]);
}

#[tokio::test(start_paused = true)]
async fn a_model_quota_is_shared_by_all_keys_and_refusals_take_nothing() {
    let config = LimiterConfig {
        models: BTreeMap::from([(
            "big".to_owned(),
            ModelLimit {
                requests: 5,
                period_secs: 1,
            },
        )]),
        ..LimiterConfig::default()
    };
    let limiter = RateLimiter::new(config).expect("valid config");
    let (a, b) = (KeyId::from_api_key("a"), KeyId::from_api_key("b"));
    assert_eq!(admitted(&limiter, &a, Tier::Free, "big", 3), 3);
    assert_eq!(admitted(&limiter, &b, Tier::Free, "big", 3), 2);
    let Decision::Denied { scope, .. } = limiter.check_local_now(&a, Tier::Free, "big") else {
        panic!("model quota exhausted");
    };
    assert_eq!(scope, Scope::Model);
    // Refusals by the model quota did not use up key a's tier quota: 97 of 100 are left.
    assert_eq!(admitted(&limiter, &a, Tier::Free, "small", 200), 97);
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(admitted(&limiter, &b, Tier::Free, "big", 3), 1);
}

#[tokio::test(start_paused = true)]
async fn token_budget_is_charged_after_the_response() {
    let mut config = LimiterConfig::default();
    config.tiers.pro.tokens_per_minute = Some(1_000);
    let limiter = RateLimiter::new(config).expect("valid config");
    let key = KeyId::from_api_key("sk-pro");
    assert!(!limiter.check(&key, Tier::Pro, "m").await.is_denied());
    limiter.charge_tokens(&key, Tier::Pro, 1_500).await;
    let Decision::Denied {
        scope, retry_after, ..
    } = limiter.check(&key, Tier::Pro, "m").await
    else {
        panic!("budget exhausted");
    };
    assert_eq!(scope, Scope::Tokens);
    // 500 tokens over budget at 1000 per minute: 30 s.
    assert_eq!(retry_after, Duration::from_secs(30));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(!limiter.check(&key, Tier::Pro, "m").await.is_denied());
    assert_eq!(limiter.stats().denied_tokens, 1);
}

#[tokio::test(start_paused = true)]
async fn decisions_write_the_rate_limit_headers() {
    let config = LimiterConfig {
        tiers: reference_impl::limiter::TierLimits {
            free: TierLimit {
                requests: 2,
                period_secs: 60,
                tokens_per_minute: None,
            },
            ..Default::default()
        },
        ..LimiterConfig::default()
    };
    let limiter = RateLimiter::new(config).expect("valid config");
    let key = KeyId::from_api_key("sk");
    let mut headers = HeaderMap::new();
    limiter
        .check(&key, Tier::Free, "m")
        .await
        .write_headers(&mut headers);
    assert_eq!(headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "1");
    assert_eq!(headers["x-ratelimit-reset-requests"], "30s");
    assert!(headers.get("retry-after").is_none());

    limiter.check(&key, Tier::Free, "m").await;
    tokio::time::advance(Duration::from_millis(500)).await;
    let mut headers = HeaderMap::new();
    limiter
        .check(&key, Tier::Free, "m")
        .await
        .write_headers(&mut headers);
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(headers["retry-after"], "30", "29.5 s rounds up");
}

#[tokio::test]
async fn a_disabled_limiter_admits_everything_without_headers() {
    let config = LimiterConfig {
        enabled: false,
        ..LimiterConfig::default()
    };
    let limiter = RateLimiter::new(config).expect("valid config");
    let key = KeyId::from_api_key("sk");
    assert_eq!(admitted(&limiter, &key, Tier::Free, "m", 500), 500);
    let mut headers = HeaderMap::new();
    limiter
        .check(&key, Tier::Free, "m")
        .await
        .write_headers(&mut headers);
    assert!(headers.is_empty());
}

#[test]
fn key_ids_never_show_the_raw_key() {
    let id = KeyId::from_api_key("sk-live-very-secret");
    let shown = format!("{id} {id:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(id.to_string().len(), 32);
    assert_eq!(id, KeyId::from_api_key("sk-live-very-secret"));
    assert_ne!(id, KeyId::from_api_key("sk-live-very-secreT"));
}

#[test]
fn config_reads_toml_and_names_bad_fields() {
    let config: LimiterConfig = toml::from_str(
        r#"
        [tiers.free]
        requests = 10
        period_secs = 60
        tokens_per_minute = 5000
        [models."gpt-4o"]
        requests = 50
        [redis]
        url = "redis://127.0.0.1:6379"
        "#,
    )
    .expect("valid toml");
    assert_eq!(config.tiers.free.requests, 10);
    assert_eq!(
        config.tiers.pro.requests, 1_000,
        "unset tiers keep defaults"
    );
    assert_eq!(config.models["gpt-4o"].period_secs, 1);
    assert_eq!(config.redis.as_ref().map(|r| r.timeout_ms), Some(50));

    let typo = toml::from_str::<LimiterConfig>("[tiers.free]\nrequest = 1").expect_err("typo");
    assert!(typo.to_string().contains("request"), "{typo}");

    let mut zero = LimiterConfig::default();
    zero.tiers.enterprise.period_secs = 0;
    let error = RateLimiter::new(zero).expect_err("zero period");
    assert_eq!(
        error.to_string(),
        "limiter.tiers.enterprise.period_secs must be at least 1"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any quota, a burst admits exactly the capacity, and waiting k emission intervals
    /// admits exactly k more.
    #[test]
    fn admits_capacity_then_one_per_interval(
        requests in 1u64..300,
        period_secs in 1u64..10_000,
        extra in 1usize..50,
        waited in 0u64..20,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut config = LimiterConfig::default();
            config.tiers.free = TierLimit { requests, period_secs, tokens_per_minute: None };
            let limiter = RateLimiter::new(config).expect("valid config");
            let key = KeyId::from_api_key("prop");
            let burst = admitted(&limiter, &key, Tier::Free, "m", requests as usize + extra);
            prop_assert_eq!(burst, requests as usize);
            let interval = Duration::from_nanos(period_secs * 1_000_000_000 / requests);
            let waited = waited.min(requests);
            tokio::time::advance(interval * waited as u32).await;
            let refilled = admitted(&limiter, &key, Tier::Free, "m", requests as usize + extra);
            prop_assert_eq!(refilled, waited as usize);
            Ok(())
        })?;
    }
}
