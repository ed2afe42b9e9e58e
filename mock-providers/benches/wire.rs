//! Wall-clock cost of the mock's per-request hot paths, for people (`cargo bench -p
//! mock-providers --bench wire`). CI gates on the instruction counts of the same paths in
//! `gungraun_wire.rs` instead, since wall time is too noisy on shared machines.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mock_providers::{ChatRequest, Provider};

const PROVIDERS: [(Provider, &str); 2] = [
    (Provider::OpenAi, "openai"),
    (Provider::Anthropic, "anthropic"),
];

/// Output tokens of the short answer (the `fast` profile) and of a long one.
const TOKENS: [usize; 2] = [16, 256];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (provider, name) in PROVIDERS {
        let body = common::request_body(provider);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| ChatRequest::parse(provider, black_box(&body)));
        });
    }
    group.finish();
}

fn completion(c: &mut Criterion) {
    let mut group = c.benchmark_group("completion");
    for (provider, name) in PROVIDERS {
        let request = common::request(provider);
        for tokens in TOKENS {
            group.bench_with_input(BenchmarkId::new(name, tokens), &tokens, |b, &tokens| {
                b.iter(|| common::completion(black_box(&request), tokens));
            });
        }
    }
    group.finish();
}

fn sse_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_encode");
    for (provider, name) in PROVIDERS {
        let request = common::request(provider);
        for tokens in TOKENS {
            let completion = common::completion(&request, tokens);
            let bytes = common::encode(&request, &completion).0.len();
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_with_input(
                BenchmarkId::new(name, tokens),
                &completion,
                |b, completion| b.iter(|| common::encode(&request, black_box(completion))),
            );
        }
    }
    group.finish();
}

fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("answer");
    for (provider, name) in PROVIDERS {
        let body = common::request_body(provider);
        group.bench_function(BenchmarkId::new(name, 256), |b| {
            b.iter(|| common::answer(provider, black_box(&body), 256));
        });
    }
    group.finish();
}

criterion_group!(benches, parse, completion, sse_encode, answer);
criterion_main!(benches);
