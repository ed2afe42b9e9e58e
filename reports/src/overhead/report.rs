//! The outcome of an overhead measurement: `overhead.json` is its serde form, `overhead.html`
//! and the console table render it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::estimate::{self, Added, Interval};
use super::record::{Load, RoundFigures, SideRecord};
use super::{LevelRecord, OVERHEAD_HTML, OVERHEAD_JSON, OVERHEAD_SCHEMA_VERSION, OverheadError};
use crate::error::ReportError;

/// What was measured: the upstream reached directly, and each proxy in front of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverheadSubject {
    /// The upstream's base URL.
    pub direct: String,
    /// The sides through a proxy, in the order of [`LevelRecord::through`].
    pub sides: Vec<SideLabel>,
}

/// One proxy side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideLabel {
    /// Short name in tables and charts: `gateway`, `bare proxy`.
    pub name: String,
    pub url: String,
}

/// How the measurement ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverheadSettings {
    pub rounds: usize,
    /// Length of one round; the sides share it equally.
    pub round_secs: f64,
    /// Seed of the request bodies: every side gets the same ones in the same order.
    pub seed: u64,
    pub model: String,
    /// `openai` or `anthropic`.
    pub api: String,
    /// Added p99 that still counts as within bound at an open-model rate, microseconds.
    pub p99_bound_us: u64,
}

/// Everything an overhead measurement found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverheadReport {
    pub schema_version: u32,
    pub started_at: DateTime<Utc>,
    pub subject: OverheadSubject,
    pub settings: OverheadSettings,
    /// Of every interval in the report.
    pub confidence: f64,
    pub resamples: usize,
    pub levels: Vec<LevelResult>,
    /// Per proxy side and stream mode, the highest open-model rate within the p99 bound.
    pub within_bound: Vec<RateBound>,
}

/// One level, streamed or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelResult {
    pub load: Load,
    pub stream: bool,
    pub direct: SideResult,
    /// In the order of [`OverheadSubject::sides`].
    pub sides: Vec<ComparedSide>,
}

/// One side's own figures at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideResult {
    pub record: SideRecord,
    /// Successful requests per second over all rounds.
    pub throughput: Option<f64>,
    /// Its p50 latency over rounds: two runs of the same path should agree within it.
    pub e2e_p50: Option<Interval>,
}

impl SideResult {
    fn of(record: SideRecord) -> SideResult {
        SideResult {
            throughput: record.throughput(),
            e2e_p50: estimate::p50_over_rounds(&record.rounds),
            record,
        }
    }
}

/// A proxy side against direct at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparedSide {
    pub name: String,
    pub side: SideResult,
    /// Added latency (send or intended start to the last byte), microseconds.
    pub added_e2e: Option<Added>,
    /// Added time to the first content event (streamed levels), microseconds.
    pub added_ttft: Option<Added>,
    /// Successful requests per second through the side over direct's (closed levels).
    pub throughput_ratio: Option<Interval>,
    /// Latency against the first proxy side (the gateway, when the harness started one) in the
    /// same rounds: this side's percentile minus the first side's, paired round by round as the
    /// added times are, so a variant's or the bare proxy's difference from the gateway has an
    /// interval of its own rather than two to compare. `None` for the first side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against_first: Option<Added>,
    /// Successful requests per second through this side over the first side's, paired round
    /// by round (closed levels; `None` for the first side): a bare proxy's 1.25 is the
    /// gateway at 0.8 of the bare proxy's throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_against_first: Option<Interval>,
}

/// The highest tested open-model rate at which a side's added p99 stayed within the bound, at
/// that rate and every lower one tested.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBound {
    pub side: String,
    pub stream: bool,
    /// `None`: not even the lowest tested rate stayed within the bound.
    pub highest_rate: Option<f64>,
}

/// Judges what was measured: paired added times and ratios with intervals per level, and the
/// highest rate within the p99 bound.
pub fn evaluate(
    started_at: DateTime<Utc>,
    subject: OverheadSubject,
    settings: OverheadSettings,
    levels: Vec<LevelRecord>,
) -> Result<OverheadReport, OverheadError> {
    if levels.is_empty() {
        return Err(OverheadError::NoLevels);
    }
    for level in &levels {
        if level.through.len() != subject.sides.len() {
            return Err(OverheadError::Sides {
                level: level.load.to_string(),
                expected: subject.sides.len(),
                got: level.through.len(),
            });
        }
    }
    let levels: Vec<LevelResult> = levels
        .into_iter()
        .map(|level| compare(level, &subject))
        .collect();
    let within_bound = rate_bounds(&levels, &subject, settings.p99_bound_us);
    Ok(OverheadReport {
        schema_version: OVERHEAD_SCHEMA_VERSION,
        started_at,
        subject,
        settings,
        confidence: estimate::CONFIDENCE,
        resamples: estimate::RESAMPLES,
        levels,
        within_bound,
    })
}

fn compare(level: LevelRecord, subject: &OverheadSubject) -> LevelResult {
    let direct = &level.direct.rounds;
    let closed = matches!(level.load, Load::Closed { .. });
    let throughput = |side: &[RoundFigures], base: &[RoundFigures]| {
        closed
            .then(|| estimate::throughput_ratio(side, base))
            .flatten()
    };
    // Each later side against the first: latency and throughput, paired round by round.
    let against: Vec<(Option<Added>, Option<Interval>)> = match level.through.split_first() {
        Some((first, rest)) => std::iter::once((None, None))
            .chain(rest.iter().map(|record| {
                (
                    Added::between(&record.rounds, &first.rounds, |r: &RoundFigures| r.e2e),
                    throughput(&record.rounds, &first.rounds),
                )
            }))
            .collect(),
        None => Vec::new(),
    };
    let sides = level
        .through
        .into_iter()
        .zip(&subject.sides)
        .zip(against)
        .map(
            |((record, label), (against_first, throughput_against_first))| ComparedSide {
                name: label.name.clone(),
                against_first,
                throughput_against_first,
                added_e2e: Added::between(&record.rounds, direct, |r: &RoundFigures| r.e2e),
                added_ttft: Added::between(&record.rounds, direct, |r: &RoundFigures| r.ttft),
                throughput_ratio: throughput(&record.rounds, direct),
                side: SideResult::of(record),
            },
        )
        .collect();
    LevelResult {
        load: level.load,
        stream: level.stream,
        direct: SideResult::of(level.direct),
        sides,
    }
}

/// For each side and stream mode with open-model levels: walking up the rates, the last one
/// before the first whose added p99 estimate exceeds `bound_us` (or has none).
fn rate_bounds(levels: &[LevelResult], subject: &OverheadSubject, bound_us: u64) -> Vec<RateBound> {
    let mut bounds = Vec::new();
    for (index, label) in subject.sides.iter().enumerate() {
        for stream in [false, true] {
            let mut open: Vec<&LevelResult> = levels
                .iter()
                .filter(|l| l.stream == stream && l.load.is_open())
                .collect();
            if open.is_empty() {
                continue;
            }
            open.sort_by(|a, b| a.load.amount().total_cmp(&b.load.amount()));
            let highest_rate = open
                .iter()
                .take_while(|level| {
                    level.sides[index]
                        .added_e2e
                        .is_some_and(|added| added.p99.estimate <= bound_us as f64)
                })
                .last()
                .map(|level| level.load.amount());
            bounds.push(RateBound {
                side: label.name.clone(),
                stream,
                highest_rate,
            });
        }
    }
    bounds
}

impl OverheadReport {
    /// Writes `overhead.json` and `overhead.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let write_err = |path: &Path, source| ReportError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        let json_path = dir.join(OVERHEAD_JSON);
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| write_err(&json_path, std::io::Error::other(e)))?;
        std::fs::write(&json_path, json).map_err(|e| write_err(&json_path, e))?;
        let html_path = dir.join(OVERHEAD_HTML);
        let html = super::render_overhead(self)?;
        std::fs::write(&html_path, html).map_err(|e| write_err(&html_path, e))
    }

    /// Reads an `overhead.json`, refusing another schema version.
    pub fn read(path: &Path) -> Result<OverheadReport, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_owned(),
            source,
        })?;
        let report: OverheadReport =
            serde_json::from_str(&text).map_err(|source| ReportError::Json {
                path: path.to_owned(),
                source,
            })?;
        if report.schema_version != OVERHEAD_SCHEMA_VERSION {
            return Err(ReportError::SchemaVersion {
                path: path.to_owned(),
                found: report.schema_version,
                expected: OVERHEAD_SCHEMA_VERSION,
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorCounts;
    use crate::overhead::Quantiles;

    /// A side whose p50 is `p50` and p99 `p99` in each of six rounds.
    fn side(p50: u64, p99: u64) -> SideRecord {
        let round = RoundFigures {
            e2e: Some(Quantiles { p50, p90: p50, p99 }),
            ttft: None,
            ok: 100,
            failed: 0,
            secs: 1.0,
            steal_percent: None,
            cpu_secs: None,
        };
        SideRecord {
            rounds: vec![round; 6],
            e2e: None,
            ttft: None,
            header_overhead: None,
            errors: ErrorCounts::default(),
            dropped: 0,
        }
    }

    /// `record` with 80 successful requests a round where it had 100.
    fn slower(mut record: SideRecord) -> SideRecord {
        for round in &mut record.rounds {
            round.ok = 80;
        }
        record
    }

    fn open(rate: f64, added_p99: u64) -> LevelRecord {
        LevelRecord {
            load: Load::Open { rate },
            stream: false,
            direct: side(100, 400),
            through: vec![side(200, 400 + added_p99)],
        }
    }

    fn report(levels: Vec<LevelRecord>) -> OverheadReport {
        let subject = OverheadSubject {
            direct: "http://127.0.0.1:1".to_owned(),
            sides: vec![SideLabel {
                name: "gateway".to_owned(),
                url: "http://127.0.0.1:2".to_owned(),
            }],
        };
        let settings = OverheadSettings {
            rounds: 6,
            round_secs: 2.0,
            seed: 1,
            model: "m".to_owned(),
            api: "openai".to_owned(),
            p99_bound_us: 1_000,
        };
        evaluate(Utc::now(), subject, settings, levels).expect("judged")
    }

    #[test]
    fn the_highest_rate_within_bound_stops_at_the_first_rate_beyond_it() {
        // 4000/s is within the bound again, but 2000/s was not: the knee is 1000/s.
        let levels = vec![
            open(2000.0, 1500),
            open(500.0, 100),
            open(4000.0, 200),
            open(1000.0, 900),
        ];
        let report = report(levels);
        assert_eq!(report.within_bound.len(), 1);
        assert_eq!(report.within_bound[0].highest_rate, Some(1000.0));
        assert!(
            report
                .levels
                .iter()
                .all(|l| l.sides[0].throughput_ratio.is_none())
        );
        let table = report.to_string();
        assert!(table.contains("up to 1000/s"), "{table}");
        let none = self::report(vec![open(500.0, 5000)]);
        assert_eq!(none.within_bound[0].highest_rate, None);
    }

    #[test]
    fn rounds_on_a_stolen_machine_are_named_under_the_table() {
        // Six rounds a side; the machine's hypervisor took 30% and 12% in two of the gateway's.
        let stolen = |steal: [f64; 6]| {
            let mut record = side(150, 500);
            for (round, steal) in record.rounds.iter_mut().zip(steal) {
                round.steal_percent = Some(steal);
            }
            record
        };
        let level = |through: SideRecord| LevelRecord {
            load: Load::Closed { concurrency: 4 },
            stream: false,
            direct: side(100, 400),
            through: vec![through],
        };
        let table = report(vec![level(stolen([0.0, 30.0, 1.0, 12.0, 4.9, 0.0]))]).to_string();
        assert!(
            table.contains(
                "steal: the machine's hypervisor took 5% or more of its CPU time in 2 of 6 side \
                 rounds (up to 30%)"
            ),
            "{table}"
        );
        let quiet = report(vec![level(stolen([4.9; 6]))]).to_string();
        assert!(!quiet.contains("steal"), "{quiet}");
        let unread = report(vec![level(side(150, 500))]).to_string();
        assert!(!unread.contains("steal"), "{unread}");
    }

    #[test]
    fn reports_write_read_back_and_render_without_network() {
        let report = report(vec![LevelRecord {
            load: Load::Closed { concurrency: 4 },
            stream: false,
            direct: side(100, 400),
            through: vec![side(150, 500)],
        }]);
        let ratio = report.levels[0].sides[0].throughput_ratio.expect("closed");
        assert!((ratio.estimate - 1.0).abs() < 1e-9);
        let dir = tempfile::tempdir().expect("temp dir");
        report.write(dir.path()).expect("written");
        let read = OverheadReport::read(&dir.path().join(OVERHEAD_JSON)).expect("reads");
        assert_eq!(read, report);
        let html = std::fs::read_to_string(dir.path().join(OVERHEAD_HTML)).expect("html");
        assert!(html.contains("default-src 'none'"));
        assert!(html.contains("added latency p50, closed model, plain"));
        assert!(!html.contains("http://127.0.0.1:1/"), "no link to load");
        assert!(!html.contains("<script"));
    }

    #[test]
    fn later_sides_are_paired_against_the_first_round_by_round() {
        let label = |name: &str| SideLabel {
            name: name.to_owned(),
            url: "http://127.0.0.1:2".to_owned(),
        };
        let subject = OverheadSubject {
            direct: "http://127.0.0.1:1".to_owned(),
            sides: vec![label("gateway"), label("gateway+busy")],
        };
        let level = LevelRecord {
            load: Load::Closed { concurrency: 1 },
            stream: false,
            direct: side(100, 400),
            through: vec![side(220, 500), slower(side(420, 650))],
        };
        let settings = report(vec![open(1.0, 0)]).settings;
        let report = evaluate(Utc::now(), subject, settings, vec![level]).expect("judged");
        let level = &report.levels[0];
        assert_eq!(
            level.sides[0].against_first, None,
            "the first side is the reference"
        );
        assert_eq!(level.sides[0].throughput_against_first, None);
        let against = level.sides[1].against_first.expect("six paired rounds");
        assert_eq!(against.p50.estimate, 200.0);
        assert_eq!(against.p99.estimate, 150.0);
        let throughput = level.sides[1]
            .throughput_against_first
            .expect("a closed level");
        assert!((throughput.estimate - 0.8).abs() < 1e-9, "{throughput:?}");
        let table = report.to_string();
        assert!(
            table.contains(
                "c=1 plain: gateway+busy against gateway: p50 +200 [200, 200], p99 +150 \
                 [150, 150] us, req/s 0.800 [0.800, 0.800]"
            ),
            "{table}"
        );
        let open = evaluate(
            Utc::now(),
            report.subject.clone(),
            report.settings.clone(),
            vec![LevelRecord {
                load: Load::Open { rate: 100.0 },
                stream: false,
                direct: side(100, 400),
                through: vec![side(220, 500), slower(side(420, 650))],
            }],
        )
        .expect("judged");
        assert_eq!(
            open.levels[0].sides[1].throughput_against_first, None,
            "an open level's rate is the plan's, not the side's"
        );
    }

    #[test]
    fn sides_must_match_the_subject() {
        let mut level = open(100.0, 0);
        level.through.clear();
        let error = evaluate(
            Utc::now(),
            OverheadSubject {
                direct: String::new(),
                sides: vec![SideLabel {
                    name: "gateway".to_owned(),
                    url: String::new(),
                }],
            },
            report(vec![open(1.0, 0)]).settings,
            vec![level],
        )
        .expect_err("no side");
        assert!(error.to_string().contains("0 proxy sides"), "{error}");
    }
}
