//! Response cache hot paths, each beside the raw library operation it builds on.
//!
//! `hit_1k_request` is the whole hit path of one request: classify (cache-control, keying a
//! 1 KiB body) plus the memory lookup, for a repeat of bytes seen before (the keying is one
//! XXH3 pass that finds the remembered fingerprint). `hit_1k_new_bytes` is the same hit for
//! bytes never seen before (another `user`, which is not part of the key), so the keying is the
//! full canonical reading (`key_canonical_hash_1k`).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use http::HeaderMap;
use reference_impl::cache::{CacheConfig, CacheKey, Cacheability, Lookup, ResponseCache};

use common::{COMPLETION, request_body};

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
    let body = request_body(0, 0, true);
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
        b.iter(|| CacheKey::from_json(black_box(&body)).expect("key"));
    });
    group.bench_function("raw_xxh3_128_1k", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128(black_box(&body)));
    });
    group.bench_function("raw_serde_json_value_parse_1k", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("json"));
    });
    group.bench_function("hit_1k_request", |b| {
        b.iter(|| {
            let request = classify(&cache, black_box(&body), &headers);
            match block_on(cache.lookup(&request)) {
                Lookup::Hit(hit) => hit.body,
                _ => panic!("expected a hit"),
            }
        });
    });
    let users = AtomicU64::new(1);
    group.bench_function("hit_1k_new_bytes", |b| {
        b.iter_batched_ref(
            || request_body(0, users.fetch_add(1, Ordering::Relaxed), true),
            |body| {
                let request = classify(&cache, body, &headers);
                match block_on(cache.lookup(&request)) {
                    Lookup::Hit(hit) => hit.body,
                    _ => panic!("expected a hit"),
                }
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("hit_prekeyed", |b| {
        b.iter(|| match block_on(cache.lookup(black_box(&request))) {
            Lookup::Hit(hit) => hit.body,
            _ => panic!("expected a hit"),
        });
    });
    let raw = moka::sync::Cache::<u128, Arc<Bytes>>::builder()
        .max_capacity(1 << 28)
        .build();
    raw.insert(request.key.hash(), Arc::new(Bytes::from_static(COMPLETION)));
    group.bench_function("raw_moka_get", |b| {
        b.iter(|| raw.get(black_box(&request.key.hash())));
    });

    let counter = AtomicU64::new(1);
    let fresh = || request_body(counter.fetch_add(1, Ordering::Relaxed), 0, true);
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
        );
    });
    let next = AtomicU64::new(0);
    group.bench_function("raw_moka_insert", |b| {
        b.iter(|| {
            let key = u128::from(next.fetch_add(1, Ordering::Relaxed));
            raw.insert(key, Arc::new(Bytes::from_static(COMPLETION)));
        });
    });
    group.bench_function("replay_as_sse", |b| {
        b.iter(|| reference_impl::cache::sse::replay(black_box(COMPLETION), true).expect("replay"));
    });
    group.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
