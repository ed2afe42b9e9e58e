//! Instruction counts (callgrind) of the gateway's per-request hot paths: the numbers the CI gate
//! compares with the merge-base (`--callgrind-limits='ir=5%'`). Counts, unlike wall time, do not
//! move with the machine's load, so a 5% limit catches real extra work and nothing else.
//! Needs valgrind and `gungraun-runner` of the same version as the library.
//!
//! Everything goes through the crate's public API. Each bench's input is built by its setup
//! expression (not counted); each returns what it worked on, so dropping it is not counted
//! either. `pipeline` is one whole non-streamed request through `chat_completions` answered
//! from the cache: a miss would go upstream over a socket, which has no place in a count.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::executor::block_on;
use gungraun::{library_benchmark, library_benchmark_group, main};
use http::{HeaderMap, header};
use reference_impl::breaker::{BreakerConfig, CircuitBreaker};
use reference_impl::cache::{CacheConfig, CacheRequest, Cacheability, Lookup, ResponseCache};
use reference_impl::config::ApiKey;
use reference_impl::limiter::{Decision, KeyId, LimiterConfig, RateLimiter, Tier};
use reference_impl::pipeline::chat_completions;
use reference_impl::proxy::sse::{self, SseFramer};
use reference_impl::proxy::translate::to_anthropic::StreamTranslator;
use reference_impl::queue::{Priority, QueueConfig, RequestQueue};
use reference_impl::server::Shared;
use reference_impl::{GatewayConfig, ProviderConfig, ProviderKind};

use common::{COMPLETION, request_body};

const API_KEY: &str = "sk-bench-0123456789abcdef";

/// A cache that has answered `body` once: its bytes are remembered and the answer is stored.
fn warm_cache(body: &[u8]) -> ResponseCache {
    let cache = ResponseCache::new(CacheConfig::default()).expect("config");
    if let Lookup::Lead(leader) = block_on(cache.lookup(&classify(&cache, body))) {
        leader.complete(Bytes::from_static(COMPLETION));
    }
    cache
}

fn classify(cache: &ResponseCache, body: &[u8]) -> CacheRequest {
    match cache.classify(body, &HeaderMap::new()) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(reason) => panic!("bypass {reason:?}"),
    }
}

/// A warm cache and a 1 KiB body it has seen (`repeated`) or bytes it has not (another user,
/// so the same key: the keying reads the whole body).
fn cache_and_body(repeated: bool) -> (ResponseCache, Vec<u8>) {
    let cache = warm_cache(&request_body(0, 0, false));
    let user = if repeated { 0 } else { 1 };
    (cache, request_body(0, user, false))
}

// `ResponseCache::classify` of a 1 KiB request: the cache key, from bytes seen before (one
// XXH3 pass finds the remembered fingerprint) or new bytes (the full canonical reading).
#[library_benchmark]
#[bench::repeated_bytes(cache_and_body(true))]
#[bench::new_bytes(cache_and_body(false))]
fn key((cache, body): (ResponseCache, Vec<u8>)) -> (ResponseCache, Vec<u8>, Cacheability) {
    let decision = black_box(cache.classify(black_box(&body), &HeaderMap::new()));
    (cache, body, decision)
}

fn cache_and_request() -> (ResponseCache, CacheRequest) {
    let body = request_body(0, 0, false);
    let cache = warm_cache(&body);
    let request = classify(&cache, &body);
    (cache, request)
}

// `ResponseCache::lookup` of a keyed request whose answer is in memory.
#[library_benchmark]
#[bench::memory(cache_and_request())]
fn hit((cache, request): (ResponseCache, CacheRequest)) -> (ResponseCache, CacheRequest, Bytes) {
    let body = match block_on(cache.lookup(black_box(&request))) {
        Lookup::Hit(hit) => hit.body,
        _ => panic!("expected a hit"),
    };
    (cache, request, black_box(body))
}

fn limiter_and_key() -> (RateLimiter, KeyId) {
    let limiter = RateLimiter::new(LimiterConfig::default()).expect("config");
    let key = KeyId::from_api_key(API_KEY);
    // The key's bucket exists, as for every request after a caller's first.
    limiter.check_local_now(&key, Tier::Pro, "gpt-4o-mini");
    (limiter, key)
}

// `RateLimiter::check_local_now` on a known key with quota left.
#[library_benchmark]
#[bench::allowed(limiter_and_key())]
fn limiter((limiter, key): (RateLimiter, KeyId)) -> (RateLimiter, KeyId, Decision) {
    let decision = limiter.check_local_now(black_box(&key), Tier::Pro, "gpt-4o-mini");
    (limiter, key, black_box(decision))
}

// `CircuitBreaker::allow` and the success recorded on a closed breaker.
#[library_benchmark]
#[bench::closed(CircuitBreaker::new("bench", BreakerConfig::default()))]
fn breaker(breaker: CircuitBreaker) -> CircuitBreaker {
    if let Ok(permit) = black_box(&breaker).allow() {
        permit.success();
    }
    breaker
}

// `RequestQueue::acquire` with a free slot, and the release when the permit drops.
#[library_benchmark]
#[bench::free_slot(RequestQueue::new(QueueConfig::default()))]
fn queue(queue: RequestQueue) -> RequestQueue {
    let permit = block_on(queue.acquire(black_box(Priority::NORMAL))).expect("free slot");
    drop(permit);
    queue
}

/// One OpenAI streaming chunk of a few words, as an upstream sends it in one read.
fn openai_chunk() -> (SseFramer, Bytes) {
    let chunk = Bytes::from_static(
        br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" a few words"},"logprobs":null,"finish_reason":null}]}

"#,
    );
    (SseFramer::default(), chunk)
}

// Relaying one upstream chunk of a pass-through stream: framing it into whole events and
// reading them (the relay's structural check of each event is private to the proxy).
#[library_benchmark]
#[bench::one_event(openai_chunk())]
fn sse_relay((mut framer, chunk): (SseFramer, Bytes)) -> (SseFramer, Option<Bytes>, usize) {
    let block = framer.push(black_box(chunk)).expect("within the limit");
    let events = block.as_deref().map_or(0, |b| {
        sse::events(b).filter(|e| e.data.starts_with(b"{")).count()
    });
    (framer, block, black_box(events))
}

/// A translator past `message_start`, and one text delta event.
fn anthropic_delta() -> (StreamTranslator, &'static [u8], BytesMut) {
    let mut translator = StreamTranslator::new(false, 1);
    let mut out = BytesMut::with_capacity(1024);
    translator
        .event(
            "message_start",
            br#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[],"stop_reason":null,"usage":{"input_tokens":230,"output_tokens":1}}}"#,
            &mut out,
        )
        .expect("message_start");
    out.clear();
    let delta: &[u8] = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" a few words"}}"#;
    (translator, delta, out)
}

// `to_anthropic::StreamTranslator::event` (an OpenAI client served from an Anthropic
// upstream): one Anthropic text delta into one OpenAI chunk.
#[library_benchmark]
#[bench::text_delta(anthropic_delta())]
fn anthropic_translate(
    (mut translator, data, mut out): (StreamTranslator, &'static [u8], BytesMut),
) -> (StreamTranslator, BytesMut) {
    translator
        .event("content_block_delta", black_box(data), &mut out)
        .expect("translated");
    (translator, black_box(out))
}

/// The gateway's shared state (cache and limiter on, one API key) with the answer to the
/// request cached, the request, and a runtime to run the handler on.
fn gateway_and_request() -> (tokio::runtime::Runtime, Arc<Shared>, Request) {
    let mut config = GatewayConfig::with_providers(vec![ProviderConfig::new(
        "mock",
        ProviderKind::OpenAi,
        "http://127.0.0.1:9",
    )]);
    config.cache.enabled = true;
    config.limiter.enabled = true;
    config.api_keys = vec![ApiKey {
        key: API_KEY.to_owned(),
        tier: Tier::Pro,
    }];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = Arc::new(
        runtime
            .block_on(async { Shared::new(config) })
            .expect("config"),
    );
    let body = request_body(0, 0, false);
    if let Some(cache) = shared.cache()
        && let Lookup::Lead(leader) = block_on(cache.lookup(&classify(cache, &body)))
    {
        leader.complete(Bytes::from_static(COMPLETION));
    }
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
        .body(Body::from(body))
        .expect("request");
    (runtime, shared, request)
}

// `pipeline::chat_completions`: read, admit (key hash, limiter), cache lookup and the answer
// with its headers, for one non-streamed request the cache holds.
#[library_benchmark]
#[bench::cached_answer(gateway_and_request())]
fn pipeline(
    (runtime, shared, request): (tokio::runtime::Runtime, Arc<Shared>, Request),
) -> (tokio::runtime::Runtime, Arc<Shared>, Response) {
    let response = runtime.block_on(chat_completions(
        State(Arc::clone(&shared)),
        black_box(request),
    ));
    assert!(response.status().is_success(), "{}", response.status());
    (runtime, shared, black_box(response))
}

library_benchmark_group!(name = cache, benchmarks = [key, hit]);
library_benchmark_group!(name = admission, benchmarks = [limiter, breaker, queue]);
library_benchmark_group!(name = stream, benchmarks = [sse_relay, anthropic_translate]);
library_benchmark_group!(name = request, benchmarks = [pipeline]);

main!(library_benchmark_groups = cache, admission, stream, request);
