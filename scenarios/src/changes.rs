//! What the mid-run upstream changes of a scenario did to the load: how many requests failed
//! after each change and how long until a second passed without failures again (the time the
//! gateway took to route around the failing provider, or to stop failing after recovery); and,
//! from the gateway's own `/metrics` as sampled each second, how long its circuit breaker took
//! to open after a failure and to close again after a recovery.

use std::time::Duration;

use reports::RunResult;
use reports::model::BreakerState;

use crate::scenario::{TimedChange, UpstreamChange};

/// The effect of one change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEffect {
    pub change: UpstreamChange,
    /// Second of the run the change was applied at.
    pub at: u32,
    /// Failed requests from the change until the next change (or the end).
    pub failed: u64,
    /// Seconds from the change to the first second that completed requests without a failure;
    /// `None` when no such second came before the next change.
    pub settled_after: Option<u32>,
    /// Seconds from the change until the gateway's breaker reached the state the change should
    /// lead to (open after a failure, closed after a recovery); `None` when it did not before
    /// the next change, or the gateway's breaker state was not sampled.
    pub breaker_after: Option<u32>,
}

/// The effect of each of `changes` on `run`, a run of `length`.
pub fn effects(run: &RunResult, changes: &[TimedChange], length: Duration) -> Vec<ChangeEffect> {
    let at: Vec<u32> = changes
        .iter()
        .map(|c| (c.at * length.as_secs_f64()).round() as u32)
        .collect();
    changes
        .iter()
        .zip(&at)
        .enumerate()
        .map(|(i, (change, &start))| {
            let end = at.get(i + 1).copied().unwrap_or(u32::MAX);
            let window = run
                .intervals
                .iter()
                .filter(|interval| (start..end).contains(&interval.second));
            let failed = window.clone().map(|i| i.counters.errors.total()).sum();
            let settled_after = window
                .filter(|i| i.counters.requests > 0 && i.counters.errors.total() == 0)
                .map(|i| i.second - start)
                .next();
            let expected = match change.change {
                UpstreamChange::PrimaryFails { .. } => BreakerState::Open,
                UpstreamChange::PrimaryRecovers => BreakerState::Closed,
            };
            // A breaker already in the expected state at the change has nothing to time.
            let before = run.gateway.iter().rev().find(|s| s.second < start);
            let breaker_after = match before.and_then(|s| s.breaker) {
                Some(state) if state == expected => None,
                _ => run
                    .gateway
                    .iter()
                    .filter(|s| (start..end).contains(&s.second))
                    .find(|s| s.breaker == Some(expected))
                    .map(|s| s.second - start),
            };
            ChangeEffect {
                change: change.change,
                at: start,
                failed,
                settled_after,
                breaker_after,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use reports::model::{Environment, ErrorClass, GatewaySample, Interval};

    use super::*;

    #[test]
    fn failures_after_a_change_are_counted_until_a_clean_second() {
        let mut run = RunResult::new(
            "failover",
            toml::Table::new(),
            Environment::default(),
            chrono::Utc::now(),
        );
        for second in 0..30u32 {
            let mut interval = Interval::new(second);
            interval.counters.requests = 10;
            // The primary fails at 10 s; the gateway routes around it from 13 s.
            if (10..13).contains(&second) {
                for _ in 0..4 {
                    interval.counters.errors.record(ErrorClass::Http5xx);
                }
            }
            run.push_interval(interval);
            // The breaker opens at 12 s and closes again at 24 s.
            let breaker = match second {
                12..24 => BreakerState::Open,
                _ => BreakerState::Closed,
            };
            run.push_gateway_sample(GatewaySample {
                second,
                breaker: Some(breaker),
                ..GatewaySample::default()
            });
        }
        let changes = [
            TimedChange {
                at: 1.0 / 3.0,
                change: UpstreamChange::PrimaryFails { status: 500 },
            },
            TimedChange {
                at: 2.0 / 3.0,
                change: UpstreamChange::PrimaryRecovers,
            },
        ];
        let effects = effects(&run, &changes, Duration::from_secs(30));
        assert_eq!(effects[0].at, 10);
        assert_eq!(effects[0].failed, 12);
        assert_eq!(effects[0].settled_after, Some(3));
        assert_eq!(effects[0].breaker_after, Some(2));
        assert_eq!(effects[1].at, 20);
        assert_eq!(effects[1].failed, 0);
        assert_eq!(effects[1].settled_after, Some(0));
        assert_eq!(effects[1].breaker_after, Some(4));
    }
}
