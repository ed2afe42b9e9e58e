//! The in-memory tier: a moka cache bounded by bytes, with a time to live that grows with use.
//!
//! Entries start in the `rare` class; each hit counts, and reaching `moderate_hits` or
//! `frequent_hits` moves an entry to the longer class. The TTL restarts at every hit, so an
//! entry lives as long as it keeps being asked for at least once per its class's TTL.
//! Bodies over the compression threshold are stored LZ4-compressed when that makes them smaller.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::notification::RemovalCause;
use serde::{Deserialize, Serialize};

/// `[cache.ttl]`: lifetimes by access frequency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtlConfig {
    pub frequent_secs: u64,
    pub moderate_secs: u64,
    pub rare_secs: u64,
    /// Hits that make an entry frequent.
    pub frequent_hits: u32,
    /// Hits that make an entry moderate.
    pub moderate_hits: u32,
}

impl Default for TtlConfig {
    fn default() -> Self {
        Self {
            frequent_secs: 3_600,
            moderate_secs: 1_800,
            rare_secs: 300,
            frequent_hits: 10,
            moderate_hits: 3,
        }
    }
}

/// An entry's access-frequency class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlClass {
    Rare,
    Moderate,
    Frequent,
}

impl TtlConfig {
    pub fn class(&self, hits: u32) -> TtlClass {
        if hits >= self.frequent_hits {
            TtlClass::Frequent
        } else if hits >= self.moderate_hits {
            TtlClass::Moderate
        } else {
            TtlClass::Rare
        }
    }

    pub fn ttl(&self, class: TtlClass) -> Duration {
        Duration::from_secs(match class {
            TtlClass::Frequent => self.frequent_secs,
            TtlClass::Moderate => self.moderate_secs,
            TtlClass::Rare => self.rare_secs,
        })
    }
}

/// A body as stored: raw or LZ4 with its length prepended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub data: Bytes,
    pub compressed: bool,
}

impl Encoded {
    /// Compresses `body` if it is larger than `threshold` and compression pays.
    pub fn encode(body: Bytes, threshold: usize) -> Self {
        if body.len() > threshold {
            let packed = lz4_flex::compress_prepend_size(&body);
            if packed.len() < body.len() {
                return Self {
                    data: packed.into(),
                    compressed: true,
                };
            }
        }
        Self {
            data: body,
            compressed: false,
        }
    }

    /// The original body; `None` if compressed data is corrupt (only possible from Redis).
    pub fn decode(&self) -> Option<Bytes> {
        if self.compressed {
            lz4_flex::decompress_size_prepended(&self.data)
                .ok()
                .map(Bytes::from)
        } else {
            Some(self.data.clone())
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub encoded: Encoded,
    hits: AtomicU32,
}

/// Bookkeeping bytes charged per entry on top of its body (key, entry, moka's own node).
const ENTRY_OVERHEAD: usize = 128;

/// Removal counts moka reports through its eviction listener.
#[derive(Debug, Default)]
pub(crate) struct Removals {
    pub evicted: AtomicU64,
    pub expired: AtomicU64,
}

pub(crate) struct MemoryTier {
    cache: moka::sync::Cache<u128, Arc<Entry>>,
    removals: Arc<Removals>,
}

impl MemoryTier {
    pub fn new(max_bytes: u64, ttl: TtlConfig) -> Self {
        let removals = Arc::new(Removals::default());
        let listener_removals = Arc::clone(&removals);
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, entry: &Arc<Entry>| {
                u32::try_from(entry.encoded.data.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(AdaptiveTtl(ttl))
            .eviction_listener(move |_, _, cause| match cause {
                RemovalCause::Size => {
                    listener_removals.evicted.fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Expired => {
                    listener_removals.expired.fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Self { cache, removals }
    }

    pub fn get(&self, hash: u128) -> Option<Arc<Entry>> {
        self.cache.get(&hash)
    }

    pub fn insert(&self, hash: u128, encoded: Encoded) {
        self.cache.insert(
            hash,
            Arc::new(Entry {
                encoded,
                hits: AtomicU32::new(0),
            }),
        );
    }

    pub fn remove(&self, hash: u128) {
        self.cache.invalidate(&hash);
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Applies pending evictions and expirations so the counts below are current.
    pub fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn removals(&self) -> &Removals {
        &self.removals
    }
}

impl std::fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTier")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

/// moka calls `expire_after_read` once per hit: that is where hits are counted and the entry's
/// class, and so its new TTL, is decided.
struct AdaptiveTtl(TtlConfig);

impl Expiry<u128, Arc<Entry>> for AdaptiveTtl {
    fn expire_after_create(&self, _: &u128, _: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(self.0.ttl(TtlClass::Rare))
    }

    fn expire_after_read(
        &self,
        _: &u128,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        let hits = entry.hits.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        Some(self.0.ttl(self.0.class(hits)))
    }

    fn expire_after_update(
        &self,
        _: &u128,
        _: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.0.ttl(TtlClass::Rare))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_switch_exactly_at_the_hit_thresholds() {
        let ttl = TtlConfig::default();
        assert_eq!(ttl.class(0), TtlClass::Rare);
        assert_eq!(ttl.class(2), TtlClass::Rare);
        assert_eq!(ttl.class(3), TtlClass::Moderate);
        assert_eq!(ttl.class(9), TtlClass::Moderate);
        assert_eq!(ttl.class(10), TtlClass::Frequent);
        assert_eq!(ttl.ttl(TtlClass::Frequent), Duration::from_secs(3_600));
        assert_eq!(ttl.ttl(TtlClass::Moderate), Duration::from_secs(1_800));
        assert_eq!(ttl.ttl(TtlClass::Rare), Duration::from_secs(300));
    }

    #[test]
    fn reads_promote_an_entry_to_longer_ttls() {
        let expiry = AdaptiveTtl(TtlConfig::default());
        let entry = Arc::new(Entry {
            encoded: Encoded::encode(Bytes::from_static(b"{}"), 1024),
            hits: AtomicU32::new(0),
        });
        let now = Instant::now();
        assert_eq!(
            expiry.expire_after_create(&0, &entry, now),
            Some(Duration::from_secs(300))
        );
        let ttls: Vec<u64> = (0..10)
            .filter_map(|_| expiry.expire_after_read(&0, &entry, now, None, now))
            .map(|ttl| ttl.as_secs())
            .collect();
        assert_eq!(
            ttls,
            [300, 300, 1800, 1800, 1800, 1800, 1800, 1800, 1800, 3600]
        );
    }

    #[test]
    fn large_bodies_are_compressed_and_round_trip() {
        let body = Bytes::from("the same words again ".repeat(100));
        let encoded = Encoded::encode(body.clone(), 1024);
        assert!(encoded.compressed);
        assert!(encoded.data.len() < body.len() / 4);
        assert_eq!(encoded.decode(), Some(body));

        let small = Bytes::from("x".repeat(1024));
        assert!(!Encoded::encode(small, 1024).compressed);
    }
}
