//! Capacity: which load levels of a run still met every SLO.
//!
//! A level is judged on its own intervals as if it were a run of its own. For closed stages
//! ([`by_stage`]) each held stage is a level (ramps are skipped because they mix two loads); for
//! a rate sweep ([`sweep`]) each phase is, from its start to the next phase's start, so the
//! answers it was still waiting for when its load ended count as its own (a phase after the
//! first starts on a whole second, so no second holds the answers of two phases). The capacity
//! is the highest level that passed, and only counts while every lower level passed too: a pass
//! above a failure is noise, not capacity.

use std::time::Duration;

use reports::RunResult;
use reports::model::{GeneratorSample, Metric, Offered, SweepLevel, second_of};
use reports::slo::{Slo, SloMetric, SloResult, evaluate};

use crate::load::{Ran, Stages, Sweep};

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
        let first = second_of(start);
        let last = second_of(start + stage.duration);
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

/// Judges each phase of a sweep that ran as `ran` on its own seconds against every SLO but
/// `capacity` (which is about the sweep as a whole).
pub fn sweep(run: &RunResult, slos: &[Slo], plan: &Sweep, ran: &[Ran]) -> reports::model::Sweep {
    let slos: Vec<Slo> = slos
        .iter()
        .filter(|slo| slo.metric != SloMetric::Capacity)
        .cloned()
        .collect();
    let run_end = second_of(run.wall_time) + 1;
    let levels = ran
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let first = second_of(phase.start);
            let last = ran
                .get(i + 1)
                .map_or(run_end, |next| second_of(next.start))
                .max(first + 1);
            let judged = window(run, first, last);
            // Rates are per second of offered load: the drain after it adds answers, not time.
            let offered_secs = match phase.offered {
                Offered::Synchronous => plan.baseline,
                Offered::Throughput { .. } => plan.probe,
                Offered::Rate { .. } => plan.per_rate,
            }
            .as_secs_f64()
            .max(1e-3);
            let failed: Vec<SloResult> = evaluate(&slos, &judged)
                .into_iter()
                .filter(|result| !result.passed())
                .collect();
            // A passed level that saturated may owe its pass to the client; a failed one only
            // if its seconds before the saturation met every SLO, as for a whole run.
            let saturated = if failed.is_empty() {
                !judged.saturated_seconds().is_empty()
            } else {
                judged.failure_rests_on_saturation(&slos)
            };
            let totals = &judged.totals;
            let achieved_rps = totals.requests as f64 / offered_secs;
            let mean_latency_s = judged
                .metrics
                .get(Metric::Latency)
                .map_or(0.0, |h| h.mean() / 1e6);
            SweepLevel {
                offered: phase.offered,
                start: first,
                end: last,
                requests: totals.requests,
                achieved_rps,
                goodput_rps: totals.good as f64 / offered_secs,
                streams: achieved_rps * mean_latency_s,
                ttft_p95_ms: judged
                    .metrics
                    .get(Metric::Ttft)
                    .map(|h| h.value_at_quantile(0.95) as f64 / 1e3),
                failed: failed.iter().map(|result| result.slo.to_string()).collect(),
                saturated,
            }
        })
        .collect();
    reports::model::Sweep { levels }
}

/// The intervals and generator samples of seconds `[first, last)` of `run` as a run of its own,
/// renumbered from zero.
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
    for sample in run
        .generator
        .iter()
        .filter(|s| (first..last).contains(&s.second))
    {
        window.push_generator_sample(GeneratorSample {
            second: sample.second - first,
            ..*sample
        });
    }
    window.finish(run.started_at, Duration::from_secs(u64::from(last - first)));
    window
}

#[cfg(test)]
mod tests {
    use reports::model::{Environment, Interval, Limit, Metric, new_histogram};
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

    fn ttft_p95() -> Vec<Slo> {
        parse_slos("[[slo]]\nmetric = \"ttft\"\nstat = \"p95\"\nop = \"<\"\nvalue = \"500ms\"\n")
            .expect("valid")
    }

    /// A sweep of 5 s baseline and probe, then 10 s at each of two rates.
    fn plan() -> Sweep {
        Sweep {
            baseline: Duration::from_secs(5),
            probe: Duration::from_secs(5),
            rates: 2,
            per_rate: Duration::from_secs(10),
            arrivals: crate::load::Arrivals::Constant,
            users: 20,
        }
    }

    /// The phases of [`plan`] as they ran, starting at the given seconds: the baseline, the
    /// probe, then 25 and 50 req/s.
    fn ran(starts: [f64; 4]) -> [Ran; 4] {
        let offered = [
            Offered::Synchronous,
            Offered::Throughput { users: 20 },
            Offered::Rate { rps: 25.0 },
            Offered::Rate { rps: 50.0 },
        ];
        std::array::from_fn(|i| Ran {
            offered: offered[i],
            start: Duration::from_secs_f64(starts[i]),
            end: Duration::from_secs_f64(starts[i] + 4.0),
        })
    }

    #[test]
    fn sweep_phases_are_judged_from_their_start_to_the_next() {
        let (plan, ran) = (plan(), ran([0.0, 5.2, 10.5, 20.4]));
        let mut run = run();
        run.finish(run.started_at, Duration::from_secs_f64(39.5));
        let sweep = sweep(&run, &ttft_p95(), &plan, &ran);
        let spans: Vec<(u32, u32)> = sweep.levels.iter().map(|l| (l.start, l.end)).collect();
        assert_eq!(spans, [(0, 5), (5, 10), (10, 20), (20, 40)]);
        let passed: Vec<bool> = sweep.levels.iter().map(SweepLevel::passed).collect();
        // TTFT is 100 ms up to second 20, 900 ms after.
        assert_eq!(passed, [true, true, true, false]);
        let first_rate = &sweep.levels[2];
        assert_eq!(first_rate.requests, 500);
        assert!((first_rate.achieved_rps - 50.0).abs() < 1e-9);
        assert_eq!(first_rate.ttft_p95_ms.map(f64::round), Some(100.0));
        assert_eq!(sweep.capacity().map(|c| c.rps), Some(25.0));
        assert!(sweep.levels.iter().all(|l| !l.saturated));
    }

    #[test]
    fn a_rate_that_failed_before_the_generator_saturated_is_the_targets_limit() {
        let (plan, ran) = (plan(), ran([0.0, 5.0, 10.0, 20.0]));
        // TTFT is 100 ms up to second 20 and 900 ms after: the 50/s rate fails from its
        // first second on.
        let judged = |saturated: &[u32]| {
            let mut run = run();
            run.finish(run.started_at, Duration::from_secs(40));
            run.generator = saturated
                .iter()
                .map(|&second| GeneratorSample {
                    second,
                    saturated: true,
                    ..GeneratorSample::default()
                })
                .collect();
            sweep(&run, &ttft_p95(), &plan, &ran)
        };

        // Saturated late in the failing rate: the failure came first, and is the target's.
        let late = judged(&[30]);
        assert!(!late.levels[3].saturated);
        assert_eq!(late.limit(), Limit::Target);
        assert_eq!(late.capacity().map(|c| c.rps), Some(25.0));
        // Saturated in the failing rate's first second: nothing before it to judge.
        let first = judged(&[20]);
        assert!(first.levels[3].saturated);
        assert_eq!(first.limit(), Limit::Generator);
        // Saturated in a rate that passed: the pass stands, the saturation is reported.
        let passed = judged(&[15]);
        assert!(passed.levels[2].saturated);
        assert_eq!(passed.limit(), Limit::Generator);
    }

    #[test]
    fn held_stages_are_judged_alone() {
        let stages: Stages = "0s:10,20s:10,0s:20,20s:20".parse().expect("valid");
        let verdicts = by_stage(&run(), &ttft_p95(), &stages);
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
