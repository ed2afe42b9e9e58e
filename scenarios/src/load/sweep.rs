//! The rate sweep: how the stress scenario finds a capacity in requests per second.
//!
//! Closed-model steps of users measure what a number of users gets, which depends on the
//! target's latency, and hide a slow target behind fewer sends (coordinated omission). A sweep
//! offers rates instead: a synchronous baseline (one user, back to back) measures the rate
//! without contention, a throughput probe (the whole pool, back to back) the most the target
//! completes, and then open-model phases at evenly spaced rates between the two (from no more
//! than an n-th of the probe's), each judged on its own SLOs. The phases after the probe depend
//! on what it measured, so the sweep is planned as it runs ([`Sweep::rates_between`]).

use std::fmt;
use std::time::Duration;

use reports::model::Offered;

use super::Arrivals;

/// The shape of a rate sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// How long the synchronous baseline runs.
    pub baseline: Duration,
    /// How long the throughput probe runs; its rate is read over the second half, once the
    /// pool's first long streams have completed.
    pub probe: Duration,
    /// How many open-model rates follow the probe.
    pub rates: usize,
    /// How long each rate is offered (requests still in flight then finish after it).
    pub per_rate: Duration,
    pub arrivals: Arrivals,
    /// Users of the probe; each rate is served by a pool of twice as many ([`Sweep::pool`]).
    pub users: usize,
}

/// One phase of a sweep as it ran: what it offered, and its span in offsets from the
/// recorder's origin, from its first send to its last answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ran {
    pub offered: Offered,
    pub start: Duration,
    pub end: Duration,
}

/// The lowest rate a sweep offers, so a target that completed nothing still gets a sweep.
const MIN_RATE: f64 = 0.1;

impl Sweep {
    /// The planned length: every phase, drains not included.
    pub fn duration(&self) -> Duration {
        self.baseline + self.probe + self.per_rate * self.rates_u32()
    }

    /// The same sweep with every phase scaled so that the whole lasts `total`; no phase
    /// shorter than a second.
    pub fn stretched_to(&self, total: Duration) -> Sweep {
        let factor = total.as_secs_f64() / self.duration().as_secs_f64().max(1e-9);
        let scale = |d: Duration| Duration::from_secs_f64((d.as_secs_f64() * factor).max(1.0));
        Sweep {
            baseline: scale(self.baseline),
            probe: scale(self.probe),
            per_rate: scale(self.per_rate),
            ..self.clone()
        }
    }

    /// The rates to offer after a baseline that completed `synchronous` requests per second and
    /// a probe that completed `max`: `rates` evenly spaced steps above the baseline's rate, the
    /// last one the probe's (guidellm's sweep spaces its rates the same way).
    ///
    /// The steps start from an n-th of the probe's rate at the most. A target that serves one
    /// request at a time completes about as many back to back with one user as with the whole
    /// pool; steps from the baseline's rate would then all offer its full load, and the sweep
    /// would show nothing of how its latency grows on the way there.
    pub fn rates_between(&self, synchronous: f64, max: f64) -> Vec<f64> {
        let n = self.rates.max(1) as f64;
        let baseline = finite_or(synchronous, MIN_RATE).max(MIN_RATE);
        let high = finite_or(max, baseline).max(baseline);
        let low = baseline.min(high / n).max(MIN_RATE);
        (1..=self.rates)
            .map(|k| low + (high - low) * k as f64 / n)
            .map(|rate| (rate * 100.0).round() / 100.0)
            .map(|rate| rate.max(MIN_RATE))
            .collect()
    }

    /// The users that serve each open-model rate: twice the probe's.
    ///
    /// The top rate is the probe's throughput, which the probe's users reached only by all
    /// being busy all the time. A pool of that size would run out at the first slow answer and
    /// drop arrivals at the top rate whatever the target did; with twice as many, arrivals are
    /// dropped only when the target's latency has doubled, which is the target's doing.
    pub fn pool(&self) -> usize {
        self.users.saturating_mul(2)
    }

    fn rates_u32(&self) -> u32 {
        u32::try_from(self.rates).unwrap_or(u32::MAX)
    }
}

fn finite_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() { value } else { fallback }
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate sweep: {}s synchronous, {}s throughput probe with {} users, then {} rates \
             ({:?} arrivals) of {}s each with up to {} users",
            self.baseline.as_secs(),
            self.probe.as_secs(),
            self.users,
            self.rates,
            self.arrivals,
            self.per_rate.as_secs(),
            self.pool()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Load, Worker};

    fn sweep() -> Sweep {
        Sweep {
            baseline: Duration::from_secs(10),
            probe: Duration::from_secs(20),
            rates: 4,
            per_rate: Duration::from_secs(15),
            arrivals: Arrivals::Constant,
            users: 400,
        }
    }

    #[test]
    fn rates_step_evenly_up_to_the_probe() {
        assert_eq!(sweep().rates_between(2.0, 42.0), [12.0, 22.0, 32.0, 42.0]);
        // A target no faster with the whole pool than with one user (it serves one request at
        // a time): the steps start from a quarter of its rate, not all at its full load.
        assert_eq!(sweep().rates_between(40.0, 40.0), [17.5, 25.0, 32.5, 40.0]);
        assert_eq!(sweep().rates_between(30.0, 40.0), [17.5, 25.0, 32.5, 40.0]);
        // A probe slower than the baseline: the same, up to the baseline's rate.
        assert_eq!(sweep().rates_between(5.0, 3.0), [2.19, 3.13, 4.06, 5.0]);
        // Nothing completed: the lowest rate rather than zero or NaN.
        assert!(
            sweep()
                .rates_between(0.0, f64::NAN)
                .iter()
                .all(|r| *r == MIN_RATE)
        );
    }

    #[test]
    fn each_rate_has_room_for_the_probes_concurrency_twice_over() {
        let s = sweep();
        assert_eq!(s.pool(), 800);
        assert_eq!(Load::Sweep(s.clone()).peak_users(), 800);
        assert_eq!(Load::Sweep(s).worker_peak_users(Worker::SOLE), 800);
    }

    #[test]
    fn stretching_keeps_the_proportions() {
        let s = sweep();
        assert_eq!(s.duration(), Duration::from_secs(90));
        let short = s.stretched_to(Duration::from_secs(45));
        assert_eq!(short.baseline, Duration::from_secs(5));
        assert_eq!(short.probe, Duration::from_secs(10));
        assert_eq!(short.per_rate, Duration::from_secs_f64(7.5));
        assert_eq!(short.duration(), Duration::from_secs(45));
    }
}
