//! The console table of an overhead report, and the number formats it shares with the page.

use std::fmt;

use super::estimate::Interval;
use super::report::{ComparedSide, LevelResult, OverheadReport};
use crate::model::{NotedSteal, STEAL_NOTED, Summary, short, significant};

/// `+121 [112, 130]`: an added time in microseconds with its interval.
pub(super) fn added_us(interval: &Interval) -> String {
    format!(
        "{:+.0} [{:.0}, {:.0}]",
        interval.estimate, interval.low, interval.high
    )
}

/// `0.620 [0.600, 0.640]`, three significant digits each, so a gateway at a small fraction of
/// direct (`0.00412`) does not print as zero.
pub(super) fn ratio(interval: &Interval) -> String {
    format!(
        "{} [{}, {}]",
        significant(interval.estimate),
        significant(interval.low),
        significant(interval.high)
    )
}

/// `14/46`: p50 and p99 of the `x-gateway-overhead-us` header, or `-` when it was not sent.
fn header_p50_p99(summary: Option<&Summary>) -> String {
    summary.map_or("-".to_owned(), |s| format!("{}/{}", s.p50, s.p99))
}

/// `streamed` or `plain`.
pub(super) fn stream_label(stream: bool) -> &'static str {
    if stream { "streamed" } else { "plain" }
}

/// Failed requests (and dropped arrivals) of a side and of direct: `0/0`, `3+1 dropped/0`.
fn errors(level: &LevelResult, side: &ComparedSide) -> String {
    let count = |record: &super::SideRecord| match record.dropped {
        0 => record.errors.total().to_string(),
        dropped => format!("{}+{dropped} dropped", record.errors.total()),
    };
    format!(
        "{}/{}",
        count(&side.side.record),
        count(&level.direct.record)
    )
}

/// CPU microseconds per request of a side's processes and of direct's upstream: `84/40`, a
/// `-` for either where its processes were not read.
fn cpu_per_request(level: &LevelResult, side: &ComparedSide) -> String {
    let us = |record: &super::SideRecord| {
        record
            .cpu_per_request_us()
            .map_or("-".to_owned(), |us| format!("{us:.0}"))
    };
    format!("{}/{}", us(&side.side.record), us(&level.direct.record))
}

/// How many columns [`OverheadReport::rows`] has.
pub(super) const COLUMNS: usize = 13;

/// The columns of [`OverheadReport::rows`].
pub(super) const HEADER: [&str; COLUMNS] = [
    "level",
    "stream",
    "side",
    "direct p50",
    "added p50",
    "p90",
    "added p99",
    "added ttft p50",
    "ttft p99",
    "req/s ratio",
    "header p50/p99",
    "cpu us/req side/direct",
    "errors side/direct",
];

impl OverheadReport {
    /// One row per level, stream mode and proxy side.
    pub(super) fn rows(&self) -> Vec<[String; COLUMNS]> {
        let dash = || "-".to_owned();
        let mut rows = Vec::new();
        for level in &self.levels {
            for side in &level.sides {
                let e2e = side.added_e2e.as_ref();
                let ttft = side.added_ttft.as_ref();
                rows.push([
                    level.load.to_string(),
                    stream_label(level.stream).to_owned(),
                    side.name.clone(),
                    level
                        .direct
                        .record
                        .e2e
                        .map_or_else(dash, |s| s.p50.to_string()),
                    e2e.map_or_else(dash, |a| added_us(&a.p50)),
                    e2e.map_or_else(dash, |a| format!("{:+.0}", a.p90.estimate)),
                    e2e.map_or_else(dash, |a| added_us(&a.p99)),
                    ttft.map_or_else(dash, |a| added_us(&a.p50)),
                    ttft.map_or_else(dash, |a| format!("{:+.0}", a.p99.estimate)),
                    side.throughput_ratio.as_ref().map_or_else(dash, ratio),
                    header_p50_p99(side.side.record.header_overhead.as_ref()),
                    cpu_per_request(level, side),
                    errors(level, side),
                ]);
            }
        }
        rows
    }

    /// One line per side and stream mode with open-model levels: the highest rate within the
    /// bound.
    fn bound_lines(&self) -> Vec<String> {
        self.within_bound
            .iter()
            .map(|b| {
                let rate = match b.highest_rate {
                    Some(rate) => format!("up to {}/s", short(rate)),
                    None => "at none of the tested rates".to_owned(),
                };
                format!(
                    "{} ({}): added p99 within {} us {rate}",
                    b.side,
                    stream_label(b.stream),
                    self.settings.p99_bound_us
                )
            })
            .collect()
    }

    /// One line per level and proxy side after the first: its latency against the first side's
    /// in the same rounds, and at closed levels its throughput over the first side's.
    fn against_lines(&self) -> Vec<String> {
        let Some(first) = self.subject.sides.first() else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for level in &self.levels {
            for side in &level.sides {
                if let Some(against) = &side.against_first {
                    let throughput = side
                        .throughput_against_first
                        .as_ref()
                        .map(|r| format!(", req/s {}", ratio(r)))
                        .unwrap_or_default();
                    lines.push(format!(
                        "{} {}: {} against {}: p50 {}, p99 {} us{throughput}",
                        level.load,
                        stream_label(level.stream),
                        side.name,
                        first.name,
                        added_us(&against.p50),
                        added_us(&against.p99)
                    ));
                }
            }
        }
        lines
    }

    /// A line when the machine's hypervisor took a noticeable share of its CPU time in some
    /// side's rounds: every side is slower then, so the figures move more between runs.
    fn steal_line(&self) -> Option<String> {
        let steal = self
            .levels
            .iter()
            .flat_map(|level| {
                std::iter::once(&level.direct).chain(level.sides.iter().map(|s| &s.side))
            })
            .flat_map(|side| &side.record.rounds)
            .filter_map(|round| round.steal_percent);
        NotedSteal::of(steal).map(|NotedSteal { noted, read, most }| {
            format!(
                "steal: the machine's hypervisor took {STEAL_NOTED:.0}% or more of its CPU time \
                 in {noted} of {read} side rounds (up to {most:.0}%); every side is slower in \
                 such rounds, so these figures move more between runs than on a machine whose \
                 CPUs are its own"
            )
        })
    }

    /// What follows the table: the highest rates within the p99 bound, each later side against
    /// the first, and how much of the machine its hypervisor took.
    pub(super) fn notes(&self) -> Vec<String> {
        let mut notes = self.bound_lines();
        notes.extend(self.against_lines());
        notes.extend(self.steal_line());
        notes
    }
}

/// The console table the harness prints.
impl fmt::Display for OverheadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sides: Vec<String> = self
            .subject
            .sides
            .iter()
            .map(|s| format!("{} {}", s.name, s.url))
            .collect();
        writeln!(
            f,
            "overhead of {} over direct {}",
            sides.join(" and "),
            self.subject.direct
        )?;
        writeln!(
            f,
            "{} rounds of {} s per level; microseconds; added = side minus direct in the same \
             round, 20% trimmed mean over rounds [{}% interval]",
            self.settings.rounds,
            short(self.settings.round_secs),
            short(self.confidence * 100.0)
        )?;
        let header = HEADER.map(str::to_owned);
        let rows = self.rows();
        crate::text_table::write(f, &header, &rows, |column| column <= 2)?;
        for line in self.notes() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_three_significant_digits() {
        let interval = |estimate, low, high| Interval {
            estimate,
            low,
            high,
        };
        assert_eq!(ratio(&interval(0.62, 0.6, 0.64)), "0.620 [0.600, 0.640]");
        // A gateway at a small fraction of direct is not printed as zero.
        assert_eq!(
            ratio(&interval(0.00412, 0.004, 0.0045)),
            "0.00412 [0.00400, 0.00450]"
        );
    }
}
