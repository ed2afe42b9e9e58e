//! One load-generating process of several: worker `I/N` sends the I-th share of a run's load.
//!
//! The run's load is cut so that the workers together send exactly what one process would:
//! - users (closed model, each stage's target, and the open model's pool) go round-robin, so
//!   worker `I/N` runs the run's users `I-1, I-1+N, I-1+2N, …` and the remainder of an uneven
//!   split goes to the lowest-numbered workers;
//! - arrivals (open model) go round-robin too: every worker walks the run's one arrival schedule
//!   and sends every N-th slot starting with slot `I-1` (see
//!   [`ArrivalSchedule::sliced`](super::ArrivalSchedule::sliced)).
//!
//! Every user's random choices are seeded from the run seed and its run-wide user number, so no
//! two workers send the same prompt sequence, and the N workers' users are exactly the users of a
//! single-process run with the same seed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Worker `index` of `count`, counted from 1: `1 <= index <= count`, enforced by every
/// constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Worker {
    index: u32,
    count: u32,
}

/// Text that is not a worker `I/N`; renders as one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a worker: expected I/N with 1 <= I <= N (e.g. 2/3)")]
pub struct BadWorker(pub String);

impl Worker {
    /// The only worker: the whole load in one process.
    pub const SOLE: Worker = Worker { index: 1, count: 1 };

    /// Worker `index` of `count`; `None` unless `1 <= index <= count`.
    pub fn new(index: u32, count: u32) -> Option<Worker> {
        (1..=count)
            .contains(&index)
            .then_some(Worker { index, count })
    }

    /// This worker's number, from 1.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many workers share the load.
    pub fn count(self) -> u32 {
        self.count
    }

    /// This worker's part of `total` things dealt round-robin: `total / N`, plus one for the
    /// first `total % N` workers. The parts of all N workers add up to `total`.
    pub fn share(self, total: usize) -> usize {
        let count = self.count as usize;
        let rank = (self.index - 1) as usize;
        total / count + usize::from(rank < total % count)
    }

    /// The run-wide number of this worker's `local`-th user (both from 0).
    pub fn user(self, local: usize) -> usize {
        local * self.count as usize + (self.index - 1) as usize
    }

    /// `n`-th in English (`1st`, `2nd`, `3rd`, `4th`, `11th`, …) for banners.
    fn ordinal(n: u32) -> String {
        let suffix = match (n % 10, n % 100) {
            (_, 11..=13) => "th",
            (1, _) => "st",
            (2, _) => "nd",
            (3, _) => "rd",
            _ => "th",
        };
        format!("{n}{suffix}")
    }

    /// "every 3rd arrival from the 2nd", for the run banner.
    pub fn describe_slots(self) -> String {
        format!(
            "every {} arrival from the {}",
            Worker::ordinal(self.count),
            Worker::ordinal(self.index)
        )
    }
}

impl FromStr for Worker {
    type Err = BadWorker;

    fn from_str(text: &str) -> Result<Worker, BadWorker> {
        let bad = || BadWorker(text.trim().to_owned());
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Worker::new(index, count).ok_or_else(bad)
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl TryFrom<String> for Worker {
    type Error = BadWorker;

    fn try_from(text: String) -> Result<Worker, BadWorker> {
        text.parse()
    }
}

impl From<Worker> for String {
    fn from(worker: Worker) -> String {
        worker.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_rejects_the_rest() {
        assert_eq!("2/3".parse(), Ok(Worker { index: 2, count: 3 }));
        assert_eq!(" 1 / 1 ".parse(), Ok(Worker::SOLE));
        for bad in ["0/3", "4/3", "x", "1/0", "-1/3", "1/", "/3", "1/3/5", ""] {
            let error = bad.parse::<Worker>().expect_err(bad);
            assert!(error.to_string().contains("expected I/N"), "{bad}: {error}");
        }
        assert_eq!(Worker { index: 2, count: 3 }.to_string(), "2/3");
    }

    #[test]
    fn shares_add_up_with_the_remainder_on_the_first_workers() {
        for count in 1..=7u32 {
            for total in 0..40usize {
                let shares: Vec<usize> = (1..=count)
                    .map(|i| Worker { index: i, count }.share(total))
                    .collect();
                assert_eq!(shares.iter().sum::<usize>(), total, "{total} over {count}");
                assert!(shares.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
        let shares: Vec<usize> = (1..=3)
            .map(|i| Worker { index: i, count: 3 }.share(10))
            .collect();
        assert_eq!(shares, [4, 3, 3]);
    }

    #[test]
    fn users_of_all_workers_are_the_users_of_one_process() {
        let total = 11;
        let mut users: Vec<usize> = (1..=4)
            .flat_map(|i| {
                let worker = Worker { index: i, count: 4 };
                (0..worker.share(total)).map(move |local| worker.user(local))
            })
            .collect();
        users.sort_unstable();
        assert_eq!(users, (0..total).collect::<Vec<_>>());
        assert_eq!(Worker::SOLE.user(5), 5);
    }

    #[test]
    fn describes_its_slots_in_english() {
        let w = |index, count| Worker { index, count }.describe_slots();
        assert_eq!(w(2, 3), "every 3rd arrival from the 2nd");
        assert_eq!(w(1, 12), "every 12th arrival from the 1st");
        assert_eq!(w(21, 22), "every 22nd arrival from the 21st");
    }
}
