//! Closed-model load shape: k6-like stages, `30s:100,2m:100,30s:0`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Worker, parse_duration};

/// Ramp linearly to `target` users over `duration` (zero: jump at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub duration: Duration,
    pub target: usize,
}

/// A non-empty list of stages; serialized as the same text the `--stages` flag takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stages(Vec<Stage>);

/// Why a stages string is not usable; renders as one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid stages `{text}`: {why} (expected DURATION:USERS[,...], e.g. 30s:100,2m:100,30s:0)"
)]
pub struct BadStages {
    text: String,
    why: String,
}

impl Stages {
    /// Hold `users` for `duration`, starting them all at once.
    pub fn constant(users: usize, duration: Duration) -> Stages {
        Stages(vec![
            Stage {
                duration: Duration::ZERO,
                target: users,
            },
            Stage {
                duration,
                target: users,
            },
        ])
    }

    /// The stages in order.
    pub fn stages(&self) -> &[Stage] {
        &self.0
    }

    /// Sum of the stage durations.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }

    /// The most users any stage reaches.
    pub fn peak(&self) -> usize {
        self.0.iter().map(|s| s.target).max().unwrap_or(0)
    }

    /// Scales the stages to last `total` (whole seconds). Stage boundaries are scaled and
    /// rounded, not each duration, so the total comes out exact; a stage scaled below half a
    /// second becomes an immediate jump.
    pub fn stretched_to(&self, total: Duration) -> Stages {
        let current = self.total().as_secs_f64();
        if current == 0.0 {
            return self.clone();
        }
        let factor = total.as_secs_f64() / current;
        let mut elapsed = 0.0;
        let mut boundary = 0;
        let stages = self
            .0
            .iter()
            .map(|stage| {
                elapsed += stage.duration.as_secs_f64();
                let end = (elapsed * factor).round() as u64;
                let duration = Duration::from_secs(end - boundary);
                boundary = end;
                Stage {
                    duration,
                    target: stage.target,
                }
            })
            .collect();
        Stages(stages)
    }

    /// `worker`'s part of these stages: every stage's target dealt round-robin over the workers
    /// ([`Worker::share`]), so at every moment the workers' users add up to this plan's.
    pub fn share(&self, worker: Worker) -> Stages {
        Stages(
            self.0
                .iter()
                .map(|stage| Stage {
                    duration: stage.duration,
                    target: worker.share(stage.target),
                })
                .collect(),
        )
    }

    /// Every stage with its start offset: `(start, stage)`.
    pub fn timeline(&self) -> impl Iterator<Item = (Duration, Stage)> + '_ {
        self.0.iter().scan(Duration::ZERO, |start, stage| {
            let at = *start;
            *start += stage.duration;
            Some((at, *stage))
        })
    }

    /// The Goose test plan for these stages, ending with every user stopped.
    pub fn goose_plan(&self) -> String {
        let mut steps: Vec<String> = self
            .0
            .iter()
            .map(|s| format!("{},{}", s.target, s.duration.as_secs()))
            .collect();
        if self.0.last().is_some_and(|s| s.target > 0) {
            steps.push("0,0".to_owned());
        }
        steps.join(";")
    }
}

impl FromStr for Stages {
    type Err = BadStages;

    fn from_str(text: &str) -> Result<Stages, BadStages> {
        let bad = |why: String| BadStages {
            text: text.to_owned(),
            why,
        };
        let mut stages = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (duration, users) = part
                .split_once(':')
                .ok_or_else(|| bad(format!("stage `{part}` has no `:`")))?;
            let duration = parse_duration(duration).map_err(|e| bad(e.to_string()))?;
            if duration.subsec_nanos() != 0 {
                return Err(bad(format!("stage `{part}`: durations are whole seconds")));
            }
            let target = users
                .trim()
                .parse()
                .map_err(|_| bad(format!("stage `{part}`: `{users}` is not a user count")))?;
            stages.push(Stage { duration, target });
        }
        let stages = Stages(stages);
        if stages.peak() == 0 {
            return Err(bad("no stage has any user".to_owned()));
        }
        if stages.total().is_zero() {
            return Err(bad("the stages last no time".to_owned()));
        }
        Ok(stages)
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}s:{}", stage.duration.as_secs(), stage.target)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for Stages {
    type Error = BadStages;

    fn try_from(text: String) -> Result<Stages, BadStages> {
        text.parse()
    }
}

impl From<Stages> for String {
    fn from(stages: Stages) -> String {
        stages.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_stages_and_builds_a_goose_plan() {
        let stages: Stages = "30s:100, 2m:100,30s:0".parse().expect("valid");
        assert_eq!(stages.total(), Duration::from_secs(180));
        assert_eq!(stages.peak(), 100);
        assert_eq!(stages.goose_plan(), "100,30;100,120;0,30");
        assert_eq!(stages.to_string(), "30s:100,120s:100,30s:0");
        assert_eq!(
            Stages::constant(2, Duration::from_secs(10)).goose_plan(),
            "2,0;2,10;0,0"
        );
        let starts: Vec<u64> = stages.timeline().map(|(at, _)| at.as_secs()).collect();
        assert_eq!(starts, [0, 30, 150]);
    }

    #[test]
    fn rejects_bad_stages_with_the_reason() {
        for (text, why) in [
            ("30s100", "has no `:`"),
            ("30x:100", "not a duration"),
            ("30s:lots", "not a user count"),
            ("30s:0", "no stage has any user"),
            ("1500ms:5", "whole seconds"),
        ] {
            let error = text.parse::<Stages>().expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn shares_of_stages_add_up_stage_by_stage() {
        let stages: Stages = "10s:10,20s:4,5s:0".parse().expect("valid");
        let shares: Vec<String> = (1..=3)
            .map(|i| {
                let worker = Worker::new(i, 3).expect("valid worker");
                stages.share(worker).to_string()
            })
            .collect();
        assert_eq!(
            shares,
            ["10s:4,20s:2,5s:0", "10s:3,20s:1,5s:0", "10s:3,20s:1,5s:0"]
        );
        assert_eq!(stages.share(Worker::SOLE), stages);
    }

    #[test]
    fn stretching_keeps_proportions() {
        let stages: Stages = "30s:10,60s:10,30s:0".parse().expect("valid");
        let short = stages.stretched_to(Duration::from_secs(12));
        assert_eq!(short.to_string(), "3s:10,6s:10,3s:0");
        let many: Stages = "5s:1,15s:1,5s:2,15s:2,10s:0".parse().expect("valid");
        assert_eq!(
            many.stretched_to(Duration::from_secs(7)).total(),
            Duration::from_secs(7)
        );
    }
}
