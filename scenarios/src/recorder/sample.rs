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
/// All instants come from the same monotonic clock. End-to-end latency and TTFT are measured
/// from [`Sample::origin`]: the intended start in the open model, the send in the closed model,
/// so a generator that falls behind its schedule shows up in latency instead of hiding it
/// (coordinated omission).
#[derive(Clone, Debug)]
pub struct Sample<'a> {
    /// When the open model's schedule meant the request to start; `None` in the closed model,
    /// where a request is meant to start when it is sent.
    pub intended: Option<Instant>,
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
    /// Where latency and TTFT are measured from: the intended start, else the send.
    pub fn origin(&self) -> Instant {
        self.intended
            .map_or(self.sent, |intended| intended.min(self.sent))
    }

    /// End-to-end latency: origin to the last byte.
    pub fn latency(&self) -> Duration {
        self.finished.saturating_duration_since(self.origin())
    }

    /// Origin to the first content event.
    pub fn ttft(&self) -> Option<Duration> {
        Some(self.first_content?.saturating_duration_since(self.origin()))
    }

    /// Send to the first content event, for open-model requests only: the target's own time to
    /// first token, without the wait for a free user that [`Sample::ttft`] includes.
    pub fn ttft_from_send(&self) -> Option<Duration> {
        self.intended?;
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
            intended: None,
            sent: origin,
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
        assert_eq!(s.ttft(), Some(Duration::from_millis(55)));
        assert_eq!(s.ttft_from_send(), None, "closed model: one TTFT");
        assert_eq!(s.tpot(), Some(Duration::from_millis(10)));
        assert_eq!(s.milli_tokens_per_s(), Some(70_968));
        assert_eq!(stream(1).tpot(), None);
    }

    #[test]
    fn open_model_times_start_at_the_intended_start() {
        let closed = stream(11);
        let late = Sample {
            intended: Some(closed.sent),
            sent: closed.sent + Duration::from_millis(30),
            ..closed.clone()
        };
        assert_eq!(late.latency(), Duration::from_millis(155));
        assert_eq!(late.ttft(), Some(Duration::from_millis(55)));
        assert_eq!(late.ttft_from_send(), Some(Duration::from_millis(25)));
        // TPOT runs from the first token: the wait before the send is not in it.
        assert_eq!(late.tpot(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn goodput_limits_apply_only_where_measured() {
        let s = stream(11);
        let tight = GoodputLimits {
            ttft: Some(Duration::from_millis(50)),
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
