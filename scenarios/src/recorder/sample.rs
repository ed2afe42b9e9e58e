//! What one request produced, as the client hands it to the [`Recorder`](super::Recorder).

use std::time::{Duration, Instant};

use reports::model::{ErrorClass, GoodputLimits};

/// The cache outcome a gateway reported in `x-cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Served by joining an identical request already in flight.
    Coalesced,
}

impl CacheOutcome {
    /// Parses an `x-cache` header value; unknown values are not an outcome.
    pub fn from_header(value: &[u8]) -> Option<CacheOutcome> {
        match value {
            b"hit" | b"HIT" => Some(CacheOutcome::Hit),
            b"miss" | b"MISS" => Some(CacheOutcome::Miss),
            b"coalesced" | b"COALESCED" => Some(CacheOutcome::Coalesced),
            _ => None,
        }
    }
}

/// One finished request.
///
/// All instants come from the same monotonic clock. `origin` is where end-to-end latency is
/// measured from: the intended start in the open model, the send in the closed model, so a
/// generator that falls behind its schedule shows up in latency instead of hiding it.
#[derive(Clone, Debug)]
pub struct Sample<'a> {
    pub origin: Instant,
    pub sent: Instant,
    /// The first SSE event that carried content; `None` for non-streaming requests.
    pub first_content: Option<Instant>,
    pub finished: Instant,
    pub result: Result<(), ErrorClass>,
    /// The response's HTTP status, when one came.
    pub status: Option<u16>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The token counts came from the tokenizer, not from the target's `usage`.
    pub tokens_counted: bool,
    /// How many of `itl_us` are gaps between events that came in one read (0 us).
    pub burst_gaps: u64,
    /// Gaps between consecutive content events, in microseconds.
    pub itl_us: &'a [u32],
    /// `x-gateway-overhead-us`, when the response had it.
    pub overhead_us: Option<u64>,
    pub cache: Option<CacheOutcome>,
}

impl Sample<'_> {
    /// End-to-end latency: origin to the last byte.
    pub fn latency(&self) -> Duration {
        self.finished.saturating_duration_since(self.origin)
    }

    /// Send to the first content event.
    pub fn ttft(&self) -> Option<Duration> {
        Some(self.first_content?.saturating_duration_since(self.sent))
    }

    /// Time per output token after the first: `(e2e - ttft) / (output_tokens - 1)` with both
    /// times measured from the send, i.e. first content event to last byte over the remaining
    /// tokens. Only defined for streams with at least two tokens.
    pub fn tpot(&self) -> Option<Duration> {
        let first = self.first_content?;
        let rest = self.output_tokens.checked_sub(1).filter(|n| *n > 0)?;
        let rest = u32::try_from(rest).ok()?;
        Some(self.finished.saturating_duration_since(first) / rest)
    }

    /// Output tokens per second of this request, in thousandths (the recorded unit).
    pub fn milli_tokens_per_s(&self) -> Option<u64> {
        let secs = self.latency().as_secs_f64();
        (self.output_tokens > 0 && secs > 0.0)
            .then(|| (self.output_tokens as f64 / secs * 1_000.0).round() as u64)
    }

    /// True when the request succeeded and met every goodput limit. A TTFT or TPOT limit does
    /// not apply to requests that have no such value (non-streaming ones).
    pub fn is_good(&self, limits: &GoodputLimits) -> bool {
        let within = |limit: Option<Duration>, value: Option<Duration>| match (limit, value) {
            (Some(limit), Some(value)) => value <= limit,
            _ => true,
        };
        self.result.is_ok()
            && within(limits.ttft, self.ttft())
            && within(limits.tpot, self.tpot())
            && within(limits.e2e, Some(self.latency()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(tokens: u64) -> Sample<'static> {
        let origin = Instant::now();
        Sample {
            origin,
            sent: origin + Duration::from_millis(5),
            first_content: Some(origin + Duration::from_millis(55)),
            finished: origin + Duration::from_millis(155),
            result: Ok(()),
            status: Some(200),
            input_tokens: 10,
            output_tokens: tokens,
            tokens_counted: false,
            burst_gaps: 0,
            itl_us: &[],
            overhead_us: None,
            cache: None,
        }
    }

    #[test]
    fn derived_times_follow_the_glossary() {
        let s = stream(11);
        assert_eq!(s.latency(), Duration::from_millis(155));
        assert_eq!(s.ttft(), Some(Duration::from_millis(50)));
        assert_eq!(s.tpot(), Some(Duration::from_millis(10)));
        assert_eq!(s.milli_tokens_per_s(), Some(70_968));
        assert_eq!(stream(1).tpot(), None);
    }

    #[test]
    fn goodput_limits_apply_only_where_measured() {
        let s = stream(11);
        let tight = GoodputLimits {
            ttft: Some(Duration::from_millis(40)),
            ..GoodputLimits::default()
        };
        assert!(!s.is_good(&tight));
        let loose = GoodputLimits {
            ttft: Some(Duration::from_millis(60)),
            tpot: Some(Duration::from_millis(10)),
            e2e: Some(Duration::from_millis(200)),
        };
        assert!(s.is_good(&loose));
        let plain = Sample {
            first_content: None,
            ..stream(11)
        };
        assert!(plain.is_good(&tight));
        let failed = Sample {
            result: Err(ErrorClass::Http5xx),
            ..stream(11)
        };
        assert!(!failed.is_good(&GoodputLimits::default()));
    }

    #[test]
    fn cache_header_values() {
        assert_eq!(CacheOutcome::from_header(b"hit"), Some(CacheOutcome::Hit));
        assert_eq!(
            CacheOutcome::from_header(b"coalesced"),
            Some(CacheOutcome::Coalesced)
        );
        assert_eq!(CacheOutcome::from_header(b"bypass"), None);
    }
}
