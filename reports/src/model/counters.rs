//! Request counters of one interval or of a whole run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a request failed (docs/design.md, glossary: error rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The TCP connection could not be made.
    Connect,
    /// The TLS handshake failed (certificate not trusted, no common protocol, ...).
    Tls,
    /// No complete response within the request timeout.
    Timeout,
    /// A 4xx status (including 429).
    Http4xx,
    /// A 5xx status.
    Http5xx,
    /// The stream ended or broke before its terminating event.
    StreamBroken,
    /// A response body that does not parse as the expected wire format.
    BadPayload,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Timeout,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::StreamBroken,
        ErrorClass::BadPayload,
    ];

    /// The name used in CSV columns and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::StreamBroken => "stream_broken",
            ErrorClass::BadPayload => "bad_payload",
        }
    }
}

/// Failed requests by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorCounts {
    pub connect: u64,
    /// Absent from summaries written before TLS targets existed.
    #[serde(default)]
    pub tls: u64,
    pub timeout: u64,
    pub http_4xx: u64,
    pub http_5xx: u64,
    pub stream_broken: u64,
    pub bad_payload: u64,
}

impl ErrorCounts {
    /// The count of one class.
    pub fn get(&self, class: ErrorClass) -> u64 {
        match class {
            ErrorClass::Connect => self.connect,
            ErrorClass::Tls => self.tls,
            ErrorClass::Timeout => self.timeout,
            ErrorClass::Http4xx => self.http_4xx,
            ErrorClass::Http5xx => self.http_5xx,
            ErrorClass::StreamBroken => self.stream_broken,
            ErrorClass::BadPayload => self.bad_payload,
        }
    }

    /// Counts one more failure of `class`.
    pub fn record(&mut self, class: ErrorClass) {
        *self.slot(class) += 1;
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        ErrorClass::ALL.iter().map(|c| self.get(*c)).sum()
    }

    fn slot(&mut self, class: ErrorClass) -> &mut u64 {
        match class {
            ErrorClass::Connect => &mut self.connect,
            ErrorClass::Tls => &mut self.tls,
            ErrorClass::Timeout => &mut self.timeout,
            ErrorClass::Http4xx => &mut self.http_4xx,
            ErrorClass::Http5xx => &mut self.http_5xx,
            ErrorClass::StreamBroken => &mut self.stream_broken,
            ErrorClass::BadPayload => &mut self.bad_payload,
        }
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for class in ErrorClass::ALL {
            *self.slot(class) += other.get(class);
        }
    }
}

/// Cache outcomes from the `x-cache` response header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheCounts {
    pub hit: u64,
    pub miss: u64,
    /// Served by joining an identical in-flight request.
    pub coalesced: u64,
}

impl CacheCounts {
    /// Hits / lookups, where every `x-cache` outcome is a lookup; `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hit + self.miss + self.coalesced;
        (lookups > 0).then(|| self.hit as f64 / lookups as f64)
    }
}

/// Sends that started later than their arrival slot (open model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendLag {
    /// Sends that started after their intended start.
    pub late: u64,
    /// Sum of the lateness of those sends, in microseconds.
    pub total_us: u64,
    /// The largest lateness, in microseconds.
    pub max_us: u64,
}

/// Counters of an interval or a run. All fields add when merged, except `send_lag.max_us`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Requests that completed, successfully or not.
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Successful requests that met every per-request goodput limit.
    pub good: u64,
    pub errors: ErrorCounts,
    pub cache: CacheCounts,
    /// Open-model arrivals that found no free user and were not sent.
    pub dropped_arrivals: u64,
    pub send_lag: SendLag,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Requests whose token counts came from the tokenizer because the target reported no
    /// `usage`; the rest were counted by the target.
    #[serde(default)]
    pub tokens_counted: u64,
    /// ITL gaps between content events that came in one read, recorded as 0: bursts, where a
    /// target or network batched tokens, or a reader fell behind.
    #[serde(default)]
    pub itl_burst_gaps: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.good += other.good;
        self.errors.merge(&other.errors);
        self.cache.hit += other.cache.hit;
        self.cache.miss += other.cache.miss;
        self.cache.coalesced += other.cache.coalesced;
        self.dropped_arrivals += other.dropped_arrivals;
        self.send_lag.late += other.send_lag.late;
        self.send_lag.total_us += other.send_lag.total_us;
        self.send_lag.max_us = self.send_lag.max_us.max(other.send_lag.max_us);
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.tokens_counted += other.tokens_counted;
        self.itl_burst_gaps += other.itl_burst_gaps;
    }

    /// Failed requests / all requests, `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors.total() as f64 / self.requests as f64)
    }

    /// Dropped arrivals / all arrivals, `None` without arrivals.
    pub fn dropped_ratio(&self) -> Option<f64> {
        let arrivals = self.requests + self.dropped_arrivals;
        (arrivals > 0).then(|| self.dropped_arrivals as f64 / arrivals as f64)
    }
}

/// Responses that came back with a status other than 2xx, by status code: what a run's
/// `http_4xx` and `http_5xx` errors were (401 for a wrong key, 429 for a limiter, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusCounts(BTreeMap<u16, u64>);

impl StatusCounts {
    /// Counts one more response with `status`.
    pub fn record(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &StatusCounts) {
        for (status, count) in &other.0 {
            *self.0.entry(*status).or_default() += count;
        }
    }

    /// Status codes and their counts, lowest code first.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|(status, count)| (*status, *count))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
