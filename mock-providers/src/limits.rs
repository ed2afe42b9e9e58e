//! Bounds on every duration, count and probability that reaches the mock from outside: control
//! headers (`x-mock-*`), profile files and `PUT /mock/config`.
//!
//! A mock under load test is driven by whatever the client sends, so a value from outside is never
//! trusted to be sane: `1e300` ms would panic a `Duration` conversion, and an unbounded token count
//! would let one request allocate without limit. Everything passes through these helpers, which
//! reject what is out of range with an error the caller names (header or field), and never panic.
//!
//! | quantity | accepted |
//! |---|---|
//! | durations (TTFT, ITL, `retry_after_ms`, distribution parameters) | finite, `0..=600_000` ms (10 minutes) |
//! | output tokens per response (`x-mock-tokens`, `output_tokens`, `disconnect-after:N`, `error-after:N`) | `0..=100_000` |
//! | log-normal `sigma` | finite, `0..=4` |
//! | fault probabilities | `0..=1` |
//! | embedding dimensions | `1..=8192` |
//! | inputs per `POST /v1/embeddings` | `1..=2048` (OpenAI's limit) |
//!
//! NaN and infinities are rejected everywhere. Random draws from a valid distribution can still
//! land past a bound in the tail; [`duration`] and [`tokens_from_sample`] saturate those at the
//! bound instead of failing a request the profile allowed.

use std::time::Duration;

/// Longest accepted duration, in milliseconds: 10 minutes.
pub const MAX_DURATION_MS: u64 = 600_000;
/// Most output tokens one response may have.
pub const MAX_TOKENS: usize = 100_000;
/// Largest log-normal shape: at `sigma = 4` the 99th percentile is already ~11,000x the median.
pub const MAX_SIGMA: f64 = 4.0;
/// Longest embedding vector the mock builds.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 8192;
/// Most inputs one `POST /v1/embeddings` may carry (OpenAI's own limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// Why a value from outside was refused. The caller adds which header or field it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("not a number")]
    NotANumber,
    #[error("not a whole number")]
    NotAnInteger,
    #[error("must be finite (NaN and infinity are refused)")]
    NotFinite,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most {max}{unit}")]
    /// `unit` is empty or starts with a space, so the message reads "at most 600000 ms".
    TooLarge { max: u64, unit: &'static str },
    #[error("must be at least {min}")]
    TooSmall { min: u64 },
    #[error("must be between 0 and 1")]
    NotAProbability,
}

/// A duration in milliseconds, checked: finite, `>= 0`, at most [`MAX_DURATION_MS`].
pub fn millis(v: f64) -> Result<f64, LimitError> {
    bounded(v, MAX_DURATION_MS as f64, MAX_DURATION_MS, " ms")
}

/// Parses a duration in (possibly fractional) milliseconds, as the `x-mock-*-ms` headers carry it.
pub fn parse_millis(text: &str) -> Result<f64, LimitError> {
    millis(
        text.trim()
            .parse::<f64>()
            .map_err(|_| LimitError::NotANumber)?,
    )
}

/// A whole number of milliseconds (`retry_after_ms`), checked against [`MAX_DURATION_MS`].
pub fn whole_millis(v: u64) -> Result<u64, LimitError> {
    if v > MAX_DURATION_MS {
        return Err(LimitError::TooLarge {
            max: MAX_DURATION_MS,
            unit: " ms",
        });
    }
    Ok(v)
}

/// Milliseconds as a `Duration`, saturating: NaN and negatives give zero, anything past
/// [`MAX_DURATION_MS`] gives the maximum. For values already checked and for random draws, so it
/// never fails and never panics.
pub fn duration(ms: f64) -> Duration {
    if ms >= MAX_DURATION_MS as f64 {
        Duration::from_millis(MAX_DURATION_MS)
    } else if ms > 0.0 {
        Duration::from_secs_f64(ms / 1000.0)
    } else {
        Duration::ZERO
    }
}

/// A token count as a distribution parameter: finite, `>= 0`, at most [`MAX_TOKENS`].
pub fn token_parameter(v: f64) -> Result<f64, LimitError> {
    bounded(v, MAX_TOKENS as f64, MAX_TOKENS as u64, " tokens")
}

/// Parses a whole token count (`x-mock-tokens`, the `N` of `disconnect-after:N`).
pub fn parse_tokens(text: &str) -> Result<usize, LimitError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_TOKENS as u64 => Ok(n as usize),
        Ok(_) => Err(too_many_tokens()),
        // All digits but past u64: too large rather than malformed.
        Err(_) if digits(text) => Err(too_many_tokens()),
        Err(_) if text.strip_prefix('-').is_some_and(digits) => Err(LimitError::Negative),
        Err(_) => Err(LimitError::NotAnInteger),
    }
}

fn too_many_tokens() -> LimitError {
    LimitError::TooLarge {
        max: MAX_TOKENS as u64,
        unit: " tokens",
    }
}

/// A drawn output length as a count: rounded, NaN and negatives give zero, saturating at
/// [`MAX_TOKENS`].
pub fn tokens_from_sample(v: f64) -> usize {
    if v >= MAX_TOKENS as f64 {
        MAX_TOKENS
    } else if v > 0.0 {
        v.round() as usize
    } else {
        0
    }
}

/// A log-normal shape: finite, `0..=`[`MAX_SIGMA`].
pub fn sigma(v: f64) -> Result<f64, LimitError> {
    if !v.is_finite() {
        return Err(LimitError::NotFinite);
    }
    if v < 0.0 {
        return Err(LimitError::Negative);
    }
    if v > MAX_SIGMA {
        return Err(LimitError::TooLarge {
            max: MAX_SIGMA as u64,
            unit: "",
        });
    }
    Ok(v)
}

/// A probability: `0..=1` (NaN refused).
pub fn probability(v: f64) -> Result<f64, LimitError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(LimitError::NotAProbability)
    }
}

/// Embedding dimensions: `1..=`[`MAX_EMBEDDING_DIMENSIONS`].
pub fn embedding_dimensions(v: usize) -> Result<usize, LimitError> {
    match v {
        0 => Err(LimitError::TooSmall { min: 1 }),
        v if v > MAX_EMBEDDING_DIMENSIONS => Err(LimitError::TooLarge {
            max: MAX_EMBEDDING_DIMENSIONS as u64,
            unit: " dimensions",
        }),
        v => Ok(v),
    }
}

fn bounded(v: f64, max: f64, max_shown: u64, unit: &'static str) -> Result<f64, LimitError> {
    if !v.is_finite() {
        Err(LimitError::NotFinite)
    } else if v < 0.0 {
        Err(LimitError::Negative)
    } else if v > max {
        Err(LimitError::TooLarge {
            max: max_shown,
            unit,
        })
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_durations_are_refused_with_the_reason() {
        assert_eq!(
            parse_millis("1e300"),
            Err(LimitError::TooLarge {
                max: 600_000,
                unit: " ms"
            })
        );
        assert_eq!(parse_millis("-1"), Err(LimitError::Negative));
        assert_eq!(parse_millis("NaN"), Err(LimitError::NotFinite));
        assert_eq!(parse_millis("inf"), Err(LimitError::NotFinite));
        assert_eq!(parse_millis("soon"), Err(LimitError::NotANumber));
        assert_eq!(parse_millis(" 2.5 "), Ok(2.5));
        assert_eq!(parse_millis("600000"), Ok(600_000.0));
    }

    #[test]
    fn token_counts_are_bounded() {
        assert_eq!(parse_tokens("100000"), Ok(100_000));
        assert_eq!(parse_tokens("0"), Ok(0));
        assert_eq!(parse_tokens("1000000000000"), Err(too_many_tokens()));
        assert_eq!(
            parse_tokens("99999999999999999999999999"),
            Err(too_many_tokens())
        );
        assert_eq!(parse_tokens("-1"), Err(LimitError::Negative));
        assert_eq!(parse_tokens("1e12"), Err(LimitError::NotAnInteger));
        assert_eq!(parse_tokens(""), Err(LimitError::NotAnInteger));
        assert_eq!(parse_tokens("-"), Err(LimitError::NotAnInteger));
    }

    #[test]
    fn conversions_saturate_instead_of_panicking() {
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(-5.0), Duration::ZERO);
        assert_eq!(duration(1e300), Duration::from_secs(600));
        assert_eq!(duration(f64::INFINITY), Duration::from_secs(600));
        assert_eq!(duration(1.5), Duration::from_micros(1500));
        assert_eq!(tokens_from_sample(f64::NAN), 0);
        assert_eq!(tokens_from_sample(1e300), MAX_TOKENS);
        assert_eq!(tokens_from_sample(2.6), 3);
    }
}
