//! Cache keys over the canonical form of a chat completion request, and which requests may use
//! the cache at all.
//!
//! Two requests get the same key exactly when they ask the model the same thing: the same JSON
//! value, ignoring object key order, whitespace, number spelling (`1`, `1.0` and `1e0` are one
//! number) and the top-level fields that only shape delivery (`stream`, `stream_options`,
//! `user`, `metadata`, `store`). Every other field, including ones this gateway does not know,
//! is part of the key, so a new sampling parameter can never make two different requests collide.
//!
//! The key is computed in one pass over the body bytes, without building a `serde_json::Value`:
//! every JSON value reduces to a 128-bit XXH3 digest seeded by its type; arrays hash their
//! items' digests in order, objects hash their fields' digests sorted, which is what makes key
//! order irrelevant without sorting any strings.

use std::fmt;

use http::HeaderMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use xxhash_rust::xxh3::{Xxh3, xxh3_128_with_seed};

use super::CacheConfig;

/// Top-level request fields that do not change the completion.
const DELIVERY_FIELDS: [&str; 5] = ["metadata", "store", "stream", "stream_options", "user"];

/// The key of one cacheable request: `ai:completion:{model}:{hash}` in its string form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    model: Box<str>,
    hash: u128,
}

/// Why a body has no cache key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("request body is not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("request body has no string `model`")]
    NoModel,
}

impl CacheKey {
    /// Keys a request body as received.
    pub fn from_json(body: &[u8]) -> Result<Self, KeyError> {
        Fingerprint::of_json(body)?.key()
    }

    /// Keys an already parsed request body; equal to [`CacheKey::from_json`] of its bytes.
    pub fn from_value(body: &Value) -> Result<Self, KeyError> {
        Fingerprint::of_value(body)?.key()
    }

    /// Reads a key back from its string form (admin `DELETE cache/{key}`).
    pub fn parse(text: &str) -> Option<Self> {
        let (model, hash) = text.strip_prefix("ai:completion:")?.rsplit_once(':')?;
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

    /// The 128-bit digest of the canonical request (model included).
    pub fn hash(&self) -> u128 {
        self.hash
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ai:completion:{}:{:032x}", self.model, self.hash)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

/// What one pass over a request body learns: its digest and the fields the rules look at.
struct Fingerprint {
    hash: u128,
    model: Option<Box<str>>,
    temperature: Option<f64>,
}

impl Fingerprint {
    fn of_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let fingerprint = deserializer.deserialize_map(TopLevel)?;
        deserializer.end()?;
        Ok(fingerprint)
    }

    fn of_value(body: &Value) -> Result<Self, serde_json::Error> {
        body.deserialize_map(TopLevel)
    }

    fn key(self) -> Result<CacheKey, KeyError> {
        Ok(CacheKey {
            model: self.model.ok_or(KeyError::NoModel)?,
            hash: self.hash,
        })
    }
}

// Type tags, used as hash seeds so that values of different types never share a digest.
const NULL: u64 = 1;
const FALSE: u64 = 2;
const TRUE: u64 = 3;
const INTEGER: u64 = 4;
const FLOAT: u64 = 5;
const STRING: u64 = 6;
const ARRAY: u64 = 7;
const OBJECT: u64 = 8;
const FIELD: u64 = 9;

fn integer(value: i128) -> u128 {
    xxh3_128_with_seed(&value.to_le_bytes(), INTEGER)
}

/// Floats with an integral value hash as that integer, so `1.0` keys like `1`.
fn float(value: f64) -> u128 {
    if value.fract() == 0.0 && value.abs() < 1e18 {
        integer(value as i128)
    } else {
        xxh3_128_with_seed(&value.to_bits().to_le_bytes(), FLOAT)
    }
}

fn string(value: &str) -> u128 {
    xxh3_128_with_seed(value.as_bytes(), STRING)
}

fn field(name: u128, value: u128) -> u128 {
    let mut pair = [0u8; 32];
    pair[..16].copy_from_slice(&name.to_le_bytes());
    pair[16..].copy_from_slice(&value.to_le_bytes());
    xxh3_128_with_seed(&pair, FIELD)
}

/// Fields sorted by digest, so their order in the body does not matter.
fn object(mut fields: Vec<u128>) -> u128 {
    fields.sort_unstable();
    let mut hasher = Xxh3::with_seed(OBJECT);
    fields.iter().for_each(|f| hasher.update(&f.to_le_bytes()));
    hasher.digest128()
}

/// Reduces any JSON value to its digest.
#[derive(Clone, Copy)]
struct Digest;

impl<'de> DeserializeSeed<'de> for Digest {
    type Value = u128;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u128, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Digest {
    type Value = u128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<u128, E> {
        Ok(xxh3_128_with_seed(&[], NULL))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<u128, E> {
        Ok(xxh3_128_with_seed(&[], if value { TRUE } else { FALSE }))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u128, E> {
        Ok(integer(value.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u128, E> {
        Ok(integer(value.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u128, E> {
        Ok(float(value))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<u128, E> {
        Ok(string(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<u128, A::Error> {
        let mut hasher = Xxh3::with_seed(ARRAY);
        while let Some(item) = items.next_element_seed(Digest)? {
            hasher.update(&item.to_le_bytes());
        }
        Ok(hasher.digest128())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u128, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(name) = map.next_key_seed(Digest)? {
            fields.push(field(name, map.next_value_seed(Digest)?));
        }
        Ok(object(fields))
    }
}

/// The request object: digests every field but the delivery ones and keeps `model` and
/// `temperature` for the rules.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Fingerprint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat completion request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fingerprint, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        let (mut model, mut temperature) = (None, None);
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            let name = name.as_str();
            if DELIVERY_FIELDS.contains(&name) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = match name {
                "model" => {
                    let (digest, text) = map.next_value_seed(Capture::<Box<str>>::default())?;
                    model = text;
                    digest
                }
                "temperature" => {
                    let (digest, number) = map.next_value_seed(Capture::<f64>::default())?;
                    temperature = number;
                    digest
                }
                _ => map.next_value_seed(Digest)?,
            };
            fields.push(field(string(name), value));
        }
        Ok(Fingerprint {
            hash: object(fields),
            model,
            temperature,
        })
    }
}

/// A top-level field name, borrowed from the body unless it contained escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl FieldName<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(value.into()))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(FieldName(value.to_owned().into()))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Digests a value like [`Digest`] and also keeps it when it has the type `T`.
struct Capture<T>(std::marker::PhantomData<T>);

impl<T> Default for Capture<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de> DeserializeSeed<'de> for Capture<Box<str>> {
    type Value = (u128, Option<Box<str>>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capture<Box<str>> {
    type Value = (u128, Option<Box<str>>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a model name")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok((string(value), Some(value.into())))
    }

    // Anything else is keyed like any value but leaves the request without a model.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Digest.visit_unit()?, None))
    }
    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok((Digest.visit_bool(value)?, None))
    }
    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok((Digest.visit_i64(value)?, None))
    }
    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok((Digest.visit_u64(value)?, None))
    }
    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok((Digest.visit_f64(value)?, None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Self::Value, A::Error> {
        Ok((Digest.visit_seq(items)?, None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok((Digest.visit_map(map)?, None))
    }
}

impl<'de> DeserializeSeed<'de> for Capture<f64> {
    type Value = (u128, Option<f64>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capture<f64> {
    type Value = (u128, Option<f64>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a temperature")
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok((Digest.visit_i64(value)?, Some(value as f64)))
    }
    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok((Digest.visit_u64(value)?, Some(value as f64)))
    }
    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok((Digest.visit_f64(value)?, Some(value)))
    }

    // Anything else is keyed like any value and reads as no temperature.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Digest.visit_unit()?, None))
    }
    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok((Digest.visit_bool(value)?, None))
    }
    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok((Digest.visit_str(value)?, None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Self::Value, A::Error> {
        Ok((Digest.visit_seq(items)?, None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok((Digest.visit_map(map)?, None))
    }
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

/// A request that may use the cache: its key and whether it may be answered from the cache
/// (`read`, false under `cache-control: no-cache`) and stored (`write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRequest {
    pub key: CacheKey,
    pub read: bool,
    pub write: bool,
}

/// OpenAI's default when a request gives no temperature.
const DEFAULT_TEMPERATURE: f64 = 1.0;

/// Applies the cacheability rules of `config` to a request body and its headers.
pub(super) fn classify(config: &CacheConfig, body: &[u8], headers: &HeaderMap) -> Cacheability {
    if !config.enabled {
        return Cacheability::Bypass(BypassReason::Disabled);
    }
    let directives = CacheControl::from_headers(headers);
    if directives.no_store {
        return Cacheability::Bypass(BypassReason::NoStore);
    }
    let Ok(fingerprint) = Fingerprint::of_json(body) else {
        return Cacheability::Bypass(BypassReason::Unkeyable);
    };
    let temperature = fingerprint.temperature.unwrap_or(DEFAULT_TEMPERATURE);
    let forced = config.force || header_is_true(headers, "x-cache-force");
    if temperature > config.max_temperature && !forced {
        return Cacheability::Bypass(BypassReason::Temperature);
    }
    match fingerprint.key() {
        Ok(key) => Cacheability::Cacheable(CacheRequest {
            key,
            read: !directives.no_cache,
            write: true,
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
        let raw = br#"{"model":"m","temperature":0E0,"messages":[{"role":"user","content":"\u0068i"}]}"#;
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
            json!({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"0"}),
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
        assert!(matches!(CacheKey::from_json(b"[1]"), Err(KeyError::Json(_))));
        assert!(matches!(CacheKey::from_json(b"{\"model\":1}"), Err(KeyError::NoModel)));
        assert!(matches!(CacheKey::from_json(b"{\"model\":\"m\"} x"), Err(KeyError::Json(_))));
    }

    #[test]
    fn nested_containers_do_not_collide_by_shifting_items() {
        assert_ne!(
            key(json!({"model":"m","messages":[["a"],[]]})),
            key(json!({"model":"m","messages":[[],["a"]]}))
        );
    }
}
