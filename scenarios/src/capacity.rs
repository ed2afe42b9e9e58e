//! Per-stage SLO verdicts: which load steps of a run still met every SLO.
//!
//! Each held stage (one that keeps its user count) is judged on its own intervals as if it
//! were a run of its own; ramps are skipped because they mix two loads. The capacity is the
//! highest user count whose stage passed, and only counts while every lower stage passed too:
//! a pass above a failure is noise, not capacity.

use std::time::Duration;

use reports::RunResult;
use reports::slo::{Slo, SloResult, evaluate};

use crate::load::Stages;

/// The verdict on one held stage.
#[derive(Clone, Debug)]
pub struct StageVerdict {
    pub users: usize,
    /// Seconds of the run the stage covers, `[start, end)`.
    pub start: u32,
    pub end: u32,
    pub requests: u64,
    pub results: Vec<SloResult>,
}

impl StageVerdict {
    /// True when every SLO passed on this stage.
    pub fn passed(&self) -> bool {
        self.results.iter().all(SloResult::passed)
    }
}

/// Judges every held stage of `stages` in `run` against `slos`.
pub fn by_stage(run: &RunResult, slos: &[Slo], stages: &Stages) -> Vec<StageVerdict> {
    let mut previous = 0;
    let mut verdicts = Vec::new();
    for (start, stage) in stages.timeline() {
        let held = stage.target == previous && stage.target > 0 && !stage.duration.is_zero();
        previous = stage.target;
        if !held {
            continue;
        }
        let first = whole_secs(start);
        let last = whole_secs(start + stage.duration);
        let window = window(run, first, last);
        verdicts.push(StageVerdict {
            users: stage.target,
            start: first,
            end: last,
            requests: window.totals.requests,
            results: evaluate(slos, &window),
        });
    }
    verdicts
}

/// The highest user count that met every SLO, with all lower stages passing too.
pub fn capacity(verdicts: &[StageVerdict]) -> Option<usize> {
    verdicts
        .iter()
        .take_while(|v| v.passed())
        .map(|v| v.users)
        .last()
}

/// The intervals `[first, last)` of `run` as a run of their own, renumbered from zero.
fn window(run: &RunResult, first: u32, last: u32) -> RunResult {
    let mut window = RunResult::new(
        run.scenario.clone(),
        toml::Table::new(),
        run.environment.clone(),
        run.started_at,
    );
    window.goodput_limits = run.goodput_limits;
    for interval in run
        .intervals
        .iter()
        .filter(|i| (first..last).contains(&i.second))
    {
        let mut interval = interval.clone();
        interval.second -= first;
        window.push_interval(interval);
    }
    window.finish(run.started_at, Duration::from_secs(u64::from(last - first)));
    window
}

fn whole_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use reports::model::{Environment, Interval, Metric, new_histogram};
    use reports::slo::parse_slos;

    use super::*;

    /// A run whose TTFT is 100 ms per second of 10 users and 900 ms at 20 users.
    fn run() -> RunResult {
        let mut run = RunResult::new(
            "stress",
            toml::Table::new(),
            Environment::default(),
            chrono::Utc::now(),
        );
        for second in 0..40u32 {
            let users = if second < 20 { 10 } else { 20 };
            let mut ttft = new_histogram();
            for _ in 0..50 {
                ttft.record(if users == 10 { 100_000 } else { 900_000 })
                    .expect("in range");
            }
            let mut interval = Interval::new(second);
            interval.active_users = users;
            interval.counters.requests = 50;
            interval.counters.ok = 50;
            interval.histograms.insert(Metric::Ttft, &ttft);
            run.push_interval(interval);
        }
        run
    }

    #[test]
    fn held_stages_are_judged_alone() {
        let stages: Stages = "0s:10,20s:10,0s:20,20s:20".parse().expect("valid");
        let slos = parse_slos(
            "[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"500ms\"\n",
        )
        .expect("valid");
        let verdicts = by_stage(&run(), &slos, &stages);
        assert_eq!(verdicts.len(), 2);
        assert_eq!(
            (verdicts[0].users, verdicts[0].start, verdicts[0].end),
            (10, 0, 20)
        );
        assert!(verdicts[0].passed());
        assert_eq!(verdicts[0].requests, 1000);
        assert!(!verdicts[1].passed());
        assert_eq!(capacity(&verdicts), Some(10));
    }
}
