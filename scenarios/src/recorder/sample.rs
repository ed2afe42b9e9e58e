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

/// What came back for one request: its times, how it ended, and what the target reported.
///
/// All instants come from the same monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
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
    /// Gaps between content events that came in one read (recorded as 0 us).
    pub burst_gaps: u64,
    /// `x-gateway-overhead-us`, when the response had it.
    pub overhead_us: Option<u64>,
    pub cache: Option<CacheOutcome>,
}

impl Reply {
    /// The reply of a request sent at `sent` before anything came back.
    pub fn sent_at(sent: Instant) -> Reply {
        Reply {
            sent,
            first_content: None,
            finished: sent,
            result: Ok(()),
            status: None,
            input_tokens: 0,
            output_tokens: 0,
            tokens_counted: false,
            burst_gaps: 0,
            overhead_us: None,
            cache: None,
        }
    }
}

/// One finished request as the recorder takes it: the [`Reply`], when it was meant to start,
/// and its stream's gaps.
///
/// End-to-end latency and TTFT are measured from [`Sample::origin`]: the intended start in the
/// open model, the send in the closed model, so a generator that falls behind its schedule
/// shows up in latency instead of hiding it (coordinated omission).
#[derive(Clone, Debug)]
pub struct Sample<'a> {
    /// When the open model's schedule meant the request to start; `None` in the closed model,
    /// where a request is meant to start when it is sent.
    pub intended: Option<Instant>,
    pub reply: Reply,
    /// Gaps between consecutive content events, in microseconds; `reply.burst_gaps` of them
    /// are 0.
    pub itl_us: &'a [u32],
}

impl Sample<'_> {
    /// Where latency and TTFT are measured from: the intended start, else the send.
    pub fn origin(&self) -> Instant {
        self.intended
            .map_or(self.reply.sent, |intended| intended.min(self.reply.sent))
    }

    /// End-to-end latency: origin to the last byte.
    pub fn latency(&self) -> Duration {
        self.reply.finished.saturating_duration_since(self.origin())
    }

    /// Origin to the first content event.
    pub fn ttft(&self) -> Option<Duration> {
        let first = self.reply.first_content?;
        Some(first.saturating_duration_since(self.origin()))
    }

    /// Send to the first content event, for open-model requests only: the target's own time to
    /// first token, without the wait for a free user that [`Sample::ttft`] includes.
    pub fn ttft_from_send(&self) -> Option<Duration> {
        self.intended?;
        let first = self.reply.first_content?;
        Some(first.saturating_duration_since(self.reply.sent))
    }

    /// Time per output token after the first: `(e2e - ttft) / (output_tokens - 1)` with both
    /// times measured from the send, i.e. first content event to last byte over the remaining
    /// tokens. Only defined for streams with at least two tokens.
    pub fn tpot(&self) -> Option<Duration> {
        let first = self.reply.first_content?;
        let rest = self.reply.output_tokens.checked_sub(1).filter(|n| *n > 0)?;
        let rest = u32::try_from(rest).ok()?;
        Some(self.reply.finished.saturating_duration_since(first) / rest)
    }

    /// Output tokens per second of this request, in thousandths (the recorded unit).
    pub fn milli_tokens_per_s(&self) -> Option<u64> {
        let secs = self.latency().as_secs_f64();
        (self.reply.output_tokens > 0 && secs > 0.0)
            .then(|| (self.reply.output_tokens as f64 / secs * 1_000.0).round() as u64)
    }

    /// True when the request succeeded and met every goodput limit. A TTFT or TPOT limit does
    /// not apply to requests that have no such value (non-streaming ones).
    pub fn is_good(&self, limits: &GoodputLimits) -> bool {
        let within = |limit: Option<Duration>, value: Option<Duration>| match (limit, value) {
            (Some(limit), Some(value)) => value <= limit,
            _ => true,
        };
        self.reply.result.is_ok()
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
            reply: Reply {
                sent: origin,
                first_content: Some(origin + Duration::from_millis(55)),
                finished: origin + Duration::from_millis(155),
                result: Ok(()),
                status: Some(200),
                input_tokens: 10,
                output_tokens: tokens,
                tokens_counted: false,
                burst_gaps: 0,
                overhead_us: None,
                cache: None,
            },
            itl_us: &[],
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
            intended: Some(closed.reply.sent),
            reply: Reply {
                sent: closed.reply.sent + Duration::from_millis(30),
                ..closed.reply
            },
            ..closed
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
        let mut plain = stream(11);
        plain.reply.first_content = None;
        assert!(plain.is_good(&tight));
        let mut failed = stream(11);
        failed.reply.result = Err(ErrorClass::Http5xx);
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
