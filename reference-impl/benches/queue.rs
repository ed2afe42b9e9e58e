//! Queue admit + release with free slots, beside the tokio semaphore it could be built on.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use reference_impl::queue::{Priority, QueueConfig, RequestQueue};

fn queue(c: &mut Criterion) {
    let queue = RequestQueue::new(QueueConfig::default());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(10));
    let mut group = c.benchmark_group("queue");
    group.bench_function("admit_release_uncontended", |b| {
        b.iter(|| {
            let permit = block_on(queue.acquire(black_box(Priority::NORMAL))).expect("free slot");
            drop(permit);
        });
    });
    group.bench_function("raw_tokio_semaphore_acquire_release", |b| {
        b.iter(|| {
            let permit = block_on(Arc::clone(&semaphore).acquire_owned()).expect("open");
            drop(permit);
        });
    });
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
