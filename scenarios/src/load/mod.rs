//! Load models: closed (a number of users following stages), open (a fixed arrival rate), and
//! the rate sweep that runs both to find a capacity.

mod schedule;
mod stages;
mod sweep;
mod timer;
mod worker;

use std::time::Duration;

use reports::slo::Quantity;

pub use schedule::{ArrivalSchedule, Arrivals, DROP_AFTER, Take};
pub use stages::{BadStages, Stage, Stages};
pub use sweep::{Ran, Sweep};
pub use timer::{SleepUntil, sleep_until};
pub use worker::{BadWorker, Worker};

/// How load is offered.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Users send back to back (after an optional think time), following `stages`.
    Closed {
        stages: Stages,
        think_time: Option<Duration>,
    },
    /// `rate` arrivals per second for `duration`, served by a pool of `max_users`.
    Open {
        rate: f64,
        arrivals: Arrivals,
        max_users: usize,
        duration: Duration,
    },
    /// A synchronous baseline, a throughput probe, then open-model rates between the two.
    Sweep(Sweep),
}

impl Load {
    /// How long the load is offered.
    pub fn duration(&self) -> Duration {
        match self {
            Load::Closed { stages, .. } => stages.total(),
            Load::Open { duration, .. } => *duration,
            Load::Sweep(sweep) => sweep.duration(),
        }
    }

    /// The most users that run at once.
    pub fn peak_users(&self) -> usize {
        match self {
            Load::Closed { stages, .. } => stages.peak(),
            Load::Open { max_users, .. } => *max_users,
            Load::Sweep(sweep) => sweep.pool(),
        }
    }

    /// The most users `worker` runs at once: its share of [`Load::peak_users`] stage by stage.
    /// Zero means the load is too small to give this worker anything to do.
    pub fn worker_peak_users(&self, worker: Worker) -> usize {
        match self {
            Load::Closed { stages, .. } => stages.share(worker).peak(),
            Load::Open { max_users, .. } => worker.share(*max_users),
            Load::Sweep(sweep) => worker.share(sweep.pool()),
        }
    }

    /// One line for a worker's banner: what its share of this load is.
    pub fn describe_share(&self, worker: Worker) -> String {
        match self {
            Load::Closed { stages, .. } => {
                format!("worker {worker}: stages {}", stages.share(worker))
            }
            Load::Open { rate, .. } => format!(
                "worker {worker}: {} ({} req/s), up to {} users",
                worker.describe_slots(),
                rate / f64::from(worker.count()),
                self.worker_peak_users(worker)
            ),
            // The harness refuses to split a sweep: its rates follow from one process's probe.
            Load::Sweep(sweep) => format!("worker {worker}: the whole {sweep}"),
        }
    }

    /// One line for the run banner.
    pub fn describe(&self) -> String {
        match self {
            Load::Closed { stages, think_time } => {
                let think = think_time.map_or(String::new(), |t| format!(", think {t:?}"));
                format!("closed model, stages {stages}{think}")
            }
            Load::Open {
                rate,
                arrivals,
                max_users,
                duration,
            } => format!(
                "open model, {rate} req/s {arrivals:?} arrivals for {}s, up to {max_users} users",
                duration.as_secs()
            ),
            Load::Sweep(sweep) => sweep.to_string(),
        }
    }
}

/// A duration as written in flags and files: `250ms`, `30s`, `2m`, `1h`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration (e.g. 500ms, 30s, 2m, 1h)")]
pub struct BadDuration(pub String);

/// Parses a duration with a unit (`us`, `ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    match text.trim().parse::<Quantity>() {
        Ok(Quantity::Duration(d)) => Ok(d),
        _ => Err(BadDuration(text.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("5%").is_err());
    }
}
