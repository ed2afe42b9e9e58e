//! What a change means: the one vocabulary of `harness compare` and `harness gate`, and the
//! equivalence rule that reads an interval against a margin.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way a metric moves when the gateway gets better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Rates of work done: a drop is a regression.
    HigherIsBetter,
    /// Latencies and failures: a rise is a regression.
    LowerIsBetter,
}

/// What a comparison of a candidate with its base concludes, for one metric or for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval of the change is worse than the margin, and the command's own checks
    /// of the noise agree.
    Regression,
    /// Likewise, better than the margin.
    Improvement,
    /// The whole interval lies within the margin: whatever changed is smaller than what
    /// matters.
    Unchanged,
    /// The interval straddles an edge of the margin, or a change beyond it is not beyond the
    /// noise: the measurements cannot decide, so nothing is claimed.
    Inconclusive,
}

impl Verdict {
    /// The equivalence rule: `interval` (of the shown change: a relative change or a difference
    /// in points) against `margin` (on the same terms, not negative). Within `[-margin,
    /// margin]` it is unchanged; wholly beyond one edge, a regression or an improvement as
    /// `direction` says; across an edge, inconclusive.
    pub fn judge((low, high): (f64, f64), margin: f64, direction: Direction) -> Verdict {
        let (rose, fell) = (low > margin, high < -margin);
        if rose || fell {
            let worse = match direction {
                Direction::LowerIsBetter => rose,
                Direction::HigherIsBetter => fell,
            };
            if worse {
                Verdict::Regression
            } else {
                Verdict::Improvement
            }
        } else if low >= -margin && high <= margin {
            Verdict::Unchanged
        } else {
            Verdict::Inconclusive
        }
    }

    /// A regression or an improvement stands only if `backed`: the check of the noise a command
    /// makes beyond the margin (a gate's A/A rounds and rank test, a comparison's spread
    /// between runs of one build). Without it the change is inconclusive.
    pub fn unless_unbacked(self, backed: bool) -> Verdict {
        match self {
            Verdict::Regression | Verdict::Improvement if !backed => Verdict::Inconclusive,
            verdict => verdict,
        }
    }

    /// The process exit code (docs/design.md): 3 for a regression, 4 when inconclusive, else 0.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Regression => 3,
            Verdict::Inconclusive => 4,
            Verdict::Improvement | Verdict::Unchanged => 0,
        }
    }

    /// Combining metrics: a regression anywhere wins, then an inconclusive metric, then an
    /// improvement.
    fn severity(self) -> u8 {
        match self {
            Verdict::Unchanged => 0,
            Verdict::Improvement => 1,
            Verdict::Inconclusive => 2,
            Verdict::Regression => 3,
        }
    }

    /// The verdict of several metrics (`Unchanged` for none).
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts
            .into_iter()
            .max_by_key(|v| v.severity())
            .unwrap_or(Verdict::Unchanged)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Regression => "REGRESSION",
            Verdict::Improvement => "improvement",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "INCONCLUSIVE",
        })
    }
}

/// Whether `interval` lies wholly beyond `noise` on one side: outside `[-noise, noise]`.
pub(crate) fn clears((low, high): (f64, f64), noise: f64) -> bool {
    low > noise || high < -noise
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP_IS_WORSE: Direction = Direction::LowerIsBetter;

    #[test]
    fn the_interval_against_the_margin_decides() {
        let judge = |interval| Verdict::judge(interval, 0.10, UP_IS_WORSE);
        assert_eq!(judge((0.12, 0.30)), Verdict::Regression);
        assert_eq!(judge((-0.30, -0.12)), Verdict::Improvement);
        assert_eq!(judge((-0.08, 0.09)), Verdict::Unchanged);
        assert_eq!(judge((0.0, 0.0)), Verdict::Unchanged);
        // Across an edge: a change of about the margin's size may be there, or not.
        assert_eq!(judge((0.05, 0.15)), Verdict::Inconclusive);
        assert_eq!(judge((-0.20, 0.02)), Verdict::Inconclusive);
        assert_eq!(judge((-0.20, 0.20)), Verdict::Inconclusive);
    }

    #[test]
    fn direction_decides_what_worse_means() {
        let up = (0.08, 0.12);
        assert_eq!(
            Verdict::judge(up, 0.05, Direction::LowerIsBetter),
            Verdict::Regression
        );
        assert_eq!(
            Verdict::judge(up, 0.05, Direction::HigherIsBetter),
            Verdict::Improvement
        );
    }

    #[test]
    fn an_unbacked_claim_is_inconclusive_and_the_rest_stand() {
        use Verdict::{Improvement, Inconclusive, Regression, Unchanged};
        for (verdict, backed, after) in [
            (Regression, false, Inconclusive),
            (Improvement, false, Inconclusive),
            (Regression, true, Regression),
            (Unchanged, false, Unchanged),
        ] {
            assert_eq!(
                verdict.unless_unbacked(backed),
                after,
                "{verdict:?} {backed}"
            );
        }
        assert!(clears((0.2, 0.3), 0.1) && clears((-0.3, -0.2), 0.1));
        assert!(!clears((0.05, 0.3), 0.1));
    }

    #[test]
    fn exit_codes_follow_the_design() {
        assert_eq!(Verdict::Regression.exit_code(), 3);
        assert_eq!(Verdict::Inconclusive.exit_code(), 4);
        assert_eq!(Verdict::Unchanged.exit_code(), 0);
        assert_eq!(Verdict::Improvement.exit_code(), 0);
        assert_eq!(
            Verdict::combine([
                Verdict::Improvement,
                Verdict::Regression,
                Verdict::Inconclusive
            ]),
            Verdict::Regression
        );
        assert_eq!(
            Verdict::combine([Verdict::Improvement, Verdict::Inconclusive]),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::combine([]), Verdict::Unchanged);
    }
}
