//! Rate limiter check on the local buckets (a `KeyId` is hashed once per request, at
//! authentication; its cost is measured separately).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use reference_impl::limiter::{KeyId, LimiterConfig, RateLimiter, Tier, TierLimit};

fn limiter(c: &mut Criterion) {
    let mut config = LimiterConfig::default();
    // Large enough that every iteration is admitted: the common path.
    config.tiers.pro = TierLimit {
        requests: u64::from(u32::MAX),
        period_secs: 1,
        tokens_per_minute: None,
    };
    let limiter = RateLimiter::new(config).expect("config");
    let key = KeyId::from_api_key("sk-bench-0123456789abcdef");
    let keys: Vec<KeyId> = (0..10_000)
        .map(|i| KeyId::from_api_key(&format!("sk-bench-{i}")))
        .collect();

    let mut group = c.benchmark_group("limiter");
    group.bench_function("check_one_key", |b| {
        b.iter(|| limiter.check_local_now(black_box(&key), Tier::Pro, "gpt-4o-mini"));
    });
    let mut next = 0;
    group.bench_function("check_10k_keys", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            limiter.check_local_now(black_box(&keys[next]), Tier::Pro, "gpt-4o-mini")
        });
    });
    group.bench_function("key_id_from_api_key", |b| {
        b.iter(|| KeyId::from_api_key(black_box("sk-bench-0123456789abcdef")));
    });
    group.finish();
}

criterion_group!(benches, limiter);
criterion_main!(benches);
