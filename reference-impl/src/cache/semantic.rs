//! The optional semantic tier: answer a request from the cached completion of a differently
//! worded but similar request for the same model.
//!
//! After an exact miss, the prompt text (the messages' text, one `role: text` line each) is
//! embedded; if a stored prompt of the same model has cosine similarity at or above
//! `threshold` and its completion is still in memory, that completion is the answer. A
//! completed answer stores its prompt's embedding. Vectors are kept unit-length, so similarity
//! is a dot product; each model keeps its most recent `max_entries_per_model` prompts and a
//! lookup scans them, which is fast enough for the few thousand entries this tier is for.
//!
//! Embeddings come from an [`Embedder`]: any async function from `(model, text)` to a vector;
//! the gateway's own is [`OpenAiEmbedder`], which calls an OpenAI-compatible `/v1/embeddings`
//! over a provider's pooled client. An embedding that
//! fails or takes longer than `timeout_ms` makes the lookup fall through to the upstream call.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{HeaderMap, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::MAX_UPSTREAM_BODY_BYTES;
use crate::pool::{Upstream, read_body};
use crate::proxy::error_chain;

/// `[cache.semantic]` configuration; off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SemanticConfig {
    pub enabled: bool,
    /// Lowest cosine similarity that counts as the same question.
    pub threshold: f32,
    pub max_entries_per_model: usize,
    /// Longest a lookup waits for an embedding.
    pub timeout_ms: u64,
    /// The OpenAI-compatible provider whose `/v1/embeddings` the gateway asks; `None` picks the
    /// first OpenAI-compatible provider in the config.
    pub provider: Option<String>,
    /// The embedding model to ask that provider for.
    pub embedding_model: String,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            threshold: 0.85,
            max_entries_per_model: 10_000,
            timeout_ms: 200,
            provider: None,
            embedding_model: "text-embedding-3-small".to_owned(),
        }
    }
}

/// Why an embedding could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbedError(pub String);

/// A boxed embedding future.
pub type EmbedFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<f32>, EmbedError>> + Send + 'a>>;

/// Turns the text of a prompt for `model` into an embedding vector.
pub trait Embedder: Send + Sync + 'static {
    fn embed<'a>(&'a self, model: &'a str, text: &'a str) -> EmbedFuture<'a>;
}

impl<F, Fut> Embedder for F
where
    F: Fn(String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<f32>, EmbedError>> + Send + 'static,
{
    fn embed<'a>(&'a self, model: &'a str, text: &'a str) -> EmbedFuture<'a> {
        Box::pin(self(model.to_owned(), text.to_owned()))
    }
}

/// Embeddings from an OpenAI-compatible `POST /v1/embeddings`.
#[derive(Debug, Clone)]
pub(crate) struct OpenAiEmbedder {
    client: Upstream,
    url: Uri,
    headers: HeaderMap,
    /// The embedding model to ask for (not the chat model being cached).
    embedding_model: String,
}

impl OpenAiEmbedder {
    /// Calls `url` (the provider's `/v1/embeddings`) over `client` with `headers` (content
    /// type and credential).
    pub fn new(
        client: Upstream,
        url: Uri,
        headers: HeaderMap,
        embedding_model: impl Into<String>,
    ) -> Self {
        Self {
            client,
            url,
            headers,
            embedding_model: embedding_model.into(),
        }
    }

    async fn request(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let failed = |error: &(dyn std::error::Error + 'static)| EmbedError(error_chain(error));
        let body = serde_json::to_vec(&serde_json::json!({
            "model": self.embedding_model,
            "input": text,
        }))
        .map_err(|e| failed(&e))?;
        let response = self
            .client
            .post(&self.url, self.headers.clone(), body.into())
            .await
            .map_err(|e| failed(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(EmbedError(format!("embeddings answered {status}")));
        }
        let body = read_body(response, MAX_UPSTREAM_BODY_BYTES)
            .await
            .map_err(|e| failed(&e))?;
        let response: Value = serde_json::from_slice(&body).map_err(|e| failed(&e))?;
        let vector = response
            .pointer("/data/0/embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| EmbedError("response has no data[0].embedding".to_owned()))?;
        vector
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| EmbedError("embedding holds a non-number".to_owned()))
    }
}

impl Embedder for OpenAiEmbedder {
    fn embed<'a>(&'a self, _model: &'a str, text: &'a str) -> EmbedFuture<'a> {
        Box::pin(self.request(text))
    }
}

/// A unit-length embedding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Vector(Box<[f32]>);

impl Vector {
    /// Normalises `raw`; `None` for an empty or all-zero vector, which matches nothing.
    fn unit(raw: Vec<f32>) -> Option<Self> {
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        (norm > 0.0 && norm.is_finite()).then(|| Self(raw.into_iter().map(|x| x / norm).collect()))
    }

    fn cosine(&self, other: &Self) -> f32 {
        if self.0.len() != other.0.len() {
            return f32::NEG_INFINITY;
        }
        self.0.iter().zip(other.0.iter()).map(|(a, b)| a * b).sum()
    }
}

/// One model's stored prompts, oldest first, each with the hash of its exact cache key.
type Prompts = VecDeque<(Vector, u128)>;

/// Stored prompt embeddings by model.
pub(crate) struct SemanticIndex {
    config: SemanticConfig,
    embedder: Arc<dyn Embedder>,
    models: Mutex<HashMap<Box<str>, Prompts>>,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SemanticIndex {
    pub fn new(config: SemanticConfig, embedder: Arc<dyn Embedder>) -> Self {
        Self {
            config,
            embedder,
            models: Mutex::default(),
        }
    }

    /// The unit embedding of `prompt`, bounded by the configured timeout.
    pub async fn embed(&self, model: &str, prompt: &str) -> Result<Option<Vector>, EmbedError> {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let raw = tokio::time::timeout(timeout, self.embedder.embed(model, prompt))
            .await
            .map_err(|_| EmbedError(format!("no embedding within {timeout:?}")))??;
        Ok(Vector::unit(raw))
    }

    /// The key hash of the most similar stored prompt at or above the threshold.
    pub fn nearest(&self, model: &str, vector: &Vector) -> Option<u128> {
        let models = self.lock();
        let (similarity, hash) = models
            .get(model)?
            .iter()
            .map(|(stored, hash)| (stored.cosine(vector), *hash))
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        (similarity >= self.config.threshold).then_some(hash)
    }

    pub fn insert(&self, model: &str, vector: Vector, hash: u128) {
        let mut models = self.lock();
        let entries = models.entry(model.into()).or_default();
        entries.retain(|(_, stored)| *stored != hash);
        if entries.len() >= self.config.max_entries_per_model {
            entries.pop_front();
        }
        entries.push_back((vector, hash));
    }

    /// Drops an entry whose completion is no longer cached.
    pub fn forget(&self, model: &str, hash: u128) {
        if let Some(entries) = self.lock().get_mut(model) {
            entries.retain(|(_, stored)| *stored != hash);
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Prompts>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The text of a request's messages, one `role: text` line each (text parts only).
pub(crate) fn prompt_text(body: &[u8]) -> Option<String> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    for message in request.get("messages")?.as_array()? {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let parts: Vec<&str> = match message.get("content") {
            Some(Value::String(content)) => vec![content.as_str()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => Vec::new(),
        };
        text.push_str(role);
        text.push_str(": ");
        text.push_str(&parts.join(" "));
        text.push('\n');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheConfig, Cacheability, Lookup, ResponseCache};
    use crate::config::PoolConfig;

    #[test]
    fn cosine_of_unit_vectors() {
        let a = Vector::unit(vec![3.0, 4.0]).expect("non-zero");
        let b = Vector::unit(vec![6.0, 8.0]).expect("non-zero");
        let c = Vector::unit(vec![-4.0, 3.0]).expect("non-zero");
        assert!((a.cosine(&b) - 1.0).abs() < 1e-6);
        assert!(a.cosine(&c).abs() < 1e-6);
        assert!(Vector::unit(vec![0.0, 0.0]).is_none());
        assert!(Vector::unit(Vec::new()).is_none());
    }

    #[test]
    fn prompt_text_joins_messages_and_text_parts() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hello"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"there"}]}]}"#;
        assert_eq!(
            prompt_text(body).as_deref(),
            Some("system: Be brief.\nuser: Hello there\n")
        );
        assert_eq!(prompt_text(b"{}"), None);
    }

    /// Through the cache: each lookup embeds its prompt with the provider's `/v1/embeddings`,
    /// and the second, differently worded prompt is answered by the semantic tier.
    #[tokio::test]
    async fn openai_embedder_calls_v1_embeddings() {
        use serde_json::json;
        use wiremock::matchers::{body_partial_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .and(header("authorization", "Bearer sk-test"))
            .and(body_partial_json(
                json!({"model": "text-embedding-3-small"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
            })))
            .expect(2)
            .mount(&server)
            .await;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("authorization", "Bearer sk-test".parse().unwrap());
        let client = Upstream::new(&PoolConfig::default(), Arc::default()).expect("no CA file");
        let url = format!("{}/v1/embeddings", server.uri()).parse().unwrap();
        let embedder = OpenAiEmbedder::new(client, url, headers, "text-embedding-3-small");
        let config = CacheConfig {
            semantic: SemanticConfig {
                enabled: true,
                ..SemanticConfig::default()
            },
            ..CacheConfig::default()
        };
        let cache = ResponseCache::with_embedder(config, Arc::new(embedder)).expect("valid");
        let classify = |content: &str| {
            let body = json!({"model": "m", "temperature": 0.0, "messages": [{"role": "user", "content": content}]});
            match cache.classify(&serde_json::to_vec(&body).unwrap(), &HeaderMap::new()) {
                Cacheability::Cacheable(request) => request,
                Cacheability::Bypass(reason) => panic!("unexpected bypass: {reason:?}"),
            }
        };
        let Lookup::Lead(leader) = cache.lookup(&classify("one wording")).await else {
            panic!("leads");
        };
        leader.complete(bytes::Bytes::from_static(
            br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        ));
        // The mock embeds everything to the same vector: any other prompt is "similar".
        let second = classify("another wording");
        assert!(matches!(cache.lookup(&second).await, Lookup::Hit(_)));
        assert_eq!(cache.stats().semantic_hits, 1);
    }
}
