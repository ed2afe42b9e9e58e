//! The open model's shared arrival schedule.
//!
//! Arrivals are fixed in advance by the rate (constant gaps, or exponential gaps for Poisson),
//! independent of how fast the target answers. A free user takes the next slot and sleeps until
//! its intended start; latency is measured from that intended start, so a slow target cannot
//! slow the load down and hide its own slowness (coordinated omission).
//!
//! Users take slots in order, so a slot still untaken at its intended start means no user was
//! free then: when a user takes it more than [`DROP_AFTER`] late, the arrival is dropped (counted,
//! not sent), as a load generator with a fixed pool must. Sends that start late but within that
//! bound are sent and counted as send lag.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

/// How late a slot may be taken and still be sent.
pub const DROP_AFTER: Duration = Duration::from_millis(10);

/// How arrivals are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Exactly `1/rate` apart.
    #[default]
    Constant,
    /// Exponentially distributed gaps with mean `1/rate`: independent arrivals.
    Poisson,
}

/// What a user gets from the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Send at `due`; `dropped` earlier slots were missed on the way.
    Slot { due: Instant, dropped: u64 },
    /// The schedule is over; `dropped` slots were missed on the way.
    Done { dropped: u64 },
}

/// Arrival slots shared by every user of an open-model run.
pub struct ArrivalSchedule {
    length: Duration,
    /// Set by the first take, so user start-up time is not counted as lateness.
    origin: OnceLock<Instant>,
    state: Mutex<Next>,
}

struct Next {
    offset: Duration,
    gaps: Gaps,
}

enum Gaps {
    Constant(Duration),
    Poisson { rng: Box<StdRng>, exp: Exp<f64> },
}

impl Gaps {
    fn next(&mut self) -> Duration {
        match self {
            Gaps::Constant(gap) => *gap,
            Gaps::Poisson { rng, exp } => Duration::from_secs_f64(exp.sample(rng.as_mut())),
        }
    }
}

impl ArrivalSchedule {
    /// `rate` arrivals per second for `length`; `rate` must be positive and finite.
    pub fn new(rate: f64, arrivals: Arrivals, length: Duration, seed: u64) -> ArrivalSchedule {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let gaps = match arrivals {
            Arrivals::Constant => Gaps::Constant(Duration::from_secs_f64(1.0 / rate)),
            Arrivals::Poisson => Gaps::Poisson {
                rng: Box::new(StdRng::seed_from_u64(seed)),
                exp: Exp::new(rate).unwrap_or_else(|_| Exp::new(1.0).expect("1.0 is a valid rate")),
            },
        };
        ArrivalSchedule {
            length,
            origin: OnceLock::new(),
            state: Mutex::new(Next {
                offset: Duration::ZERO,
                gaps,
            }),
        }
    }

    /// Takes the next slot as of `now`, skipping (and counting) slots already too late.
    pub fn take(&self, now: Instant) -> Take {
        let origin = *self.origin.get_or_init(|| now);
        let mut next = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = 0;
        loop {
            if next.offset >= self.length {
                return Take::Done { dropped };
            }
            let due = origin + next.offset;
            let gap = next.gaps.next();
            next.offset += gap;
            if now.saturating_duration_since(due) <= DROP_AFTER {
                return Take::Slot { due, dropped };
            }
            dropped += 1;
        }
    }

    /// When the schedule ends, once it has started.
    pub fn end(&self) -> Option<Instant> {
        self.origin.get().map(|origin| *origin + self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_slots_are_evenly_spaced_and_end() {
        let schedule =
            ArrivalSchedule::new(10.0, Arrivals::Constant, Duration::from_millis(350), 1);
        let start = Instant::now();
        let dues: Vec<Duration> = std::iter::from_fn(|| match schedule.take(start) {
            Take::Slot { due, dropped: 0 } => Some(due - start),
            _ => None,
        })
        .collect();
        assert_eq!(dues, [0, 100, 200, 300].map(Duration::from_millis));
        assert_eq!(schedule.take(start), Take::Done { dropped: 0 });
    }

    #[test]
    fn slots_missed_while_every_user_was_busy_are_dropped() {
        let schedule = ArrivalSchedule::new(100.0, Arrivals::Constant, Duration::from_secs(1), 1);
        let start = Instant::now();
        assert!(matches!(
            schedule.take(start),
            Take::Slot { dropped: 0, .. }
        ));
        // The only user comes back 105 ms later: slots at 10..=90 ms are past, 100 ms is within
        // the bound and is sent late.
        match schedule.take(start + Duration::from_millis(105)) {
            Take::Slot { due, dropped } => {
                assert_eq!(dropped, 9);
                assert_eq!(due - start, Duration::from_millis(100));
            }
            other => panic!("expected a slot, got {other:?}"),
        }
    }

    #[test]
    fn poisson_gaps_average_to_the_rate() {
        let schedule = ArrivalSchedule::new(1000.0, Arrivals::Poisson, Duration::from_secs(10), 7);
        let start = Instant::now();
        let mut count = 0u32;
        let mut gaps = Vec::new();
        let mut last = start;
        while let Take::Slot { due, .. } = schedule.take(start) {
            gaps.push(due - last);
            last = due;
            count += 1;
        }
        assert!((9_500..=10_500).contains(&count), "{count}");
        let distinct: std::collections::BTreeSet<Duration> = gaps.into_iter().collect();
        assert!(distinct.len() > 100, "gaps vary");
    }
}
