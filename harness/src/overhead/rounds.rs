//! The rounds of one level: every side in turn, the order reversed from one round to the next
//! (direct, gateway, gateway, direct, ...), so a drift of the machine hits every side alike.

use std::time::Duration;

use reports::model::{STEAL_NOTED, short};
use reports::overhead::{LevelRecord, Load, RoundFigures};
use scenarios::client::Client;

use super::drive::{Requests, drive};
use super::tally::{Readings, SideTally};
use crate::process::{MachineClock, Process, ProcessClock};

/// Unrecorded load on every side before a level's first round, so connection pools hold the
/// level's connections and the first round measures the same thing as the last.
const WARM_UP: Duration = Duration::from_millis(300);

/// One side as its rounds drive it.
pub(super) struct Driven {
    pub name: String,
    pub client: Client,
    /// The process serving the side, where it is known: its CPU time per round is read from
    /// `/proc`, with every process under it.
    pub process: Option<u32>,
}

/// One level's rounds. `sides[0]` is direct, the rest the proxies in order.
pub(super) struct Level<'a> {
    pub sides: &'a [Driven],
    pub requests: Requests,
    pub load: Load,
    pub rounds: usize,
    pub round: Duration,
}

impl Level<'_> {
    /// Warms up, runs every round and returns what each side measured; one progress line per
    /// round on stderr.
    pub async fn run(&self) -> LevelRecord {
        for side in self.sides {
            drive(&side.client, &self.requests, self.load, WARM_UP).await;
        }
        let share = self.round / self.sides.len() as u32;
        let mut tallies: Vec<SideTally> = self.sides.iter().map(|_| SideTally::new()).collect();
        for index in 0..self.rounds {
            let mut order: Vec<usize> = (0..self.sides.len()).collect();
            if index % 2 == 1 {
                order.reverse();
            }
            let mut figures = vec![None; self.sides.len()];
            for side in order {
                let Driven {
                    client, process, ..
                } = &self.sides[side];
                let mut machine = MachineClock::new();
                let mut process = process.map(|pid| ProcessClock::new(Process::Tree(pid)));
                let tally = drive(client, &self.requests, self.load, share).await;
                let readings = Readings {
                    steal_percent: machine.steal_percent(),
                    cpu: process.as_mut().and_then(ProcessClock::spent),
                };
                figures[side] = Some(tallies[side].push(&tally, readings));
            }
            eprintln!("{}", self.progress(index, &figures));
        }
        let mut sides = tallies.into_iter().map(SideTally::record);
        let direct = sides.next().unwrap_or_else(|| SideTally::new().record());
        LevelRecord {
            load: self.load,
            stream: self.requests.stream,
            direct,
            through: sides.collect(),
        }
    }

    /// `c=16 plain, round 3/6: direct 9120 req/s p50 95 us · gateway 6300 req/s p50 210 us`
    fn progress(&self, index: usize, figures: &[Option<RoundFigures>]) -> String {
        let sides: Vec<String> = self
            .sides
            .iter()
            .zip(figures)
            .map(|(Driven { name, .. }, figures)| match figures {
                Some(f) => format!(
                    "{name} {} req/s p50 {} us{}{}",
                    short(f.throughput().unwrap_or(0.0)),
                    f.e2e.map_or("-".to_owned(), |q| q.p50.to_string()),
                    match f.failed {
                        0 => String::new(),
                        failed => format!(" ({failed} failed)"),
                    },
                    match f.steal_percent {
                        Some(steal) if steal >= STEAL_NOTED => format!(" (steal {steal:.0}%)"),
                        _ => String::new(),
                    }
                ),
                None => format!("{name} -"),
            })
            .collect();
        format!(
            "{} {}, round {}/{}: {}",
            self.load,
            if self.requests.stream {
                "streamed"
            } else {
                "plain"
            },
            index + 1,
            self.rounds,
            sides.join(" · ")
        )
    }
}
