//! Per-metric HdrHistograms kept in their standard compressed encoding.
//!
//! A one-hour run holds 3,600 intervals of six histograms each. A decoded HdrHistogram with three
//! significant digits covering seconds of microseconds is about 100 KB, so decoded intervals would
//! need gigabytes; encoded (V2 + deflate, a few hundred bytes) the same run needs a few megabytes.
//! The encoding is HdrHistogram's own, so the base64 strings in `summary.json` are the same
//! `HISTFAAA…` strings every HdrHistogram implementation and `latency.hlog` use.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::Metric;

/// Significant digits of every histogram (docs/design.md: three).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A new empty histogram with the project's precision that grows to fit any recorded value.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is within HdrHistogram's 0..=5")
}

/// Nearest-rank value at quantile `q` (0.0..=1.0) of a histogram, or `None` when it is empty.
///
/// HdrHistogram's `value_at_quantile` picks the smallest recorded value whose cumulative count
/// reaches `ceil(q * count)`, which is the nearest-rank definition; the value returned is the
/// highest value equivalent to that bucket.
pub fn percentile(histogram: &Histogram<u64>, q: f64) -> Option<u64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(q))
}

/// Count, mean and the standard percentiles of one histogram, in recorded units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    /// Summarises a histogram; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Summary> {
        if histogram.is_empty() {
            return None;
        }
        let q = |q| histogram.value_at_quantile(q);
        Some(Summary {
            count: histogram.len(),
            min: histogram.min(),
            mean: histogram.mean(),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: histogram.max(),
        })
    }
}

/// One histogram in HdrHistogram's V2 + deflate encoding.
///
/// The bytes are always a valid encoding: they are produced by [`EncodedHistogram::encode`] or
/// checked by decoding when deserialized, which is what lets [`EncodedHistogram::decode`] be
/// infallible.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedHistogram(Vec<u8>);

/// A string in `summary.json` that is not a base64 HdrHistogram encoding.
#[derive(Debug, thiserror::Error)]
#[error("invalid encoded histogram: {0}")]
pub struct InvalidHistogram(String);

impl EncodedHistogram {
    /// Encodes a histogram.
    pub fn encode(histogram: &Histogram<u64>) -> EncodedHistogram {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .expect("writing to a Vec cannot fail and counts below 2^63 always encode");
        EncodedHistogram(bytes)
    }

    /// Parses the base64 text form (as written in `summary.json` and `latency.hlog`).
    pub fn from_base64(text: &str) -> Result<EncodedHistogram, InvalidHistogram> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| InvalidHistogram(e.to_string()))?;
        decode_bytes(&bytes).map_err(|e| InvalidHistogram(e.to_string()))?;
        Ok(EncodedHistogram(bytes))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Decodes into an auto-resizing histogram, ready to add other histograms to.
    pub fn decode(&self) -> Histogram<u64> {
        decode_bytes(&self.0).expect("EncodedHistogram holds only valid encodings")
    }

    /// Size of the encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }
}

fn decode_bytes(
    bytes: &[u8],
) -> Result<Histogram<u64>, hdrhistogram::serialization::DeserializeError> {
    let mut histogram: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..])?;
    histogram.auto(true);
    Ok(histogram)
}

impl fmt::Debug for EncodedHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.decode();
        f.debug_struct("EncodedHistogram")
            .field("count", &h.len())
            .field("max", &h.max())
            .field("bytes", &self.0.len())
            .finish()
    }
}

impl Serialize for EncodedHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for EncodedHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EncodedHistogram::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// One histogram per metric; metrics with no recorded value are absent.
///
/// Adding is exact (bucket counts add), so histograms of workers and of intervals merge without
/// loss, and percentiles are always read from a merged histogram, never averaged.
///
/// A histogram that is only stored stays encoded; one that is added to is kept decoded so that
/// adding one interval per second to the run totals does not re-encode them every time. Call
/// [`Histograms::compact`] to encode them again once the additions are done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histograms(BTreeMap<Metric, Slot>);

/// One stored histogram, in whichever form it was last used.
#[derive(Clone, Debug)]
enum Slot {
    Encoded(EncodedHistogram),
    Decoded(Histogram<u64>),
}

impl Slot {
    fn decode(&self) -> Histogram<u64> {
        match self {
            Slot::Encoded(encoded) => encoded.decode(),
            Slot::Decoded(histogram) => histogram.clone(),
        }
    }

    fn into_decoded(self) -> Histogram<u64> {
        match self {
            Slot::Encoded(encoded) => encoded.decode(),
            Slot::Decoded(histogram) => histogram,
        }
    }
}

impl Serialize for Slot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Slot::Encoded(encoded) => encoded.serialize(serializer),
            Slot::Decoded(histogram) => EncodedHistogram::encode(histogram).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EncodedHistogram::deserialize(deserializer).map(Slot::Encoded)
    }
}

impl Histograms {
    /// No histograms.
    pub fn new() -> Histograms {
        Histograms::default()
    }

    /// Stores `histogram` for `metric`, replacing what was there. Empty histograms are not stored.
    pub fn insert(&mut self, metric: Metric, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            self.0.remove(&metric);
        } else {
            self.0
                .insert(metric, Slot::Encoded(EncodedHistogram::encode(histogram)));
        }
    }

    /// The decoded histogram of `metric`, `None` when nothing was recorded.
    pub fn get(&self, metric: Metric) -> Option<Histogram<u64>> {
        self.0.get(&metric).map(Slot::decode)
    }

    /// Adds `histogram` to the one stored for `metric`.
    pub fn add(&mut self, metric: Metric, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            return;
        }
        let mut merged = self
            .0
            .remove(&metric)
            .map_or_else(new_histogram, Slot::into_decoded);
        merged
            .add(histogram)
            .expect("adding to an auto-resizing histogram cannot run out of range");
        self.0.insert(metric, Slot::Decoded(merged));
    }

    /// Adds every histogram of `other` to this one.
    pub fn merge(&mut self, other: &Histograms) {
        for (metric, slot) in &other.0 {
            match slot {
                Slot::Encoded(encoded) => self.add(*metric, &encoded.decode()),
                Slot::Decoded(histogram) => self.add(*metric, histogram),
            }
        }
    }

    /// Encodes every histogram that additions left decoded, to take the least memory.
    pub fn compact(&mut self) {
        for slot in self.0.values_mut() {
            if let Slot::Decoded(histogram) = slot {
                *slot = Slot::Encoded(EncodedHistogram::encode(histogram));
            }
        }
    }

    /// Nearest-rank value at quantile `q` of `metric`, in recorded units.
    pub fn percentile(&self, metric: Metric, q: f64) -> Option<u64> {
        self.get(metric).and_then(|h| percentile(&h, q))
    }

    /// Count, mean and percentiles of `metric`, in recorded units.
    pub fn summary(&self, metric: Metric) -> Option<Summary> {
        self.get(metric).and_then(|h| Summary::of(&h))
    }

    /// The metrics that have data, in [`Metric::ALL`] order.
    pub fn metrics(&self) -> impl Iterator<Item = Metric> + '_ {
        self.0.keys().copied()
    }

    /// True when no metric has data.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Equal when the same metrics hold histograms with the same counts, whatever their form.
impl PartialEq for Histograms {
    fn eq(&self, other: &Histograms) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|((m1, a), (m2, b))| {
                m1 == m2
                    && match (a, b) {
                        (Slot::Encoded(a), Slot::Encoded(b)) if a == b => true,
                        _ => a.decode() == b.decode(),
                    }
            })
    }
}

impl Eq for Histograms {}
