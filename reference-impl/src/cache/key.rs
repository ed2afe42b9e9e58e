//! Cache keys over the canonical form of a chat completion request, and which requests may use
//! the cache at all.
//!
//! Two requests get the same key exactly when they ask the model the same thing: the same JSON
//! value, ignoring object key order, whitespace, number spelling (`1`, `1.0` and `1e0` are one
//! number) and the top-level fields that only shape delivery (`stream`, `stream_options`,
//! `user`, `metadata`, `store`). Every other field, including ones this gateway does not know,
//! is part of the key, so a new sampling parameter can never make two different requests collide.
//!
//! The key is computed in one pass over the body bytes, without building a `serde_json::Value`
//! (see `canonical`).
//!
//! Keys are namespaced by front door ([`Api`]): the same bytes can be a valid request of both
//! APIs (`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}` is), and
//! each door's entries hold an answer in its own API's shape, so an OpenAI request and an
//! Anthropic one never answer each other. Keeping each door's own shape, rather than one
//! neutral form rendered per door, is what lets the answer pass through byte for byte, hits
//! cost no translation, and coalesced followers take the leader's stream chunks as they are.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;

use super::CacheConfig;
use super::canonical::{Fingerprint, SyntaxError};
use super::memo::FingerprintMemo;
use crate::front::Api;

/// Seed that moves a Messages request's key out of the chat completions namespace.
const MESSAGES_NAMESPACE: u64 = 0x6d65_7373_6167_6573; // "messages"

/// What every cache key's string form starts with: the gateway's own keys in a shared Redis.
pub const KEY_PREFIX: &str = "ai:completion:";

/// The key of one cacheable request: `ai:completion:{model}:{hash}` in its string form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Shared: keys are cloned on every lookup and remembered fingerprints hand theirs out.
    model: Arc<str>,
    hash: u128,
}

/// Why a body has no cache key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("request body has no string `model`")]
    NoModel,
}

impl CacheKey {
    /// Keys a request body as received.
    pub fn from_json(body: &[u8]) -> Result<Self, KeyError> {
        key(Fingerprint::of(body)?)
    }

    /// Keys an already parsed request body (by writing it out first: the gateway keys the
    /// bytes it received, this is for callers that only have a value).
    pub fn from_value(body: &Value) -> Result<Self, KeyError> {
        Self::from_json(&serde_json::to_vec(body).unwrap_or_default())
    }

    /// Reads a key back from its string form (admin `DELETE cache/{key}`).
    pub fn parse(text: &str) -> Option<Self> {
        let (model, hash) = text.strip_prefix(KEY_PREFIX)?.rsplit_once(':')?;
        if hash.len() != 32 {
            return None;
        }
        Some(Self {
            model: model.into(),
            hash: u128::from_str_radix(hash, 16).ok()?,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The 128-bit digest of the canonical request (model and front door included).
    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// The key of the same body received at `api`'s front door.
    pub(crate) fn for_api(mut self, api: Api) -> Self {
        if api == Api::Anthropic {
            self.hash =
                xxhash_rust::xxh3::xxh3_128_with_seed(&self.hash.to_le_bytes(), MESSAGES_NAMESPACE);
        }
        self
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}:{:032x}", self.model, self.hash)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

fn key(fingerprint: Fingerprint) -> Result<CacheKey, KeyError> {
    Ok(CacheKey {
        model: fingerprint.model.ok_or(KeyError::NoModel)?,
        hash: fingerprint.hash,
    })
}

/// Why a request does not use the cache (`x-cache: bypass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BypassReason {
    /// The cache is disabled in the config.
    Disabled,
    /// Sampling is random (temperature above the configured maximum) and nothing forced caching.
    Temperature,
    /// The client sent `cache-control: no-store`.
    NoStore,
    /// The body is not an object with a string `model`.
    Unkeyable,
}

/// How one request may use the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cacheability {
    Bypass(BypassReason),
    Cacheable(CacheRequest),
}

/// A request that may use the cache: its key, and whether it may be answered from the cache
/// (`read` is false under `cache-control: no-cache`: go upstream, then store the fresh answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRequest {
    pub key: CacheKey,
    /// The front door it came through: the shape of the answer stored under its key.
    pub(crate) api: Api,
    pub read: bool,
    /// The messages' text, for the semantic tier (only when it is enabled).
    pub prompt: Option<String>,
}

/// OpenAI's default when a request gives no temperature.
const DEFAULT_TEMPERATURE: f64 = 1.0;

/// Applies the cacheability rules of `config` to a request body of `api` and its headers.
pub(super) fn classify(
    config: &CacheConfig,
    memo: &FingerprintMemo,
    api: Api,
    body: &[u8],
    headers: &HeaderMap,
) -> Cacheability {
    if !config.enabled {
        return Cacheability::Bypass(BypassReason::Disabled);
    }
    let directives = CacheControl::from_headers(headers);
    if directives.no_store {
        return Cacheability::Bypass(BypassReason::NoStore);
    }
    let Ok(fingerprint) = memo.fingerprint(body) else {
        return Cacheability::Bypass(BypassReason::Unkeyable);
    };
    let temperature = fingerprint.temperature.unwrap_or(DEFAULT_TEMPERATURE);
    let forced = config.force || header_is_true(headers, "x-cache-force");
    if temperature > config.max_temperature && !forced {
        return Cacheability::Bypass(BypassReason::Temperature);
    }
    match key(fingerprint) {
        Ok(key) => Cacheability::Cacheable(CacheRequest {
            key: key.for_api(api),
            api,
            read: !directives.no_cache,
            prompt: None,
        }),
        Err(_) => Cacheability::Bypass(BypassReason::Unkeyable),
    }
}

/// The request `cache-control` directives the cache honours.
#[derive(Debug, Default)]
struct CacheControl {
    no_cache: bool,
    no_store: bool,
}

impl CacheControl {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        let values = headers.get_all(http::header::CACHE_CONTROL);
        for directive in values
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
        {
            let name = directive.split('=').next().unwrap_or_default().trim();
            directives.no_cache |= name.eq_ignore_ascii_case("no-cache");
            directives.no_store |= name.eq_ignore_ascii_case("no-store");
        }
        directives
    }
}

fn header_is_true(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(value: Value) -> CacheKey {
        let from_value = CacheKey::from_value(&value).expect("keyable");
        let bytes = serde_json::to_vec(&value).expect("serialize");
        assert_eq!(from_value, CacheKey::from_json(&bytes).expect("keyable"));
        from_value
    }

    #[test]
    fn key_ignores_order_whitespace_number_spelling_and_delivery_fields() {
        let a: Value = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
        )
        .expect("json");
        let b: Value = serde_json::from_str(
            r#"{ "temperature" : 0.0, "stream": true, "user": "u1",
                 "messages" : [ {"content":"hi", "role":"user"} ], "model":"m" }"#,
        )
        .expect("json");
        assert_eq!(key(a), key(b.clone()));
        let raw =
            br#"{"model":"m","temperature":0E0,"messages":[{"role":"user","content":"\u0068i"}]}"#;
        assert_eq!(CacheKey::from_json(raw).expect("keyable"), key(b.clone()));
    }

    #[test]
    fn key_changes_with_every_meaningful_field() {
        let base = json!({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0});
        let variants = [
            json!({"model":"n","messages":[{"role":"user","content":"hi"}],"temperature":0}),
            json!({"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0}),
            json!({"model":"m","messages":[{"role":"system","content":"hi"}],"temperature":0}),
            json!({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}),
            json!({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"seed":1}),
        ];
        for variant in variants {
            assert_ne!(key(base.clone()), key(variant.clone()), "{variant}");
        }
    }

    #[test]
    fn key_string_names_model_and_hash() {
        let text = key(json!({"model":"gpt-4o","messages":[]})).to_string();
        let hash = text.strip_prefix("ai:completion:gpt-4o:").expect("prefix");
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let parsed = CacheKey::parse(&text).expect("round trip");
        assert_eq!(parsed.to_string(), text);
        assert!(CacheKey::parse("ai:completion:m:xyz").is_none());
    }

    #[test]
    fn bodies_without_a_model_have_no_key() {
        assert!(matches!(
            CacheKey::from_json(b"[1]"),
            Err(KeyError::Syntax(_))
        ));
        assert!(matches!(
            CacheKey::from_json(b"{\"messages\":[]}"),
            Err(KeyError::NoModel)
        ));
        assert!(matches!(
            CacheKey::from_json(b"{\"model\":1}"),
            Err(KeyError::Syntax(_))
        ));
        assert!(matches!(
            CacheKey::from_json(b"{\"model\":\"m\",\"temperature\":\"0\"}"),
            Err(KeyError::Syntax(_))
        ));
        assert!(matches!(
            CacheKey::from_json(b"{\"model\":\"m\"} x"),
            Err(KeyError::Syntax(_))
        ));
    }

    #[test]
    fn the_same_body_at_the_two_front_doors_has_two_keys() {
        let body = json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]});
        let chat = key(body);
        let messages = chat.clone().for_api(Api::Anthropic);
        assert_ne!(chat, messages);
        assert_eq!(chat.clone().for_api(Api::OpenAi), chat);
        assert_eq!(messages.model(), "m");
        assert_eq!(CacheKey::parse(&messages.to_string()), Some(messages));
    }

    #[test]
    fn nested_containers_do_not_collide_by_shifting_items() {
        assert_ne!(
            key(json!({"model":"m","messages":[["a"],[]]})),
            key(json!({"model":"m","messages":[[],["a"]]}))
        );
    }
}
