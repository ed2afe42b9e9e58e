//! A rate sweep's load levels, each judged on its own SLOs, and the capacity they give.
//!
//! The stress scenario offers load in phases: a synchronous baseline (one user, back to back),
//! a throughput probe (the whole user pool, back to back), then open-model rates from the
//! baseline's rate up to the probe's. Each phase's seconds are judged as a run of their own;
//! the capacity is the highest rate that met every SLO with every lower rate meeting them too
//! (a pass above a failure is noise, not capacity).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::significant;

/// How one level of a sweep offered its load.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Offered {
    /// One user sending back to back: the rate without contention.
    Synchronous,
    /// Every user of the pool sending back to back: the most the target completes.
    Throughput { users: u64 },
    /// Open-model arrivals at a fixed rate, whatever the target's speed.
    Rate { rps: f64 },
}

/// How a level is named in the summary, the report and the knee chart's table.
impl fmt::Display for Offered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offered::Synchronous => f.write_str("synchronous (1 user)"),
            Offered::Throughput { users } => write!(f, "throughput probe ({users} users)"),
            Offered::Rate { rps } => write!(f, "{} req/s", significant(*rps)),
        }
    }
}

impl Offered {
    /// The open-model rate, for the levels that have one.
    pub fn rate(self) -> Option<f64> {
        match self {
            Offered::Rate { rps } => Some(rps),
            Offered::Synchronous | Offered::Throughput { .. } => None,
        }
    }
}

/// One level of a sweep as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepLevel {
    pub offered: Offered,
    /// Seconds of the run the level covers, `[start, end)`, drain included.
    pub start: u32,
    pub end: u32,
    pub requests: u64,
    /// Completed requests per second.
    pub achieved_rps: f64,
    /// Good requests per second (successes within the goodput limits).
    pub goodput_rps: f64,
    /// Streams in flight on average: achieved rate times mean latency (Little's law).
    pub streams: f64,
    /// TTFT p95 in milliseconds (from the intended start at open-model levels).
    pub ttft_p95_ms: Option<f64>,
    /// The SLOs (other than capacity) this level's seconds alone failed, as written in SLO
    /// files (`ttft p95 < 500ms`); empty when it met them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// The load generator saturated where it could have decided this level's verdict: in any
    /// of its seconds if the level met its SLOs; if it failed them, in its first second or
    /// before its seconds up to then failed them too (a failure already there is the
    /// target's).
    pub saturated: bool,
}

impl SweepLevel {
    /// Whether this level met every SLO other than capacity.
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Every level of a sweep, in the order they ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub levels: Vec<SweepLevel>,
}

/// The highest rate of a sweep that met every SLO, every lower rate meeting them too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    /// The offered rate, requests per second.
    pub rps: f64,
    /// Streams in flight at that rate (achieved rate times mean latency).
    pub streams: f64,
}

/// A rate that met every SLO above the first rate that failed them: the failure was not the
/// target's limit, or not only. A pause of the target (a collector, a periodic task) that falls
/// into one short level fails its tail percentiles at a rate the target otherwise serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recovery {
    /// The first rate that failed an SLO, requests per second (the capacity is below it).
    pub failed_rps: f64,
    /// The highest rate above it that met every SLO.
    pub passed_rps: f64,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} req/s met every SLO again after {} req/s failed: a pause of the target can fail \
             a short level below its limit; longer levels (--duration) or another run tell which",
            significant(self.passed_rps),
            significant(self.failed_rps)
        )
    }
}

/// What bounded the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A rate failed an SLO while the generator kept up: the capacity is the target's.
    Target,
    /// The generator saturated at or below the first rate that failed (or no rate failed): what
    /// the top rates measured is the client's limit, not the target's.
    Generator,
    /// Every rate met its SLOs with the generator keeping up: the target was not pushed to its
    /// limit (the probe found no more throughput to offer).
    None,
}

impl Sweep {
    /// The open-model levels, lowest rate first as they ran.
    pub fn rates(&self) -> impl Iterator<Item = &SweepLevel> {
        self.levels.iter().filter(|l| l.offered.rate().is_some())
    }

    /// The highest rate level that met every SLO, every lower rate meeting them too.
    pub fn capacity(&self) -> Option<Capacity> {
        self.rates()
            .take_while(|l| l.passed())
            .last()
            .and_then(|level| {
                Some(Capacity {
                    rps: level.offered.rate()?,
                    streams: level.streams,
                })
            })
    }

    /// The highest rate that met every SLO above the first that failed, if any did and the
    /// target bounded the sweep: the capacity stays below the failure, and this says the sweep
    /// should be read twice. (Where the generator bounded it, the failure is the client's.)
    pub fn recovery(&self) -> Option<Recovery> {
        if self.limit() != Limit::Target {
            return None;
        }
        let mut rates = self.rates().skip_while(|l| l.passed());
        let failed_rps = rates.next()?.offered.rate()?;
        let passed_rps = rates.filter(|l| l.passed()).last()?.offered.rate()?;
        Some(Recovery {
            failed_rps,
            passed_rps,
        })
    }

    /// How many times the synchronous baseline's rate the throughput probe completed: about
    /// the requests the target serves at once (1 for a target that serves one at a time,
    /// however many users wait). `None` without both levels or with a baseline that completed
    /// nothing.
    pub fn speedup(&self) -> Option<f64> {
        let achieved = |wanted: fn(&Offered) -> bool| {
            self.levels
                .iter()
                .find(|l| wanted(&l.offered))
                .map(|l| l.achieved_rps)
        };
        let synchronous = achieved(|o| matches!(o, Offered::Synchronous))?;
        let probe = achieved(|o| matches!(o, Offered::Throughput { .. }))?;
        (synchronous > 0.0).then(|| probe / synchronous)
    }

    /// Whether the target or the generator set the capacity.
    pub fn limit(&self) -> Limit {
        let first_failed = self.rates().position(|l| !l.passed());
        let first_saturated = self.rates().position(|l| l.saturated);
        match (first_failed, first_saturated) {
            (_, Some(saturated)) if first_failed.is_none_or(|failed| saturated <= failed) => {
                Limit::Generator
            }
            (Some(_), _) => Limit::Target,
            (None, _) => Limit::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::synthetic_sweep;

    #[test]
    fn capacity_is_the_highest_rate_below_the_first_failure() {
        let s = synthetic_sweep(&[
            (10.0, true, false),
            (20.0, true, false),
            (30.0, false, false),
        ]);
        assert_eq!(s.capacity().map(|c| c.rps), Some(20.0));
        assert_eq!(s.limit(), Limit::Target);
        assert_eq!(s.recovery(), None, "nothing passed above the failure");
        // A pass above a failure is noise.
        let s = synthetic_sweep(&[
            (10.0, true, false),
            (20.0, false, false),
            (30.0, true, false),
        ]);
        assert_eq!(s.capacity().map(|c| c.rps), Some(10.0));
        assert_eq!(
            s.recovery(),
            Some(Recovery {
                failed_rps: 20.0,
                passed_rps: 30.0
            })
        );
        // The same pass above a failure that saturated the generator: its failure, not a
        // pause of the target.
        let s = synthetic_sweep(&[
            (10.0, true, false),
            (20.0, false, true),
            (30.0, true, false),
        ]);
        assert_eq!(s.limit(), Limit::Generator);
        assert_eq!(s.recovery(), None);
        let s = synthetic_sweep(&[(10.0, false, false)]);
        assert!(s.capacity().is_none());
    }

    #[test]
    fn a_generator_that_saturates_first_sets_the_limit() {
        let s = synthetic_sweep(&[(10.0, true, false), (20.0, true, true), (30.0, false, true)]);
        assert_eq!(s.limit(), Limit::Generator);
        let s = synthetic_sweep(&[
            (10.0, true, false),
            (20.0, false, false),
            (30.0, false, true),
        ]);
        assert_eq!(s.limit(), Limit::Target);
        let s = synthetic_sweep(&[(10.0, true, false), (20.0, true, true)]);
        assert_eq!(s.limit(), Limit::Generator);
        let s = synthetic_sweep(&[(10.0, true, false), (20.0, true, false)]);
        assert_eq!(s.limit(), Limit::None);
    }

    #[test]
    fn the_speedup_is_the_probes_rate_over_the_baselines() {
        let mut s = synthetic_sweep(&[(10.0, true, false)]);
        assert_eq!(s.speedup(), None, "no probe");
        s.levels.insert(
            1,
            SweepLevel {
                offered: Offered::Throughput { users: 8 },
                achieved_rps: 3.0,
                ..s.levels[1].clone()
            },
        );
        s.levels[0].achieved_rps = 2.0;
        assert_eq!(s.speedup(), Some(1.5));
        s.levels[0].achieved_rps = 0.0;
        assert_eq!(s.speedup(), None, "a baseline that completed nothing");
    }

    #[test]
    fn levels_read_back_as_written() {
        let s = synthetic_sweep(&[(12.5, true, false)]);
        let json = serde_json::to_string(&s).expect("serializes");
        assert!(json.contains(r#""kind":"rate","rps":12.5"#), "{json}");
        assert_eq!(serde_json::from_str::<Sweep>(&json).expect("reads"), s);
    }
}
