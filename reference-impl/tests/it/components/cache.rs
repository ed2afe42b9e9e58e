//! Response cache: cacheability rules, hits, coalescing (streaming and not), leader failure,
//! eviction by bytes, compression, TTL classes, and canonical keys under proptest.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use reference_impl::cache::{
    BypassReason, CacheConfig, CacheError, CacheKey, CacheRequest, Cacheability, EmbedError,
    FlightError, FollowError, LeaderFailure, Lookup, ResponseCache, SemanticConfig, TtlConfig,
};
use serde_json::{Value, json};

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

fn body(content: &str, temperature: Option<f64>) -> Vec<u8> {
    let mut request = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    if let Some(t) = temperature {
        request["temperature"] = json!(t);
    }
    serde_json::to_vec(&request).expect("serialize")
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

fn cacheable(cache: &ResponseCache, body: &[u8], headers: &HeaderMap) -> CacheRequest {
    match cache.classify(body, headers) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(reason) => panic!("unexpected bypass: {reason:?}"),
    }
}

fn bypass(cache: &ResponseCache, body: &[u8], headers: &HeaderMap) -> BypassReason {
    match cache.classify(body, headers) {
        Cacheability::Bypass(reason) => reason,
        Cacheability::Cacheable(request) => panic!("unexpected cacheable: {request:?}"),
    }
}

fn cache(config: CacheConfig) -> ResponseCache {
    ResponseCache::new(config).expect("valid config")
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn cacheability_follows_temperature_force_and_cache_control() {
    let cache = cache(CacheConfig::default());
    let none = HeaderMap::new();
    assert!(cacheable(&cache, &body("a", Some(0.0)), &none).read);
    assert_eq!(
        bypass(&cache, &body("a", None), &none),
        BypassReason::Temperature
    );
    assert_eq!(
        bypass(&cache, &body("a", Some(0.7)), &none),
        BypassReason::Temperature
    );
    cacheable(
        &cache,
        &body("a", Some(0.7)),
        &headers(&[("x-cache-force", "true")]),
    );
    assert_eq!(
        bypass(
            &cache,
            &body("a", Some(0.0)),
            &headers(&[("cache-control", "max-age=0, no-store")])
        ),
        BypassReason::NoStore
    );
    let refresh = cacheable(
        &cache,
        &body("a", Some(0.0)),
        &headers(&[("cache-control", "no-cache")]),
    );
    assert!(!refresh.read);
    assert_eq!(bypass(&cache, b"{not json", &none), BypassReason::Unkeyable);
    assert_eq!(
        bypass(&cache, br#"{"temperature":0}"#, &none),
        BypassReason::Unkeyable
    );

    let forced = self::cache(CacheConfig {
        force: true,
        ..CacheConfig::default()
    });
    cacheable(&forced, &body("a", Some(1.5)), &none);
    let disabled = self::cache(CacheConfig {
        enabled: false,
        ..CacheConfig::default()
    });
    assert_eq!(
        bypass(&disabled, &body("a", Some(0.0)), &none),
        BypassReason::Disabled
    );
    assert_eq!(cache.stats().bypassed, 5);
}

#[tokio::test]
async fn a_completed_miss_is_a_hit_next_time() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("hello", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    let Lookup::Hit(hit) = cache.lookup(&request).await else {
        panic!("second lookup hits");
    };
    assert_eq!(hit.body, COMPLETION.as_bytes());
    let events = hit.sse(false).expect("replayable");
    assert_eq!(
        events.last().map(|e| &e[..]),
        Some(&b"data: [DONE]\n\n"[..])
    );

    // A no-cache request goes upstream even though an answer is stored.
    let refresh = cacheable(
        &cache,
        &body("hello", Some(0.0)),
        &headers(&[("cache-control", "no-cache")]),
    );
    assert!(matches!(cache.lookup(&refresh).await, Lookup::Lead(_)));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 1));
}

#[tokio::test]
async fn identical_requests_in_flight_share_one_upstream_call() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("same", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    let followers: Vec<_> = (0..9)
        .map(|_| {
            let (cache, request) = (cache.clone(), request.clone());
            tokio::spawn(async move {
                match cache.lookup(&request).await {
                    Lookup::Follow(follower) => follower.wait().await,
                    other => panic!("expected to follow, got {other:?}"),
                }
            })
        })
        .collect();
    settle().await;
    assert_eq!(cache.stats().in_flight, 1);
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    for follower in followers {
        assert_eq!(
            follower.await.expect("task").expect("answer"),
            COMPLETION.as_bytes()
        );
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.coalesced, stats.in_flight), (1, 9, 0));
}

#[tokio::test]
async fn streaming_followers_get_every_chunk_even_when_joining_late() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("stream", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    let chunks: Vec<Bytes> = [
        &b"data: {\"a\":1}\n\n"[..],
        b"data: {\"a\":2}\n\n",
        b"data: [DONE]\n\n",
    ]
    .into_iter()
    .map(Bytes::from_static)
    .collect();
    let early = match cache.lookup(&request).await {
        Lookup::Follow(follower) => tokio::spawn(follower.into_stream(false).collect::<Vec<_>>()),
        other => panic!("expected to follow, got {other:?}"),
    };
    leader.send_chunk(chunks[0].clone());
    settle().await;
    leader.send_chunk(chunks[1].clone());
    let Lookup::Follow(late) = cache.lookup(&request).await else {
        panic!("expected to follow");
    };
    let late = tokio::spawn(late.into_stream(false).collect::<Vec<_>>());
    leader.send_chunk(chunks[2].clone());
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    for follower in [early, late] {
        let received: Vec<Bytes> = follower
            .await
            .expect("task")
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("no error");
        assert_eq!(received, chunks);
    }
}

#[tokio::test]
async fn a_streaming_follower_of_a_non_streaming_leader_gets_a_replay() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("replay", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    let Lookup::Follow(follower) = cache.lookup(&request).await else {
        panic!("second lookup follows");
    };
    let stream = tokio::spawn(follower.into_stream(true).collect::<Vec<_>>());
    settle().await;
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    let events: Vec<Bytes> = stream
        .await
        .expect("task")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no error");
    let text: String = events.iter().map(|e| String::from_utf8_lossy(e)).collect();
    assert!(text.contains(r#""content":"Hi!""#), "{text}");
    assert!(text.contains(r#""total_tokens":3"#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn a_failed_leader_does_not_poison_its_followers() {
    for (policy, expected) in [
        (LeaderFailure::Retry, FollowError::Retry),
        (
            LeaderFailure::Error,
            FollowError::Failed(FlightError {
                status: 503,
                message: "down".into(),
            }),
        ),
    ] {
        let cache = cache(CacheConfig {
            on_leader_failure: policy,
            ..CacheConfig::default()
        });
        let request = cacheable(&cache, &body("fail", Some(0.0)), &HeaderMap::new());
        let Lookup::Lead(leader) = cache.lookup(&request).await else {
            panic!("first lookup leads");
        };
        let Lookup::Follow(follower) = cache.lookup(&request).await else {
            panic!("second lookup follows");
        };
        leader.fail(FlightError {
            status: 503,
            message: "down".into(),
        });
        assert_eq!(follower.wait().await, Err(expected));
        // Nothing was stored and the flight is gone: the retry leads a fresh call.
        assert!(matches!(cache.lookup(&request).await, Lookup::Lead(_)));
    }
}

#[tokio::test]
async fn an_abandoned_leader_releases_followers_to_retry() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("gone", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    let Lookup::Follow(follower) = cache.lookup(&request).await else {
        panic!("second lookup follows");
    };
    let waiting = tokio::spawn(follower.wait());
    settle().await;
    drop(leader);
    assert_eq!(waiting.await.expect("task"), Err(FollowError::Retry));
}

#[tokio::test]
async fn a_follower_that_already_streamed_gets_the_error_not_a_retry() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("mid", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    let Lookup::Follow(follower) = cache.lookup(&request).await else {
        panic!("second lookup follows");
    };
    leader.send_chunk(Bytes::from_static(b"data: {}\n\n"));
    leader.fail(FlightError {
        status: 502,
        message: "cut".into(),
    });
    let events = follower.into_stream(false).collect::<Vec<_>>().await;
    assert_eq!(events.len(), 2);
    assert!(events[0].is_ok());
    assert!(matches!(&events[1], Err(FollowError::Failed(e)) if e.message == "cut"));
}

#[tokio::test]
async fn memory_stays_within_max_bytes_by_evicting() {
    let config = CacheConfig {
        max_bytes: 16 * 1024,
        ..CacheConfig::default()
    };
    let cache = cache(config);
    for i in 0..200 {
        let request = cacheable(
            &cache,
            &body(&format!("q{i}"), Some(0.0)),
            &HeaderMap::new(),
        );
        let Lookup::Lead(leader) = cache.lookup(&request).await else {
            panic!("every key is new");
        };
        // 900 bytes that do not compress.
        let noise: String = (0..900u32)
            .map(|j| char::from(b'!' + ((i * 7 + j * j) % 90) as u8))
            .collect();
        leader.complete(Bytes::from(noise));
    }
    let stats = cache.stats();
    assert!(stats.bytes <= 16 * 1024, "bytes {}", stats.bytes);
    assert!(stats.evictions >= 150, "evictions {}", stats.evictions);
    assert!(stats.entries >= 10, "entries {}", stats.entries);
}

#[tokio::test]
async fn large_bodies_are_stored_compressed() {
    let cache = cache(CacheConfig::default());
    let request = cacheable(&cache, &body("big", Some(0.0)), &HeaderMap::new());
    let large = Bytes::from("a long and repetitive answer. ".repeat(1_000));
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("first lookup leads");
    };
    leader.complete(large.clone());
    let stats = cache.stats();
    assert!(
        stats.bytes < 4 * 1024,
        "30 KB stored as {} bytes",
        stats.bytes
    );
    let Lookup::Hit(hit) = cache.lookup(&request).await else {
        panic!("hit");
    };
    assert_eq!(hit.body, large);
}

#[tokio::test]
async fn frequently_read_entries_outlive_rare_ones() {
    // moka keeps its own clock, so this test waits in real time, in the safe direction only:
    // the rare entry must be gone after its 1 s TTL, the frequent one (1 h) must remain.
    let config = CacheConfig {
        ttl: TtlConfig {
            frequent_secs: 3_600,
            moderate_secs: 3_600,
            rare_secs: 1,
            frequent_hits: 2,
            moderate_hits: 2,
        },
        ..CacheConfig::default()
    };
    let cache = cache(config);
    let rare = cacheable(&cache, &body("rare", Some(0.0)), &HeaderMap::new());
    let frequent = cacheable(&cache, &body("frequent", Some(0.0)), &HeaderMap::new());
    for request in [&rare, &frequent] {
        let Lookup::Lead(leader) = cache.lookup(request).await else {
            panic!("new key leads");
        };
        leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    }
    for _ in 0..2 {
        assert!(matches!(cache.lookup(&frequent).await, Lookup::Hit(_)));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(matches!(cache.lookup(&frequent).await, Lookup::Hit(_)));
    assert!(matches!(cache.lookup(&rare).await, Lookup::Lead(_)));
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn config_reads_toml_and_rejects_unknown_fields() {
    let config: CacheConfig = toml::from_str(
        r#"
        max_bytes = 1048576
        on_leader_failure = "error"
        [ttl]
        rare_secs = 60
        [redis]
        url = "redis://127.0.0.1:6379"
        "#,
    )
    .expect("valid toml");
    assert_eq!(config.ttl.rare_secs, 60);
    assert_eq!(config.ttl.frequent_secs, 3_600);
    assert_eq!(config.on_leader_failure, LeaderFailure::Error);
    assert_eq!(config.redis.as_ref().map(|r| r.timeout_ms), Some(20));
    let typo = toml::from_str::<CacheConfig>("[ttl]\nrare = 1").expect_err("typo");
    assert!(typo.to_string().contains("rare"), "{typo}");
}

/// A bag-of-words embedding: each lowercase word adds to one of 64 dimensions.
fn bag_of_words(_model: String, text: String) -> std::future::Ready<Result<Vec<f32>, EmbedError>> {
    let mut vector = vec![0.0f32; 64];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !matches!(*w, "user" | "system"))
    {
        let slot = word
            .to_lowercase()
            .bytes()
            .fold(7usize, |h, b| h * 31 + usize::from(b))
            % 64;
        vector[slot] += 1.0;
    }
    std::future::ready(Ok(vector))
}

fn semantic_config() -> CacheConfig {
    CacheConfig {
        semantic: SemanticConfig {
            enabled: true,
            ..SemanticConfig::default()
        },
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn a_similar_prompt_is_answered_by_the_semantic_tier() {
    assert!(matches!(
        ResponseCache::new(semantic_config()),
        Err(CacheError::NoEmbedder)
    ));
    let cache = ResponseCache::with_embedder(semantic_config(), Arc::new(bag_of_words))
        .expect("valid config");
    let original = cacheable(
        &cache,
        &body("What is the capital of France?", Some(0.0)),
        &HeaderMap::new(),
    );
    let Lookup::Lead(leader) = cache.lookup(&original).await else {
        panic!("first lookup leads");
    };
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));

    let similar = cacheable(
        &cache,
        &body("what is the capital of france", Some(0.0)),
        &HeaderMap::new(),
    );
    assert_ne!(similar.key, original.key, "not an exact match");
    let Lookup::Hit(hit) = cache.lookup(&similar).await else {
        panic!("semantic hit");
    };
    assert_eq!(hit.body, COMPLETION.as_bytes());

    let unrelated = cacheable(
        &cache,
        &body("How long should bread dough rise?", Some(0.0)),
        &HeaderMap::new(),
    );
    assert!(matches!(cache.lookup(&unrelated).await, Lookup::Lead(_)));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.semantic_hits, stats.misses), (1, 1, 2));
}

#[tokio::test]
async fn a_failing_embedder_only_skips_the_semantic_tier() {
    let failing = |_: String, _: String| std::future::ready(Err(EmbedError("down".into())));
    let cache = ResponseCache::with_embedder(semantic_config(), Arc::new(failing)).expect("valid");
    let request = cacheable(&cache, &body("anything", Some(0.0)), &HeaderMap::new());
    let Lookup::Lead(leader) = cache.lookup(&request).await else {
        panic!("leads");
    };
    leader.complete(Bytes::from_static(COMPLETION.as_bytes()));
    assert!(
        matches!(cache.lookup(&request).await, Lookup::Hit(_)),
        "exact tier still works"
    );
    assert_eq!(cache.stats().semantic_errors, 1);
}

/// Any JSON value, with non-integral floats only (so that `Value` equality matches key equality).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1_000i32..1_000).prop_map(|i| Value::from(f64::from(i) + 0.25)),
        "[a-z\"\\\\é \n]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Writes `value` as JSON with object keys in a seed-chosen order, seed-chosen whitespace and
/// small integers sometimes spelled as floats.
fn render(value: &Value, seed: &mut u64, out: &mut String) {
    let mut next = || {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    };
    let space = if next() % 2 == 0 { " " } else { "\n\t" };
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                entries.swap(i, (next() as usize) % (i + 1));
            }
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(space);
                out.push_str(&serde_json::to_string(key).expect("key"));
                out.push_str(space);
                out.push(':');
                render(item, seed, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(space);
                render(item, seed, out);
            }
            out.push(']');
        }
        Value::Number(n) if n.as_i64().is_some_and(|i| i.abs() < 1 << 40) && next() % 2 == 0 => {
            out.push_str(&format!("{n}.0"));
        }
        other => out.push_str(&other.to_string()),
    }
}

fn request(messages: &Value) -> Value {
    json!({"model": "m", "temperature": 0, "messages": messages})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn equivalent_requests_share_a_key(messages in json_value(), seed in any::<u64>()) {
        let request = request(&messages);
        let canonical = CacheKey::from_value(&request).expect("keyable");
        let mut seed = seed;
        let mut text = String::new();
        render(&request, &mut seed, &mut text);
        prop_assert_eq!(CacheKey::from_json(text.as_bytes()).expect("keyable"), canonical, "{}", text);
    }

    #[test]
    fn different_requests_get_different_keys(a in json_value(), b in json_value()) {
        prop_assume!(a != b);
        prop_assert_ne!(
            CacheKey::from_value(&request(&a)).expect("keyable"),
            CacheKey::from_value(&request(&b)).expect("keyable")
        );
    }
}
