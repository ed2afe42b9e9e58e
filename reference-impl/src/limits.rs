//! Checked reading of every duration, size and count that comes from outside the gateway:
//! upstream response headers (`retry-after`, `retry-after-ms`, `content-length`) and bodies,
//! client headers (`content-length`), and config files.
//!
//! Why one module: a value that is valid syntax can still be absurd (`retry-after: 1e300`,
//! `deadline_ms = 18446744073709551615`), and absurd values panic far from where they were
//! read (`Duration::from_secs_f64`, `Instant + Duration`) or make the gateway allocate without
//! bound. Each source has a documented ceiling here, and every reader goes through these
//! functions, so an out-of-range value is clamped (upstream pauses) or refused (bodies, config)
//! at the edge, never carried inward.
//!
//! | value | source | ceiling | out of range |
//! |---|---|---|---|
//! | `retry-after`, `retry-after-ms` | upstream headers | [`MAX_RETRY_AFTER`] (1 h) | clamped; negative, NaN, infinite or non-numeric ignored |
//! | response body | upstream | [`MAX_UPSTREAM_BODY_BYTES`] (64 MiB), declared `content-length` checked before reading | attempt fails as a bad payload (502 if no fallback) |
//! | error body (429, 4xx, 5xx) | upstream | [`MAX_UPSTREAM_ERROR_BODY_BYTES`] (64 KiB) | 4xx: bad payload; 429/5xx: body ignored |
//! | one SSE event | upstream stream | [`MAX_SSE_EVENT_BYTES`] (4 MiB) | stream ends with an error event |
//! | `content-length` | client | `server.body_limit_bytes` | 413 |
//! | durations | config | [`MAX_CONFIG_SECS`] (365 days) | config refused, naming the field |
//! | `server.body_limit_bytes` | config | [`MAX_BODY_LIMIT_BYTES`] (1 GiB) | config refused |
//! | `server.max_connections` | config | [`MAX_CONNECTIONS`] (1,000,000) | config refused |
//! | `routing.max_attempts` | config | [`MAX_ATTEMPTS`] (100) | config refused |
//! | `inject.busy_us` | config | [`MAX_BUSY_US`] (1 s) | config refused |

use std::time::Duration;

use http::HeaderMap;
use hyper::body::Body;

use crate::config::ConfigError;

/// Longest pause an upstream's `retry-after` can impose. Longer requests are clamped: an hour
/// of cooldown already takes the provider out of rotation, and the value is also what the
/// client is told to wait.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Largest upstream response body read into memory (a completion or an embeddings batch).
pub const MAX_UPSTREAM_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest upstream error body read; an error message needs far less.
pub const MAX_UPSTREAM_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Largest single SSE event buffered while waiting for its end (`\n\n`).
pub const MAX_SSE_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Ceiling of every duration in the config (any unit): a year. Far beyond any sensible
/// timeout or TTL, and far below where `Instant + Duration` overflows.
pub const MAX_CONFIG_SECS: u64 = 365 * 24 * 3_600;

/// Ceiling of `server.body_limit_bytes`: request bodies are held in memory whole.
pub const MAX_BODY_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;

/// Ceiling of `server.max_connections`.
pub const MAX_CONNECTIONS: u64 = 1_000_000;

/// Ceiling of `routing.max_attempts`.
pub const MAX_ATTEMPTS: u64 = 100;

/// Ceiling of `inject.busy_us`: CPU spun per request on a runtime thread.
pub const MAX_BUSY_US: u64 = 1_000_000;

/// The pause an upstream asked for: `retry-after-ms` (milliseconds) wins over `retry-after`
/// (seconds). Decimal numbers only (HTTP dates are ignored); negative, NaN, infinite or
/// unparsable values are ignored, and anything above [`MAX_RETRY_AFTER`] is clamped to it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_number(headers, "retry-after-ms")
        .map(|ms| ms / 1_000.0)
        .or_else(|| header_number(headers, "retry-after"))
        .and_then(|secs| clamped_secs(secs, MAX_RETRY_AFTER))
}

/// `secs` as a duration no longer than `max`; `None` for negative, NaN or infinite values.
pub fn clamped_secs(secs: f64, max: Duration) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    // Clamped before converting: `Duration::from_secs_f64` panics past `u64::MAX` seconds.
    Duration::try_from_secs_f64(secs.min(max.as_secs_f64())).ok()
}

/// A header's value as a number, when it is one.
fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()
}

/// Whether a body may be read under `limit`, judged by the length it declared: hyper has
/// already checked the `content-length` (a malformed one never reaches a handler or a client
/// call) and put it in the body's size hint, so it is not parsed again here. A body of unknown
/// length (chunked) passes, and is held to `limit` as it is read.
pub fn declared_within(body: &impl Body, limit: usize) -> bool {
    body.size_hint().lower() <= limit as u64
}

/// A config value checked against its ceiling; the error names the field.
pub fn at_most(field: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value <= max {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        field: field.to_owned(),
        reason: format!("{value} is above the ceiling of {max}"),
    })
}

/// A config duration in the unit its field name ends with (`_ms`, `_secs`, `_us`), checked
/// against [`MAX_CONFIG_SECS`].
pub fn duration_at_most(field: &str, value: u64) -> Result<(), ConfigError> {
    let per_sec = if field.ends_with("_ms") {
        1_000
    } else if field.ends_with("_us") {
        1_000_000
    } else {
        1
    };
    at_most(field, value, MAX_CONFIG_SECS * per_sec)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::HeaderValue;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use proptest::prelude::*;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_ms_wins_and_seconds_parse() {
        let h = headers(&[("retry-after", "2")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let h = headers(&[("retry-after", "2"), ("retry-after-ms", "150")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn huge_retry_after_is_clamped_and_nonsense_ignored() {
        for (name, value) in [
            ("retry-after", "1e300"),
            ("retry-after", "18446744073709551616"),
            ("retry-after-ms", "18446744073709551615"),
            ("retry-after-ms", "1.7976931348623157e308"),
        ] {
            let h = headers(&[(name, value)]);
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{name}: {value}");
        }
        for value in ["inf", "-inf", "NaN", "-1", "-1e300", "", "1s", "0x10"] {
            let h = headers(&[("retry-after", value)]);
            assert_eq!(retry_after(&h), None, "{value}");
        }
        let h = headers(&[("retry-after", "-0")]);
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let declared = |n: usize| Full::new(Bytes::from(vec![b'x'; n]));
        assert!(declared_within(&declared(10), 10));
        assert!(!declared_within(&declared(11), 10));
        // No declared length: read, and held to the limit as it is.
        let chunked = StreamBody::new(futures::stream::iter([Ok::<_, Infallible>(Frame::data(
            Bytes::from_static(b"more than ten bytes"),
        ))]));
        assert!(declared_within(&chunked, 10));
    }

    #[test]
    fn config_ceilings_name_the_field_and_follow_the_unit() {
        assert!(duration_at_most("routing.deadline_ms", MAX_CONFIG_SECS * 1_000).is_ok());
        let err = duration_at_most("routing.deadline_ms", u64::MAX).unwrap_err();
        assert!(err.to_string().contains("routing.deadline_ms"), "{err}");
        assert!(duration_at_most("breaker.open_secs", MAX_CONFIG_SECS + 1).is_err());
        assert!(duration_at_most("inject.busy_us", MAX_CONFIG_SECS * 1_000_000).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn retry_after_never_panics_and_stays_under_the_ceiling(
            seconds in any::<f64>(),
            millis in prop_oneof![any::<u64>().prop_map(|v| v.to_string()), "\\PC{0,24}"],
            which in 0u8..4,
        ) {
            let seconds = seconds.to_string();
            let mut h = HeaderMap::new();
            for (bit, name, value) in [(1, "retry-after", &seconds), (2, "retry-after-ms", &millis)] {
                if which & bit != 0 && let Ok(value) = HeaderValue::from_str(value) {
                    h.insert(name, value);
                }
            }
            if let Some(after) = retry_after(&h) {
                prop_assert!(after <= MAX_RETRY_AFTER);
            }
        }

        #[test]
        fn clamped_secs_is_total(secs in any::<f64>(), max_secs in 0u64..=MAX_CONFIG_SECS) {
            let max = Duration::from_secs(max_secs);
            match clamped_secs(secs, max) {
                Some(d) => prop_assert!(d <= max && secs >= 0.0),
                None => prop_assert!(!(secs.is_finite() && secs >= 0.0)),
            }
        }
    }
}
