//! Circuit breaker hot path: `allow` + settle on a closed breaker.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use reference_impl::breaker::{BreakerConfig, CircuitBreaker};

fn breaker(c: &mut Criterion) {
    let breaker = CircuitBreaker::new("bench", BreakerConfig::default());
    let mut group = c.benchmark_group("breaker");
    group.bench_function("allow_closed", |b| {
        b.iter(|| black_box(breaker.allow().is_ok()));
    });
    group.bench_function("allow_and_record_success", |b| {
        b.iter(|| {
            if let Ok(permit) = breaker.allow() {
                permit.success();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, breaker);
criterion_main!(benches);
