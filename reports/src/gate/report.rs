//! The outcome of a gate: `gate.json` is its serde form, `gate.html` and the console table
//! render it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::level::GateLevel;
use super::metric::{GateMetric, Tolerance};
use super::rounds::{GateRuns, RunRef};
use super::{GATE_HTML, GATE_JSON, GateOptions, GateSubject, beyond_noise};
use crate::error::ReportError;
use crate::model::{NotedSteal, STEAL_NOTED};
use crate::stats::{
    Direction, Resampling, Scale, Verdict, bootstrap, percent, signed_rank_above_zero, trimmed_mean,
};

/// Everything a gate measured and concluded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub schema_version: u32,
    pub subject: GateSubject,
    pub settings: GateOptions,
    /// The verdict of the gate: the most severe of its levels'.
    pub verdict: Verdict,
    /// Each load level's gate, in the order they ran within a run.
    pub levels: Vec<LevelGate>,
}

/// The gate of one load level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelGate {
    pub level: GateLevel,
    /// The most severe of its metrics'.
    pub verdict: Verdict,
    /// One entry per metric that every run measured, in [`GateMetric::ALL`] order.
    pub metrics: Vec<MetricGate>,
    /// Metrics no run measured (e.g. overhead against a gateway without the header).
    pub not_measured: Vec<GateMetric>,
    /// Runs whose load generator could not keep up (late past the saturation bound, or open
    /// arrivals dropped): their figures describe the client as much as the gateway.
    pub saturated: Vec<RunRef>,
    /// The measurements the verdict rests on, so it can be checked or recomputed.
    pub runs: GateRuns,
}

/// The gate of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricGate {
    pub metric: GateMetric,
    pub direction: Direction,
    pub tolerance: Tolerance,
    /// Geometric mean (mean, for the error rate) over the base runs of the A/B rounds.
    pub base: f64,
    /// The same over the candidate runs.
    pub cand: f64,
    /// Candidate vs base.
    pub ab: Estimate,
    /// Base vs base: the self-check.
    pub aa: Estimate,
    pub verdict: Verdict,
}

/// The statistics of one set of rounds for one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Each round's change on the metric's [`Scale`], in round order:
    /// `ln(geomean(B) / geomean(A))`, or `mean(B) - mean(A)` for the error rate.
    pub changes: Vec<f64>,
    /// The 20% trimmed mean of the changes as shown: a relative change, `exp(m) - 1` (-0.1 =
    /// 10% lower), or a difference of shares (0.05 = 5 points more).
    pub change: f64,
    /// Bootstrap interval of `change` at the gate's confidence.
    pub interval: (f64, f64),
    /// One-sided signed-rank p-value that the change is worse than the tolerance.
    pub p_worse: f64,
    /// One-sided signed-rank p-value that the change is better than the tolerance.
    pub p_better: f64,
}

impl Estimate {
    pub(super) fn of(
        changes: Vec<f64>,
        metric: GateMetric,
        tolerance: Tolerance,
        resampling: Resampling,
    ) -> Estimate {
        let scale = metric.scale();
        // A metric is judged only where runs measured it, so there are changes to resample;
        // were there none, the interval would be NaN, which no verdict but inconclusive reads.
        let (low, high) = bootstrap([&changes], resampling, |[c]| Some(trimmed_mean(c)))
            .unwrap_or((f64::NAN, f64::NAN));
        let (lower, upper) = scale.band(tolerance.fraction());
        let shifted = |edge: f64, sign: f64| -> Vec<f64> {
            changes.iter().map(|x| sign * (x - edge)).collect()
        };
        let p_above = signed_rank_above_zero(&shifted(upper, 1.0));
        let p_below = signed_rank_above_zero(&shifted(lower, -1.0));
        let (p_worse, p_better) = match metric.direction() {
            Direction::LowerIsBetter => (p_above, p_below),
            Direction::HigherIsBetter => (p_below, p_above),
        };
        Estimate {
            change: scale.shown(trimmed_mean(&mut changes.clone())),
            interval: (scale.shown(low), scale.shown(high)),
            changes,
            p_worse,
            p_better,
        }
    }

    /// What the interval alone says against `tolerance`, and the signed-rank p-value on that
    /// side (of a worse change, unless it is an improvement).
    pub(super) fn claim(&self, tolerance: Tolerance, direction: Direction) -> (Verdict, f64) {
        let claimed = Verdict::judge(self.interval, tolerance.fraction(), direction);
        let p = match claimed {
            Verdict::Improvement => self.p_better,
            _ => self.p_worse,
        };
        (claimed, p)
    }
}

impl MetricGate {
    /// Whether this verdict counts toward its level's: every verdict but an inconclusive
    /// tail's ([`GateMetric::is_tail`]).
    pub fn decides(&self) -> bool {
        !(self.metric.is_tail() && self.verdict == Verdict::Inconclusive)
    }

    /// The verdict as tables show it: an inconclusive tail in lower case, as it decides
    /// nothing.
    pub fn verdict_label(&self) -> String {
        if self.decides() {
            self.verdict.to_string()
        } else {
            "inconclusive tail".to_owned()
        }
    }

    /// One sentence saying why the verdict is what it is.
    pub fn reason(&self) -> String {
        let scale = self.metric.scale();
        let band = format!("the {} tolerance", scale.margin(self.tolerance.fraction()));
        let estimate = format!(
            "{} {}",
            scale.format(self.ab.change),
            interval(scale, self.ab.interval)
        );
        let (claimed, p) = self.ab.claim(self.tolerance, self.direction);
        let reason = match (self.verdict, claimed) {
            (Verdict::Regression | Verdict::Improvement, _) => format!(
                "{estimate}: the whole interval is {} than {band} and the A/A noise (signed-rank p = {})",
                if self.verdict == Verdict::Regression {
                    "worse"
                } else {
                    "better"
                },
                p_value(p)
            ),
            (Verdict::Unchanged, _) => format!("{estimate}: the whole interval is within {band}"),
            (Verdict::Inconclusive, Verdict::Inconclusive) => format!(
                "{estimate}: the interval straddles an edge of {band}: more rounds or a quieter machine would decide"
            ),
            (Verdict::Inconclusive, _) if !beyond_noise(&self.ab, &self.aa) => format!(
                "{estimate}: beyond {band}, but the A/A self-check moved {} with no change at all: too noisy to decide",
                interval(scale, self.aa.interval)
            ),
            (Verdict::Inconclusive, _) => format!(
                "{estimate}: beyond {band}, but not in enough rounds to be sure (signed-rank p = {})",
                p_value(p)
            ),
        };
        if self.decides() {
            reason
        } else {
            format!("{reason} (a tail: it cannot hold the level inconclusive)")
        }
    }
}

impl GateReport {
    /// The process exit code for this gate (docs/design.md): 3 regression, 4 inconclusive, else 0.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }

    /// Every judged metric with its level, in report order.
    pub fn judged(&self) -> impl Iterator<Item = (&LevelGate, &MetricGate)> {
        self.levels
            .iter()
            .flat_map(|l| l.metrics.iter().map(move |m| (l, m)))
    }

    /// Why the gate decided as it did: the reason of every metric that made the verdict.
    pub fn summary(&self) -> String {
        if self.verdict == Verdict::Unchanged {
            let undecided: Vec<String> = self
                .judged()
                .filter(|(_, m)| !m.decides())
                .map(|(l, m)| format!("{} {}", l.level, m.metric))
                .collect();
            return match undecided.as_slice() {
                [] => "every metric's interval lies within its tolerance".to_owned(),
                tails => format!(
                    "every deciding metric's interval lies within its tolerance (undecided tails: {})",
                    tails.join(", ")
                ),
            };
        }
        self.judged()
            .filter(|(_, m)| m.verdict == self.verdict)
            .map(|(l, m)| format!("{} {}: {}", l.level, m.metric, m.reason()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Writes `gate.json` and `gate.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let write_err = |path: &Path, source| ReportError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        let json_path = dir.join(GATE_JSON);
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| write_err(&json_path, std::io::Error::other(e)))?;
        std::fs::write(&json_path, json).map_err(|e| write_err(&json_path, e))?;
        let html_path = dir.join(GATE_HTML);
        let html = super::render_gate(self)?;
        std::fs::write(&html_path, html).map_err(|e| write_err(&html_path, e))
    }
}

/// `[-11.2%, -8.9%]`, or `[+4.1 pp, +6.0 pp]` for points.
pub(super) fn interval(scale: Scale, (low, high): (f64, f64)) -> String {
    format!("[{}, {}]", scale.format(low), scale.format(high))
}

/// A p-value with two significant digits, or `< 0.001`.
pub(super) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// The console table the harness prints, then the summary line.
impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounds = self
            .levels
            .first()
            .map_or((0, 0), |l| (l.runs.ab.len(), l.runs.aa.len()));
        writeln!(
            f,
            "gate: base {} vs candidate {}, {} A/B and {} A/A rounds",
            self.subject.base, self.subject.cand, rounds.0, rounds.1
        )?;
        if let Some(probe) = &self.subject.probe {
            writeln!(f, "{probe}")?;
        }
        let header = [
            "level",
            "metric",
            "tolerance",
            "base",
            "candidate",
            "change",
            "interval",
            "A/A interval",
            "p worse",
            "verdict",
        ]
        .map(str::to_owned);
        let rows: Vec<[String; 10]> = self
            .judged()
            .map(|(l, m)| {
                let scale = m.metric.scale();
                [
                    l.level.to_string(),
                    m.metric.label().to_owned(),
                    scale.margin(m.tolerance.fraction()),
                    m.metric.format(m.base),
                    m.metric.format(m.cand),
                    scale.format(m.ab.change),
                    interval(scale, m.ab.interval),
                    interval(scale, m.aa.interval),
                    p_value(m.ab.p_worse),
                    m.verdict_label(),
                ]
            })
            .collect();
        crate::text_table::write(f, &header, &rows, |column| matches!(column, 0 | 1 | 9))?;
        for level in &self.levels {
            if !level.not_measured.is_empty() {
                let names: Vec<&str> = level.not_measured.iter().map(|m| m.label()).collect();
                writeln!(
                    f,
                    "{}: not measured by any run: {}",
                    level.level,
                    names.join(", ")
                )?;
            }
            if let Some(line) = level.saturation_line() {
                writeln!(f, "{}: {line}", level.level)?;
            }
            if let Some(line) = level.steal_line() {
                writeln!(f, "{}: {line}", level.level)?;
            }
        }
        writeln!(
            f,
            "{} (exit {}): {}",
            self.verdict,
            self.exit_code(),
            self.summary()
        )
    }
}

/// `open-model rate 250/s: 50.0% of the base's capacity of 500 req/s (c=16 for 2 s)`
impl fmt::Display for super::CapacityProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::model::significant;
        write!(
            f,
            "open-model rate {}/s: {} of the base's capacity of {} req/s (c={} for {} s)",
            significant(self.rate),
            percent(self.rate / self.capacity).trim_start_matches('+'),
            significant(self.capacity),
            self.concurrency,
            significant(self.secs)
        )
    }
}

impl LevelGate {
    /// One sentence when the machine's hypervisor took a noticeable share of its CPU time
    /// during some runs: every side is slower in those, which widens the noise the verdict
    /// is judged against.
    pub fn steal_line(&self) -> Option<String> {
        NotedSteal::of(self.runs.steal()).map(|NotedSteal { noted, read, most }| {
            format!(
                "the machine's hypervisor took {STEAL_NOTED:.0}% or more of its CPU time \
                 (steal) in {noted} of the {read} runs that read it, up to {most:.0}%: every \
                 side is slower in such runs"
            )
        })
    }

    /// One sentence naming the runs whose generator could not keep up, if any.
    pub fn saturation_line(&self) -> Option<String> {
        let first = self.saturated.first()?;
        let total = 4 * (self.runs.ab.len() + self.runs.aa.len());
        Some(format!(
            "load generator saturated in {} of {total} runs (first: {first}): their figures \
             describe the client as much as the gateway",
            self.saturated.len()
        ))
    }
}
