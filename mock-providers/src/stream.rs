//! Sending a [`Script`] on a timetable: the first piece at once, the first token after the TTFT,
//! each later token one inter-token gap after the previous one.
//!
//! One `Sleep` per stream is reset in place for every token, deadlines are computed from the
//! previous deadline (not from when the task woke up, so scheduling delays do not accumulate), and
//! every piece already due is sent in the same poll, so a zero-delay stream is one write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::profile::Distribution;
use crate::stats::InFlight;

/// When each piece of a script is due.
#[derive(Debug)]
pub(crate) struct Pacing {
    pub ttft: Duration,
    pub itl: Distribution,
    pub rng: SmallRng,
}

impl Pacing {
    fn gap(&mut self) -> Duration {
        crate::limits::duration(self.itl.sample(&mut self.rng))
    }

    /// Total time until the last of `tokens` tokens: what a non-streaming answer waits.
    pub fn total(&mut self, tokens: usize) -> Duration {
        (1..tokens).fold(self.ttft, |sum, _| sum + self.gap())
    }
}

/// What a [`Paced`] body does after its last piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End the body normally.
    Finish,
    /// Fail the body, so the server drops the connection mid-response.
    Abort,
    /// `Abort`, with the timer set for the moment of the cut.
    AbortArmed,
}

/// A response body stream that releases the pieces of a pre-built body on their due times.
pub(crate) struct Paced {
    body: Bytes,
    cuts: Vec<usize>,
    /// Index of the next piece to send.
    next: usize,
    /// Bytes of `body` already sent.
    sent: usize,
    due: Instant,
    sleep: Pin<Box<Sleep>>,
    pacing: Pacing,
    /// What happens after the last piece.
    end: End,
    in_flight: InFlight,
}

impl Paced {
    pub fn new(
        (body, cuts): (Bytes, Vec<usize>),
        pacing: Pacing,
        abort: bool,
        in_flight: InFlight,
    ) -> Self {
        let now = Instant::now();
        let end = if abort { End::Abort } else { End::Finish };
        Self {
            body,
            cuts,
            next: 0,
            sent: 0,
            due: now,
            sleep: Box::pin(sleep_until(now)),
            pacing,
            end,
            in_flight,
        }
    }

    fn advance_due(&mut self) {
        self.due += if self.next == 1 {
            self.pacing.ttft
        } else {
            self.pacing.gap()
        };
    }
}

impl Stream for Paced {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.next == this.cuts.len() {
            match this.end {
                End::Finish => {
                    this.in_flight.finish();
                    return Poll::Ready(None);
                }
                End::Abort => {
                    // Cut one gap after the last piece (at least a millisecond), so the server has
                    // flushed what was sent before the connection drops.
                    let due = this.due + this.pacing.gap().max(Duration::from_millis(1));
                    this.sleep.as_mut().reset(due);
                    this.end = End::AbortArmed;
                }
                End::AbortArmed => {}
            }
            ready!(this.sleep.as_mut().poll(cx));
            this.end = End::Finish;
            this.in_flight.finish();
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "injected disconnect",
            ))));
        }
        if this.due > Instant::now() {
            ready!(this.sleep.as_mut().poll(cx));
        }
        let start = this.sent;
        let now = Instant::now();
        loop {
            this.sent = this.cuts[this.next];
            this.next += 1;
            if this.next == this.cuts.len() {
                break;
            }
            this.advance_due();
            if this.due > now {
                let due = this.due;
                this.sleep.as_mut().reset(due);
                break;
            }
        }
        Poll::Ready(Some(Ok(this.body.slice(start..this.sent))))
    }
}
