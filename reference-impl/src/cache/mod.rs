//! Response cache for chat completions: exact-match keys, a byte-bounded memory tier with
//! adaptive TTLs, an optional Redis tier, and coalescing of identical requests in flight.
//!
//! Contract:
//! - [`ResponseCache::classify`] (a chat completion; the gateway's `classify_for` takes a
//!   request of either front door) decides from the body and headers whether a request may use
//!   the cache and computes its [`CacheKey`], namespaced by front door (see `key`): requests
//!   with a temperature above `max_temperature` (absent counts as 1.0) bypass it unless
//!   `force` or `x-cache-force: true`;
//!   `cache-control: no-store` bypasses it, `no-cache` skips the lookup but stores the answer.
//! - [`ResponseCache::lookup`] answers [`Lookup::Hit`] from memory, else from Redis (bounded by
//!   its timeout; a Redis failure is counted and treated as a miss), else makes the request the
//!   [`Leader`] of a flight, or a [`Follower`] of the flight already under way for the same key.
//! - With `[cache.semantic]` enabled (embeddings from the [`Embedder`] given to
//!   [`ResponseCache::with_embedder`]), an exact miss can still hit: the completion of a prompt
//!   for the same model whose embedding has cosine similarity >= `threshold` (default 0.85).
//! - The leader calls upstream, publishes each SSE chunk it sends with [`Leader::send_chunk`],
//!   and ends with [`Leader::complete`] (stores the `chat.completion` body, assembled with
//!   [`Leader::assembler`] if it streamed, and answers the followers) or
//!   [`Leader::fail`]. A leader dropped without either (its client left) releases the followers.
//! - A follower gets the leader's stream from its first chunk ([`Follower::into_stream`]) or the
//!   completion ([`Follower::wait`]). When the leader fails before the follower saw anything, the
//!   follower gets [`FollowError::Retry`] (look up again) or the error, by `on_leader_failure`.
//! - Entries hold the answer in the shape of the front door that asked: a `chat.completion`,
//!   or an Anthropic `message`. A cached answer is replayed to streaming clients as that API's
//!   SSE with [`CachedResponse::sse`] ([`sse`], [`messages_sse`]). The semantic tier serves the
//!   chat completions door only.
//!
//! ```
//! # use reference_impl::cache::{CacheConfig, Cacheability, Lookup, ResponseCache};
//! # async fn handle(body: bytes::Bytes, headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! let cache = ResponseCache::new(CacheConfig::default())?;
//! if let Cacheability::Cacheable(request) = cache.classify(&body, &headers) {
//!     match cache.lookup(&request).await {
//!         Lookup::Hit(hit) => { let _body = hit.body; }            // x-cache: hit
//!         Lookup::Lead(leader) => leader.complete("{..}".into()),   // x-cache: miss
//!         Lookup::Follow(follower) => { let _ = follower.wait().await; } // x-cache: coalesced
//!     }
//! }
//! # Ok(()) }
//! ```

mod canonical;
mod flight;
mod key;
mod memo;
mod memory;
pub mod messages_sse;
mod redis;
mod semantic;
pub mod sse;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub use canonical::SyntaxError;
pub use flight::FlightError;
use flight::{Flight, Flights, Next, Outcome, Role};
pub use key::{BypassReason, CacheKey, CacheRequest, Cacheability, KEY_PREFIX, KeyError};
use memo::FingerprintMemo;
use memory::{Encoded, MemoryTier};
pub use memory::{TtlClass, TtlConfig};
pub use redis::RedisCacheConfig;
use redis::RedisTier;
pub(crate) use semantic::OpenAiEmbedder;
use semantic::SemanticIndex;
pub use semantic::{EmbedError, EmbedFuture, Embedder, SemanticConfig};

use crate::front::Api;

/// `[cache]` configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Memory tier bound: bodies as stored plus a fixed overhead per entry.
    pub max_bytes: u64,
    /// Bodies larger than this are stored LZ4-compressed.
    pub compress_threshold_bytes: usize,
    /// Requests with a higher temperature bypass the cache unless forced (absent means 1.0).
    pub max_temperature: f64,
    /// Cache regardless of temperature (like `x-cache-force: true` on every request).
    pub force: bool,
    /// Coalesce identical requests in flight.
    pub coalesce: bool,
    pub on_leader_failure: LeaderFailure,
    pub ttl: TtlConfig,
    pub redis: Option<RedisCacheConfig>,
    pub semantic: SemanticConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 256 * 1024 * 1024,
            compress_threshold_bytes: 1024,
            max_temperature: 0.0,
            force: false,
            coalesce: true,
            on_leader_failure: LeaderFailure::Retry,
            ttl: TtlConfig::default(),
            redis: None,
            semantic: SemanticConfig::default(),
        }
    }
}

/// What followers do when their leader fails before they received anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderFailure {
    /// Look up again: one of them leads the next attempt.
    Retry,
    /// Return the leader's error.
    Error,
}

/// Errors building a cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache.redis.url: {0}")]
    RedisUrl(#[source] ::redis::RedisError),
    #[error("cache.ttl: every class needs a positive lifetime")]
    Ttl,
    #[error("cache.semantic.enabled needs an embedder (ResponseCache::with_embedder)")]
    NoEmbedder,
    #[error("cache.semantic.threshold must be in (0, 1], got {0}")]
    Threshold(f32),
}

/// The Redis tier could not carry out a change (memory has carried it out).
#[derive(Debug, thiserror::Error)]
#[error("the Redis tier was not changed: {0}")]
pub struct RedisTierFailed(String);

impl From<redis::RedisTierError> for RedisTierFailed {
    fn from(error: redis::RedisTierError) -> Self {
        Self(error.to_string())
    }
}

/// Counters and sizes for `/metrics` and `/admin/performance/cache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Answered from the cache (memory or Redis).
    pub hits: u64,
    /// Of `hits`, answered from Redis.
    pub redis_hits: u64,
    /// Led an upstream call.
    pub misses: u64,
    /// Waited for another request's upstream call.
    pub coalesced: u64,
    /// Did not use the cache at all.
    pub bypassed: u64,
    /// Removed to stay within `max_bytes`.
    pub evictions: u64,
    /// Removed when their TTL ran out.
    pub expirations: u64,
    /// Redis commands that failed or timed out (the request went on without Redis).
    pub redis_errors: u64,
    /// Of `hits`, answered by a similar prompt's completion.
    pub semantic_hits: u64,
    /// Embeddings that failed or timed out (the request went upstream).
    pub semantic_errors: u64,
    pub bytes: u64,
    pub entries: u64,
    pub in_flight: u64,
}

/// An answer served from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// The `chat.completion` (or, for a request to `/v1/messages`, `message`) JSON body.
    pub body: Bytes,
    /// The front door whose shape `body` has.
    pub(crate) api: Api,
}

impl CachedResponse {
    /// The body as SSE events for a streaming client (`include_usage` only matters to the
    /// chat completions form: an Anthropic stream always reports usage).
    pub fn sse(&self, include_usage: bool) -> Result<Vec<Bytes>, sse::SseError> {
        replay(self.api, &self.body, include_usage)
    }
}

/// A stored answer of `api` as that API's SSE events.
fn replay(api: Api, body: &[u8], include_usage: bool) -> Result<Vec<Bytes>, sse::SseError> {
    match api {
        Api::OpenAi => sse::replay(body, include_usage),
        Api::Anthropic => messages_sse::replay(body),
    }
}

/// Folds a live stream's event payloads into the body to store, in the leader's API's shape.
#[derive(Debug)]
pub enum Assembler {
    Chat(sse::CompletionAssembler),
    Message(messages_sse::MessageAssembler),
}

impl Assembler {
    /// Adds one event's `data:` payload.
    pub fn push(&mut self, data: &str) -> Result<(), sse::SseError> {
        match self {
            Self::Chat(assembler) => assembler.push(data),
            Self::Message(assembler) => assembler.push(data),
        }
    }

    /// The assembled body.
    pub fn finish(self) -> Result<Bytes, sse::SseError> {
        match self {
            Self::Chat(assembler) => assembler.finish(),
            Self::Message(assembler) => assembler.finish(),
        }
    }
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup {
    Hit(CachedResponse),
    Lead(Leader),
    Follow(Follower),
}

/// The response cache. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: CacheConfig,
    memory: MemoryTier,
    redis: Option<RedisTier>,
    semantic: Option<SemanticIndex>,
    memo: FingerprintMemo,
    flights: Flights,
    hits: AtomicU64,
    redis_hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    bypassed: AtomicU64,
    redis_errors: AtomicU64,
    semantic_hits: AtomicU64,
    semantic_errors: AtomicU64,
}

impl ResponseCache {
    /// A cache without the semantic tier (which needs [`ResponseCache::with_embedder`]).
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        if config.semantic.enabled {
            return Err(CacheError::NoEmbedder);
        }
        Self::build(config, None)
    }

    /// A cache whose semantic tier, if enabled, embeds prompts with `embedder`.
    pub fn with_embedder(
        config: CacheConfig,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self, CacheError> {
        Self::build(config, Some(embedder))
    }

    fn build(config: CacheConfig, embedder: Option<Arc<dyn Embedder>>) -> Result<Self, CacheError> {
        let ttl = &config.ttl;
        if ttl.frequent_secs == 0 || ttl.moderate_secs == 0 || ttl.rare_secs == 0 {
            return Err(CacheError::Ttl);
        }
        let threshold = config.semantic.threshold;
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(CacheError::Threshold(threshold));
        }
        let redis = config
            .redis
            .as_ref()
            .map(RedisTier::new)
            .transpose()
            .map_err(CacheError::RedisUrl)?;
        let semantic = embedder
            .filter(|_| config.semantic.enabled)
            .map(|embedder| SemanticIndex::new(config.semantic.clone(), embedder));
        Ok(Self {
            inner: Arc::new(Inner {
                memory: MemoryTier::new(config.max_bytes, config.ttl.clone()),
                redis,
                semantic,
                memo: FingerprintMemo::default(),
                flights: Flights::default(),
                hits: AtomicU64::new(0),
                redis_hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                bypassed: AtomicU64::new(0),
                redis_errors: AtomicU64::new(0),
                semantic_hits: AtomicU64::new(0),
                semantic_errors: AtomicU64::new(0),
                config,
            }),
        })
    }

    /// Applies the cacheability rules to one chat completion request body, as received, and
    /// its headers.
    pub fn classify(&self, body: &[u8], headers: &HeaderMap) -> Cacheability {
        self.classify_for(Api::OpenAi, body, headers)
    }

    /// Applies the cacheability rules to one request body of `api`, as received, and its
    /// headers.
    pub(crate) fn classify_for(&self, api: Api, body: &[u8], headers: &HeaderMap) -> Cacheability {
        let inner = &self.inner;
        let mut decision = key::classify(&inner.config, &inner.memo, api, body, headers);
        match &mut decision {
            Cacheability::Bypass(_) => {
                self.inner.bypassed.fetch_add(1, Ordering::Relaxed);
            }
            // Its index holds chat completions only.
            Cacheability::Cacheable(request)
                if self.inner.semantic.is_some() && api == Api::OpenAi =>
            {
                request.prompt = semantic::prompt_text(body);
            }
            Cacheability::Cacheable(_) => {}
        }
        decision
    }

    /// Finds the answer to `request`, or the role it takes in getting one.
    pub async fn lookup(&self, request: &CacheRequest) -> Lookup {
        let inner = &self.inner;
        let (hash, api) = (request.key.hash(), request.api);
        if request.read
            && let Some(hit) = self.memory_hit(hash, api)
        {
            return Lookup::Hit(hit);
        }
        let flight = match (request.read && inner.config.coalesce).then(|| inner.flights.join(hash))
        {
            Some(Role::Follower(flight)) => {
                inner.coalesced.fetch_add(1, Ordering::Relaxed);
                return Lookup::Follow(Follower {
                    flight,
                    api,
                    delivered: 0,
                    policy: inner.config.on_leader_failure,
                });
            }
            Some(Role::Leader(flight)) => Some(flight),
            None => None,
        };
        let mut leader = Leader {
            cache: Arc::clone(inner),
            key: request.key.clone(),
            api,
            flight,
            embedding: None,
        };
        if request.read {
            // A leader that finished between the memory miss and the join has stored its answer.
            let hit = match self.memory_hit(hash, api) {
                Some(hit) => Some(hit),
                None => self.redis_hit(&request.key, api).await,
            };
            if let Some(hit) = hit {
                leader.settle(Outcome::Completed(hit.body.clone()));
                return Lookup::Hit(hit);
            }
            if let Some(hit) = self.semantic_hit(request, &mut leader).await {
                leader.settle(Outcome::Completed(hit.body.clone()));
                return Lookup::Hit(hit);
            }
        }
        inner.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Lead(leader)
    }

    /// Drops every entry from every tier: memory, the semantic index, and this cache's keys
    /// in Redis (by [`KEY_PREFIX`], nothing else there). Memory is always cleared; returns how
    /// many Redis keys were removed (`None` without a Redis tier), or why Redis was not cleared.
    pub async fn clear(&self) -> Result<Option<u64>, RedisTierFailed> {
        self.inner.memory.clear();
        if let Some(semantic) = &self.inner.semantic {
            semantic.clear();
        }
        match &self.inner.redis {
            Some(redis) => redis.clear().await.map(Some).map_err(RedisTierFailed::from),
            None => Ok(None),
        }
    }

    /// Drops one entry from memory and from Redis.
    pub async fn remove(&self, key: &CacheKey) -> Result<(), RedisTierFailed> {
        self.inner.memory.remove(key.hash());
        match &self.inner.redis {
            Some(redis) => redis
                .remove(&key.to_string())
                .await
                .map_err(RedisTierFailed::from),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = &self.inner;
        inner.memory.settle();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let removals = inner.memory.removals();
        CacheStats {
            hits: load(&inner.hits),
            redis_hits: load(&inner.redis_hits),
            misses: load(&inner.misses),
            coalesced: load(&inner.coalesced),
            bypassed: load(&inner.bypassed),
            evictions: load(&removals.evicted),
            expirations: load(&removals.expired),
            redis_errors: load(&inner.redis_errors),
            semantic_hits: load(&inner.semantic_hits),
            semantic_errors: load(&inner.semantic_errors),
            bytes: inner.memory.bytes(),
            entries: inner.memory.entries(),
            in_flight: inner.flights.in_flight() as u64,
        }
    }

    fn memory_hit(&self, hash: u128, api: Api) -> Option<CachedResponse> {
        let body = self.inner.memory.get(hash)?.encoded.decode()?;
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        Some(CachedResponse { body, api })
    }

    /// Looks for a similar prompt's completion; otherwise leaves the prompt's embedding with
    /// the leader, which stores it with the completion.
    async fn semantic_hit(
        &self,
        request: &CacheRequest,
        leader: &mut Leader,
    ) -> Option<CachedResponse> {
        let inner = &self.inner;
        let (semantic, prompt) = (inner.semantic.as_ref()?, request.prompt.as_deref()?);
        let model = request.key.model();
        let vector = match semantic.embed(model, prompt).await {
            Ok(vector) => vector?,
            Err(error) => {
                inner.semantic_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "semantic cache lookup skipped");
                return None;
            }
        };
        if let Some(hash) = semantic.nearest(model, &vector) {
            if let Some(hit) = self.memory_hit(hash, request.api) {
                inner.semantic_hits.fetch_add(1, Ordering::Relaxed);
                return Some(hit);
            }
            semantic.forget(model, hash);
        }
        leader.embedding = Some(vector);
        None
    }

    /// Reads Redis and promotes a hit into memory; failures count and read as a miss.
    async fn redis_hit(&self, key: &CacheKey, api: Api) -> Option<CachedResponse> {
        let inner = &self.inner;
        let redis = inner.redis.as_ref()?;
        let encoded = match redis.get(&key.to_string()).await {
            Ok(found) => found?,
            Err(error) => {
                inner.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "cache lookup continues without redis");
                return None;
            }
        };
        let Some(body) = encoded.decode() else {
            inner.redis_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        inner.memory.insert(key.hash(), encoded);
        inner.hits.fetch_add(1, Ordering::Relaxed);
        inner.redis_hits.fetch_add(1, Ordering::Relaxed);
        Some(CachedResponse { body, api })
    }
}

/// The request that calls upstream for its key. Move it into the task that streams the answer.
#[derive(Debug)]
pub struct Leader {
    cache: Arc<Inner>,
    key: CacheKey,
    /// The front door whose shape the answer has.
    api: Api,
    /// `None` once settled, or when the request does not coalesce.
    flight: Option<Arc<Flight>>,
    /// The prompt's embedding, stored with the completion (semantic tier only).
    embedding: Option<semantic::Vector>,
}

impl Leader {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// An assembler for this leader's streamed answer, in its front door's shape.
    pub fn assembler(&self) -> Assembler {
        match self.api {
            Api::OpenAi => Assembler::Chat(sse::CompletionAssembler::default()),
            Api::Anthropic => Assembler::Message(messages_sse::MessageAssembler::default()),
        }
    }

    /// Publishes one SSE event, as sent to the leader's own client, to streaming followers.
    pub fn send_chunk(&self, chunk: Bytes) {
        if let Some(flight) = &self.flight {
            flight.push_chunk(chunk);
        }
    }

    /// Stores a successful answer body (memory, then Redis in the background) and
    /// answers the followers. Upstream errors go to [`Leader::fail`], never here.
    pub fn complete(mut self, body: Bytes) {
        let encoded = Encoded::encode(body.clone(), self.cache.config.compress_threshold_bytes);
        self.write_redis(&encoded);
        self.cache.memory.insert(self.key.hash(), encoded);
        if let (Some(semantic), Some(vector)) = (&self.cache.semantic, self.embedding.take()) {
            semantic.insert(self.key.model(), vector, self.key.hash());
        }
        self.settle(Outcome::Completed(body));
    }

    /// Reports that upstream failed; followers retry or receive `error`, by config.
    pub fn fail(mut self, error: FlightError) {
        self.settle(Outcome::Failed(error));
    }

    fn write_redis(&self, encoded: &Encoded) {
        let (Some(redis), Ok(runtime)) = (&self.cache.redis, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (redis, cache, key, encoded) = (
            redis.clone(),
            Arc::clone(&self.cache),
            self.key.to_string(),
            encoded.clone(),
        );
        runtime.spawn(async move {
            if let Err(error) = redis.set(&key, &encoded).await {
                cache.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "cache write continues without redis");
            }
        });
    }

    fn settle(&mut self, outcome: Outcome) {
        if let Some(flight) = self.flight.take() {
            flight.finish(outcome);
            self.cache.flights.remove(self.key.hash(), &flight);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.settle(Outcome::Abandoned);
    }
}

/// Why a follower got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The leader failed before this follower received anything: look up again.
    #[error("the coalesced request failed; retry")]
    Retry,
    #[error(transparent)]
    Failed(FlightError),
}

/// Where a follower's stream is.
enum FollowState {
    Live(Follower),
    Replay(std::vec::IntoIter<Bytes>),
    Ended,
}

/// A request waiting for another request's upstream call (`x-cache: coalesced`).
#[derive(Debug)]
pub struct Follower {
    flight: Arc<Flight>,
    /// The front door whose shape the leader's answer has.
    api: Api,
    /// Chunks already handed to this follower's client.
    delivered: usize,
    policy: LeaderFailure,
}

impl Follower {
    /// Waits for the completion body (for a non-streaming client).
    pub async fn wait(mut self) -> Result<Bytes, FollowError> {
        loop {
            match self.flight.next(self.delivered).await {
                Next::Chunk(_) => self.delivered += 1,
                Next::Done(outcome) => {
                    // Skipped chunks were never delivered: retrying cannot duplicate anything.
                    self.delivered = 0;
                    return self.resolve(outcome);
                }
            }
        }
    }

    /// The leader's SSE events from the first one; if the leader did not stream, the completion
    /// replayed as SSE. Ends after the last event or with one error.
    pub fn into_stream(
        self,
        include_usage: bool,
    ) -> impl Stream<Item = Result<Bytes, FollowError>> + Send + 'static {
        futures::stream::unfold(FollowState::Live(self), move |state| async move {
            match state {
                FollowState::Live(mut follower) => {
                    match follower.flight.next(follower.delivered).await {
                        Next::Chunk(chunk) => {
                            follower.delivered += 1;
                            Some((Ok(chunk), FollowState::Live(follower)))
                        }
                        Next::Done(outcome) => follower.finish(outcome, include_usage),
                    }
                }
                FollowState::Replay(mut events) => {
                    let event = events.next()?;
                    Some((Ok(event), FollowState::Replay(events)))
                }
                FollowState::Ended => None,
            }
        })
    }

    /// The end of a stream: nothing more after the leader's own chunks, a replay of the
    /// completion if the leader did not stream, or the error.
    fn finish(
        self,
        outcome: Outcome,
        include_usage: bool,
    ) -> Option<(Result<Bytes, FollowError>, FollowState)> {
        let streamed = self.delivered > 0;
        let body = match self.resolve(outcome) {
            Ok(_) if streamed => return None,
            Ok(body) => body,
            Err(error) => return Some((Err(error), FollowState::Ended)),
        };
        match replay(self.api, &body, include_usage) {
            Ok(events) => {
                let mut events = events.into_iter();
                let first = events.next()?;
                Some((Ok(first), FollowState::Replay(events)))
            }
            Err(error) => Some((
                Err(FollowError::Failed(FlightError {
                    status: 502,
                    message: error.to_string(),
                })),
                FollowState::Ended,
            )),
        }
    }

    fn resolve(&self, outcome: Outcome) -> Result<Bytes, FollowError> {
        let error = match outcome {
            Outcome::Completed(body) => return Ok(body),
            Outcome::Failed(error) => error,
            Outcome::Abandoned => FlightError {
                status: 502,
                message: "the coalesced upstream request was cancelled".to_owned(),
            },
        };
        if self.delivered == 0 && self.policy == LeaderFailure::Retry {
            Err(FollowError::Retry)
        } else {
            Err(FollowError::Failed(error))
        }
    }
}
