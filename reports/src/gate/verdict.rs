//! The decision for one metric, and for a whole gate.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::metric::{Direction, Tolerance};

/// What a gate concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval of the change is worse than the tolerance and than anything the A/A
    /// self-check moved, and the signed-rank test agrees.
    Regression,
    /// Likewise, better than the tolerance.
    Improvement,
    /// Neither: the change is within the tolerance, or not wholly beyond it.
    Unchanged,
    /// The A/A self-check strayed beyond the tolerance and the change is not wholly beyond that
    /// noise: the machine was too noisy to tell it from chance, so nothing is claimed.
    Inconclusive,
}

impl Verdict {
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

    /// The verdict of a gate from those of its metrics (`Unchanged` for none).
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

/// The evidence for one metric, as the verdict reads it.
pub(super) struct Evidence {
    pub direction: Direction,
    pub tolerance: Tolerance,
    /// Interval of the candidate's relative change.
    pub interval: (f64, f64),
    /// Interval of the A/A rounds' relative change.
    pub aa_interval: (f64, f64),
    pub p_worse: f64,
    pub p_better: f64,
    /// Level of each one-sided test: half of what the interval leaves out.
    pub alpha: f64,
}

impl Evidence {
    /// A change counts only when its whole interval lies beyond both the tolerance and the
    /// largest move of the A/A self-check (what this machine does with no change at all), so a
    /// noisy machine raises the bar instead of raising an alarm; a change too small to clear a
    /// noise larger than the tolerance is inconclusive.
    pub fn verdict(&self) -> Verdict {
        let t = self.tolerance.fraction();
        let (aa_low, aa_high) = self.aa_interval;
        let noise = (-aa_low).max(aa_high).max(0.0);
        let margin = t.max(noise);
        let (low, high) = self.interval;
        let (above, below) = (low > margin, high < -margin);
        let (worse, better) = match self.direction {
            Direction::LowerIsBetter => (above, below),
            Direction::HigherIsBetter => (below, above),
        };
        if worse && self.p_worse < self.alpha {
            Verdict::Regression
        } else if better && self.p_better < self.alpha {
            Verdict::Improvement
        } else if noise > t {
            Verdict::Inconclusive
        } else {
            Verdict::Unchanged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(interval: (f64, f64), aa_interval: (f64, f64), p_worse: f64) -> Evidence {
        Evidence {
            direction: Direction::HigherIsBetter,
            tolerance: Tolerance::new(0.03).expect("valid"),
            interval,
            aa_interval,
            p_worse,
            p_better: 1.0,
            alpha: 0.025,
        }
    }

    #[test]
    fn regression_needs_the_whole_interval_beyond_tolerance_and_noise_and_the_test() {
        let quiet = (-0.01, 0.01);
        assert_eq!(
            evidence((-0.12, -0.08), quiet, 0.01).verdict(),
            Verdict::Regression
        );
        assert_eq!(
            evidence((-0.12, -0.02), quiet, 0.01).verdict(),
            Verdict::Unchanged
        );
        assert_eq!(
            evidence((-0.12, -0.08), quiet, 0.03).verdict(),
            Verdict::Unchanged
        );
        assert_eq!(
            evidence((-0.06, -0.035), (-0.04, 0.01), 0.01).verdict(),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn a_noisy_self_check_raises_the_bar_instead_of_hiding_a_large_change() {
        let noisy = (-0.08, 0.08);
        // Far beyond the noise: still a regression.
        assert_eq!(
            evidence((-0.40, -0.30), noisy, 0.01).verdict(),
            Verdict::Regression
        );
        // Beyond the tolerance but within the noise: nothing can be claimed.
        assert_eq!(
            evidence((-0.12, -0.05), noisy, 0.01).verdict(),
            Verdict::Inconclusive
        );
        // Within the noise with no change at all: never an alarm.
        assert_eq!(
            evidence((-0.06, 0.07), noisy, 0.5).verdict(),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn direction_decides_what_worse_means() {
        let mut e = evidence((0.08, 0.12), (-0.01, 0.01), 1.0);
        e.p_better = 0.01;
        assert_eq!(e.verdict(), Verdict::Improvement);
        e.direction = Direction::LowerIsBetter;
        e.p_worse = 0.01;
        assert_eq!(e.verdict(), Verdict::Regression);
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
        assert_eq!(Verdict::combine([]), Verdict::Unchanged);
    }
}
