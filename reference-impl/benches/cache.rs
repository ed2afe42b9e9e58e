//! Response cache hot paths, each beside the raw library operation it builds on.
//!
//! `hit_1k_request` is the whole hit path of one request: classify (cache-control, keying a
//! 1 KiB body) plus the memory lookup, for a repeat of bytes seen before (the keying is one
//! XXH3 pass that finds the remembered fingerprint). `hit_1k_new_bytes` is the same hit for
//! bytes never seen before (another `user`, which is not part of the key), so the keying is the
//! full canonical reading (`key_canonical_hash_1k`).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use http::HeaderMap;
use reference_impl::cache::{CacheConfig, CacheKey, Cacheability, Lookup, ResponseCache};

const COMPLETION: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"A short cached answer of a few words."},"finish_reason":"stop"}],"usage":{"prompt_tokens":230,"completion_tokens":9,"total_tokens":239}}"#;

/// A realistic chat request of about 1 KiB, distinct per `n`, from `user`.
fn request_body(n: u64, user: u64) -> Vec<u8> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "max_tokens": 256,
        "top_p": 1,
        "user": format!("bench-user-{user:08}"),
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are a concise assistant that answers questions about distributed systems, networking and databases. Prefer short, precise answers and cite the relevant concept by name. Keep answers under two hundred words unless asked for more detail, and use plain text without any markdown formatting."},
            {"role": "user", "content": "Explain the difference between a token bucket and a leaky bucket rate limiter, and when GCRA is preferable to either of them in a gateway."},
            {"role": "assistant", "content": "Both shape traffic. A token bucket allows bursts up to its capacity and refills at a fixed rate; a leaky bucket smooths output to a constant rate. GCRA is a token bucket expressed as one timestamp."},
            {"role": "user", "content": format!("Question {n}: and how would you share such a limit between several gateway replicas without read-then-write races, keeping the hot path fast and the failure mode safe?")}
        ]
    });
    serde_json::to_vec(&body).expect("serialize")
}

fn classify(
    cache: &ResponseCache,
    body: &[u8],
    headers: &HeaderMap,
) -> reference_impl::cache::CacheRequest {
    match cache.classify(body, headers) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(reason) => panic!("bypass {reason:?}"),
    }
}

fn cache(c: &mut Criterion) {
    let body = request_body(0, 0);
    assert!(
        (1000..1100).contains(&body.len()),
        "body is {} bytes",
        body.len()
    );
    let headers = HeaderMap::new();
    let cache = ResponseCache::new(CacheConfig::default()).expect("config");
    let request = classify(&cache, &body, &headers);
    if let Lookup::Lead(leader) = block_on(cache.lookup(&request)) {
        leader.complete(Bytes::from_static(COMPLETION));
    }

    let mut group = c.benchmark_group("cache");
    group.bench_function("key_canonical_hash_1k", |b| {
        b.iter(|| CacheKey::from_json(black_box(&body)).expect("key"))
    });
    group.bench_function("raw_xxh3_128_1k", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128(black_box(&body)))
    });
    group.bench_function("raw_serde_json_value_parse_1k", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("json"))
    });
    group.bench_function("hit_1k_request", |b| {
        b.iter(|| {
            let request = classify(&cache, black_box(&body), &headers);
            match block_on(cache.lookup(&request)) {
                Lookup::Hit(hit) => hit.body,
                _ => panic!("expected a hit"),
            }
        })
    });
    let users = AtomicU64::new(1);
    group.bench_function("hit_1k_new_bytes", |b| {
        b.iter_batched_ref(
            || request_body(0, users.fetch_add(1, Ordering::Relaxed)),
            |body| {
                let request = classify(&cache, body, &headers);
                match block_on(cache.lookup(&request)) {
                    Lookup::Hit(hit) => hit.body,
                    _ => panic!("expected a hit"),
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hit_prekeyed", |b| {
        b.iter(|| match block_on(cache.lookup(black_box(&request))) {
            Lookup::Hit(hit) => hit.body,
            _ => panic!("expected a hit"),
        })
    });
    let raw = moka::sync::Cache::<u128, Arc<Bytes>>::builder()
        .max_capacity(1 << 28)
        .build();
    raw.insert(request.key.hash(), Arc::new(Bytes::from_static(COMPLETION)));
    group.bench_function("raw_moka_get", |b| {
        b.iter(|| raw.get(black_box(&request.key.hash())))
    });

    let counter = AtomicU64::new(1);
    let fresh = || request_body(counter.fetch_add(1, Ordering::Relaxed), 0);
    group.bench_function("miss_insert_1k_request", |b| {
        b.iter_batched(
            fresh,
            |body| {
                let request = classify(&cache, &body, &headers);
                match block_on(cache.lookup(&request)) {
                    Lookup::Lead(leader) => leader.complete(Bytes::from_static(COMPLETION)),
                    _ => panic!("expected a miss"),
                }
            },
            BatchSize::SmallInput,
        )
    });
    let next = AtomicU64::new(0);
    group.bench_function("raw_moka_insert", |b| {
        b.iter(|| {
            let key = u128::from(next.fetch_add(1, Ordering::Relaxed));
            raw.insert(key, Arc::new(Bytes::from_static(COMPLETION)))
        })
    });
    group.bench_function("replay_as_sse", |b| {
        b.iter(|| reference_impl::cache::sse::replay(black_box(COMPLETION), true).expect("replay"))
    });
    group.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
