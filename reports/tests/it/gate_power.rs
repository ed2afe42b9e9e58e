//! Power and false-alarm rate of the load gate's statistics, on simulated gates.
//!
//! Each simulated gate is what `harness gate` measures: 10 A/B rounds and 10 A/A rounds, run
//! alternately, four runs each. The simulated machine has the noise of a shared CI runner:
//! every run's value is off by a lognormal factor (2% for throughput and medians, 5% for
//! p99s) and the machine drifts by 0.1% per run over the whole gate (80 runs); a noisier
//! variant also has 3% of runs hit by a neighbour that makes them 8% slower. Every gate has
//! its own seed, so each count below is one fixed, repeatable experiment. Nothing is timed.
//!
//! The tolerances are those of such a machine, chosen from its A/A noise as the defaults are
//! from the development machine's: 3% for throughput, 5% for medians, 10% for p99s
//! (`common::quiet_gate_options`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reports::gate::{
    GateLevel, GateMetric, GateReport, GateRuns, GateSubject, Measurements, Round, Verdict,
    evaluate,
};
use reports::overhead::Load;

use crate::common::quiet_gate_options;

const GATES: u64 = 200;
const ROUNDS: usize = 10;

/// A simulated machine and the change the candidate carries.
#[derive(Clone, Copy)]
struct Simulation {
    /// Lognormal sigma of one run's throughput and medians; p99s get 2.5 times as much.
    noise: f64,
    /// Relative drift of every value per run.
    drift: f64,
    /// Chance that a run is slowed by a neighbour, and by how much.
    outlier_rate: f64,
    outlier_slowdown: f64,
    /// Candidate throughput relative to the base (0.9 = a 10% cut).
    cand_throughput: f64,
    /// Candidate overhead p99 relative to the base.
    cand_overhead_p99: f64,
    /// The metrics the runs measure.
    metrics: &'static [GateMetric],
}

const CI_RUNNER: Simulation = Simulation {
    noise: 0.02,
    drift: 0.001,
    outlier_rate: 0.0,
    outlier_slowdown: 0.08,
    cand_throughput: 1.0,
    cand_overhead_p99: 1.0,
    metrics: &SIMULATED,
};

/// The ratio metrics the simulation models (errors have tests of their own).
const SIMULATED: [GateMetric; 5] = [
    GateMetric::Throughput,
    GateMetric::OverheadP50,
    GateMetric::OverheadP99,
    GateMetric::TtftP50,
    GateMetric::TtftP99,
];

/// Throughput alone: a fifth of the work, for the tests about throughput.
const THROUGHPUT: &[GateMetric] = &[GateMetric::Throughput];

/// Standard normal by Box–Muller.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Simulation {
    /// One run of one side at position `slot` of the gate.
    fn run(&self, rng: &mut StdRng, slot: usize, candidate: bool) -> Measurements {
        let slow = if rng.random_bool(self.outlier_rate) {
            1.0 + self.outlier_slowdown
        } else {
            1.0
        };
        let drift = 1.0 + self.drift * slot as f64;
        let wide = self.noise * 2.5;
        let change = |factor: f64| if candidate { factor } else { 1.0 };
        // (metric, base value, noise, candidate factor); a slow run has less throughput and
        // higher latencies.
        let model = [
            (
                GateMetric::Throughput,
                1_000.0 / slow,
                self.noise,
                change(self.cand_throughput),
            ),
            (GateMetric::OverheadP50, 180.0 * slow, self.noise, 1.0),
            (
                GateMetric::OverheadP99,
                900.0 * slow,
                wide,
                change(self.cand_overhead_p99),
            ),
            (GateMetric::TtftP50, 52_000.0 * slow, self.noise, 1.0),
            (GateMetric::TtftP99, 81_000.0 * slow, wide, 1.0),
        ];
        model
            .into_iter()
            .filter(|(metric, ..)| self.metrics.contains(metric))
            .try_fold(Measurements::new(), |m, (metric, base, sigma, factor)| {
                let value = base * factor * drift * (sigma * normal(rng)).exp();
                m.with(metric, value)
            })
            .expect("simulated values are positive")
    }

    /// One gate: A/B and A/A rounds alternating, as the harness runs them.
    fn gate(&self, seed: u64) -> GateReport {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut slot = 0;
        let mut round = |rng: &mut StdRng, candidate: bool| {
            let mut next = |is_b: bool| {
                slot += 1;
                self.run(rng, slot, candidate && is_b)
            };
            let (a1, b1, b2, a2) = (next(false), next(true), next(true), next(false));
            Round::abba(a1, b1, b2, a2)
        };
        let (mut ab, mut aa) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ab.push(round(&mut rng, true));
            aa.push(round(&mut rng, false));
        }
        let level = GateLevel {
            load: Load::Closed { concurrency: 1 },
            stream: true,
        };
        evaluate(
            GateSubject::new("base", "candidate"),
            vec![(level, GateRuns { ab, aa })],
            &quiet_gate_options(),
        )
        .expect("a complete gate")
    }

    /// The verdicts of [`GATES`] gates for `metric`, and of the gates as a whole.
    fn verdicts(&self, metric: GateMetric) -> Counts {
        let mut counts = Counts::default();
        for seed in 0..GATES {
            let report = self.gate(seed);
            let metrics = &report.levels[0].metrics;
            let of_metric = metrics
                .iter()
                .find(|m| m.metric == metric)
                .expect("every metric is simulated")
                .verdict;
            counts.metric.add(of_metric);
            counts.gate.add(report.verdict);
            counts.other_regressions += metrics
                .iter()
                .filter(|m| m.metric != metric && m.verdict == Verdict::Regression)
                .count();
        }
        counts
    }
}

#[derive(Debug, Default)]
struct Tally {
    regression: usize,
    improvement: usize,
    unchanged: usize,
    inconclusive: usize,
}

impl Tally {
    fn add(&mut self, verdict: Verdict) {
        *match verdict {
            Verdict::Regression => &mut self.regression,
            Verdict::Improvement => &mut self.improvement,
            Verdict::Unchanged => &mut self.unchanged,
            Verdict::Inconclusive => &mut self.inconclusive,
        } += 1;
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Verdicts of the metric under study.
    metric: Tally,
    /// Verdicts of whole gates.
    gate: Tally,
    /// Regressions claimed on the metrics that did not change.
    other_regressions: usize,
}

#[test]
fn a_ten_percent_throughput_cut_is_flagged_in_at_least_95_percent_of_gates() {
    let counts = Simulation {
        cand_throughput: 0.90,
        ..CI_RUNNER
    }
    .verdicts(GateMetric::Throughput);
    println!("10% cut, 2% noise: {counts:?}");
    assert!(counts.metric.regression >= 190, "{counts:?}");
    assert!(counts.gate.regression >= 190, "{counts:?}");
    assert_eq!(counts.other_regressions, 0, "{counts:?}");
}

#[test]
fn identical_builds_are_never_flagged() {
    let counts = CI_RUNNER.verdicts(GateMetric::Throughput);
    println!("A/A, 2% noise: {counts:?}");
    assert_eq!(counts.gate.regression, 0, "{counts:?}");
    assert_eq!(counts.gate.improvement, 0, "{counts:?}");
    // Not by declaring everything inconclusive: a quiet machine says "unchanged".
    assert!(counts.gate.unchanged >= 190, "{counts:?}");
}

#[test]
fn a_change_within_the_tolerance_is_not_flagged() {
    let counts = Simulation {
        cand_throughput: 0.99,
        metrics: THROUGHPUT,
        ..CI_RUNNER
    }
    .verdicts(GateMetric::Throughput);
    println!("1% cut, 2% noise: {counts:?}");
    assert_eq!(counts.gate.regression, 0, "{counts:?}");
}

#[test]
fn a_tail_regression_is_flagged_against_its_own_tolerance() {
    // Overhead p99 has 5% noise per run and a 10% tolerance; the candidate adds 25%.
    let counts = Simulation {
        cand_overhead_p99: 1.25,
        ..CI_RUNNER
    }
    .verdicts(GateMetric::OverheadP99);
    println!("overhead p99 +25%, 5% noise: {counts:?}");
    assert!(counts.metric.regression >= 190, "{counts:?}");
    assert_eq!(counts.other_regressions, 0, "{counts:?}");
}

#[test]
fn a_throughput_gain_is_an_improvement_not_a_regression() {
    let counts = Simulation {
        cand_throughput: 1.10,
        metrics: THROUGHPUT,
        ..CI_RUNNER
    }
    .verdicts(GateMetric::Throughput);
    println!("10% gain, 2% noise: {counts:?}");
    assert!(counts.metric.improvement >= 190, "{counts:?}");
    assert_eq!(counts.gate.regression, 0, "{counts:?}");
}

#[test]
fn strong_drift_is_cancelled_by_the_abba_order() {
    // 1% per run: the last run of a gate is 80% slower than the first.
    let counts = Simulation {
        drift: 0.01,
        metrics: THROUGHPUT,
        ..CI_RUNNER
    }
    .verdicts(GateMetric::Throughput);
    println!("A/A, 1% drift per run: {counts:?}");
    assert_eq!(counts.gate.regression, 0, "{counts:?}");
    assert!(counts.gate.unchanged >= 190, "{counts:?}");
}

#[test]
fn twenty_percent_noise_claims_nothing_false() {
    for cand_throughput in [1.0, 0.9] {
        let counts = Simulation {
            noise: 0.20,
            cand_throughput,
            metrics: THROUGHPUT,
            ..CI_RUNNER
        }
        .verdicts(GateMetric::Throughput);
        println!("throughput x{cand_throughput}, 20% noise: {counts:?}");
        // A 10% cut inside 20% noise may, rarely, still clear the noise: that is a true
        // detection. What must never happen is a verdict the truth contradicts.
        let true_regressions = match cand_throughput < 1.0 {
            true => counts.gate.regression,
            false => 0,
        };
        assert_eq!(counts.gate.regression, true_regressions, "{counts:?}");
        assert_eq!(
            counts.gate.improvement + counts.gate.unchanged,
            0,
            "{counts:?}"
        );
        assert!(
            counts.gate.inconclusive >= GATES as usize * 9 / 10,
            "{counts:?}"
        );
    }
}

#[test]
fn noisy_neighbours_cost_power_but_raise_no_false_alarm() {
    // 3% of runs are 8% slower: about one round in nine has an outlier run in it.
    let neighbours = Simulation {
        outlier_rate: 0.03,
        metrics: THROUGHPUT,
        ..CI_RUNNER
    };
    let same = neighbours.verdicts(GateMetric::Throughput);
    println!("A/A, 2% noise and neighbours: {same:?}");
    assert_eq!(same.gate.regression + same.gate.improvement, 0, "{same:?}");
    let cut = Simulation {
        cand_throughput: 0.90,
        ..neighbours
    }
    .verdicts(GateMetric::Throughput);
    println!("10% cut, 2% noise and neighbours: {cut:?}");
    // What is not flagged is inconclusive (the A/A rounds saw the neighbours), never unchanged.
    assert!(cut.gate.regression >= 170, "{cut:?}");
    assert_eq!(
        cut.gate.regression + cut.gate.inconclusive,
        GATES as usize,
        "{cut:?}"
    );
}
