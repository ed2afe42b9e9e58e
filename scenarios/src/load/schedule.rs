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
//!
//! With several workers, each walks the same schedule (same rate, kind and seed) and takes only
//! its own slots ([`ArrivalSchedule::sliced`]), so the workers together send exactly the
//! arrivals of one process: for Poisson arrivals too, which independent half-rate processes
//! would only match on average.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use super::Worker;

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

/// This process's next slot and how to find the ones after it.
struct Next {
    /// When the next slot is due, from the origin.
    offset: Duration,
    gaps: Gaps,
    /// Slots of the whole schedule from one of this process's slots to its next.
    stride: u32,
}

enum Gaps {
    /// Slot `k` at `k / rate`, computed from the slot number so rounding never accumulates:
    /// 30/s for 4 s is exactly 120 slots.
    Constant {
        rate: f64,
        slot: u64,
    },
    Poisson {
        rng: Box<StdRng>,
        exp: Exp<f64>,
    },
}

impl Next {
    /// Moves past `slots` slots of the whole schedule.
    fn skip(&mut self, slots: u32) {
        match &mut self.gaps {
            Gaps::Constant { rate, slot } => {
                *slot += u64::from(slots);
                self.offset = Duration::from_secs_f64(*slot as f64 / *rate);
            }
            Gaps::Poisson { rng, exp } => {
                for _ in 0..slots {
                    self.offset += Duration::from_secs_f64(exp.sample(rng.as_mut()));
                }
            }
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
            Arrivals::Constant => Gaps::Constant { rate, slot: 0 },
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
                stride: 1,
            }),
        }
    }

    /// Only `worker`'s slots of this schedule: every N-th slot from slot `I-1`. Taking them
    /// with every other worker's, as if all had started at once, gives the whole schedule.
    pub fn sliced(self, worker: Worker) -> ArrivalSchedule {
        let mut next = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        next.skip(worker.index() - 1);
        next.stride = worker.count();
        ArrivalSchedule {
            state: Mutex::new(next),
            ..self
        }
    }

    /// Takes the next slot as of `now`, skipping (and counting) slots already too late.
    pub fn take(&self, now: Instant) -> Take {
        let origin = *self.origin.get_or_init(|| now);
        let mut next = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut dropped = 0;
        loop {
            if next.offset >= self.length {
                return Take::Done { dropped };
            }
            let due = origin + next.offset;
            let stride = next.stride;
            next.skip(stride);
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
            other @ Take::Done { .. } => panic!("expected a slot, got {other:?}"),
        }
    }

    /// Every slot of `schedule` as offsets from a start at which nothing is late.
    fn offsets(schedule: &ArrivalSchedule, start: Instant) -> Vec<Duration> {
        std::iter::from_fn(|| match schedule.take(start) {
            Take::Slot { due, .. } => Some(due - start),
            Take::Done { .. } => None,
        })
        .collect()
    }

    #[test]
    fn the_slices_of_all_workers_are_the_whole_schedule() {
        for arrivals in [Arrivals::Constant, Arrivals::Poisson] {
            let length = Duration::from_secs(3);
            let start = Instant::now();
            let whole = offsets(&ArrivalSchedule::new(33.0, arrivals, length, 9), start);
            let mut sliced: Vec<Duration> = (1..=4)
                .flat_map(|i| {
                    let worker = Worker::new(i, 4).expect("valid worker");
                    let schedule = ArrivalSchedule::new(33.0, arrivals, length, 9).sliced(worker);
                    offsets(&schedule, start)
                })
                .collect();
            sliced.sort_unstable();
            assert_eq!(sliced, whole, "{arrivals:?}");
            assert!(whole.len() > 50, "{arrivals:?}: {}", whole.len());
        }
        let second = ArrivalSchedule::new(10.0, Arrivals::Constant, Duration::from_secs(1), 1)
            .sliced(Worker::new(2, 3).expect("valid worker"));
        assert_eq!(
            offsets(&second, Instant::now()),
            [100, 400, 700].map(Duration::from_millis)
        );
        let exact = ArrivalSchedule::new(30.0, Arrivals::Constant, Duration::from_secs(4), 1);
        assert_eq!(offsets(&exact, Instant::now()).len(), 120);
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
