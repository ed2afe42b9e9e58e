//! The two statistics a gate rests on: a percentile bootstrap interval of a trimmed mean, and
//! the exact one-sided Wilcoxon signed-rank test. The interval also serves `crate::overhead`.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Share of values cut from each end by [`trimmed_mean`].
const TRIM: f64 = 0.2;

/// The 20% trimmed mean of `values` (not empty): the mean of what is left after the lowest and
/// the highest fifth are dropped (2 of 10 at each end, 1 of 6); sorts them.
///
/// Not the plain mean: one run hit by a noisy neighbour moves one round's log-ratio a lot, and
/// would drag a mean and widen its interval. Not the median either: with a handful of rounds
/// it throws away so much that its interval is half again as wide.
pub(crate) fn trimmed_mean(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let cut = (values.len() as f64 * TRIM).floor() as usize;
    let kept = &values[cut..values.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Percentile bootstrap interval of the [`trimmed_mean`] of `values` at `confidence` (e.g.
/// 0.95), from `resamples` resamples drawn with a generator seeded by `seed`, so the same input
/// always gives the same interval.
pub(crate) fn bootstrap_trimmed_mean(
    values: &[f64],
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> (f64, f64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = values.len();
    let mut resample = vec![0.0; n];
    let mut estimates: Vec<f64> = (0..resamples)
        .map(|_| {
            for slot in resample.iter_mut() {
                *slot = values[rng.random_range(0..n)];
            }
            trimmed_mean(&mut resample)
        })
        .collect();
    estimates.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let last = estimates.len() - 1;
    let at = |q: f64| estimates[((q * last as f64).round() as usize).min(last)];
    (at(tail), at(1.0 - tail))
}

/// One-sided p-value of the Wilcoxon signed-rank test that the values are centred above zero.
///
/// Zeros are dropped and tied magnitudes get their mean rank (Pratt and Wilcoxon's usual
/// handling). The null distribution of the rank sum of the positive values is computed
/// exactly for the ranks at hand (every sign equally likely), so the p-value is right for the
/// handful of rounds a gate has; a normal approximation is not. With no non-zero value the
/// p-value is 1.
pub(super) fn signed_rank_above_zero(values: &[f64]) -> f64 {
    let mut nonzero: Vec<f64> = values.iter().copied().filter(|v| *v != 0.0).collect();
    if nonzero.is_empty() {
        return 1.0;
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Doubled ranks, so mean ranks of ties (which end in .5) stay integers.
    let mut doubled = vec![0_usize; nonzero.len()];
    let mut start = 0;
    while start < nonzero.len() {
        let end = (start..nonzero.len())
            .find(|&j| nonzero[j].abs() != nonzero[start].abs())
            .unwrap_or(nonzero.len());
        // Ranks start+1 ..= end; their mean, doubled, is start + 1 + end.
        doubled[start..end].fill(start + 1 + end);
        start = end;
    }
    let observed: usize = nonzero
        .iter()
        .zip(&doubled)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    // probability[s]: chance that the positive ranks sum to s under the null.
    let total: usize = doubled.iter().sum();
    let mut probability = vec![0.0_f64; total + 1];
    probability[0] = 1.0;
    let mut reach = 0;
    for &rank in &doubled {
        for s in (0..=reach).rev() {
            let p = probability[s] / 2.0;
            probability[s] = p;
            probability[s + rank] += p;
        }
        reach += rank;
    }
    probability[observed..].iter().sum::<f64>().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_positive_has_the_smallest_p_value() {
        let p = signed_rank_above_zero(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        assert!((p - 1.0 / 64.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn all_negative_is_certain_not_above() {
        assert_eq!(signed_rank_above_zero(&[-0.1, -0.2, -0.3]), 1.0);
    }

    #[test]
    fn matches_brute_force_over_all_sign_patterns() {
        // Magnitudes rank 1..=8; the positives hold ranks 1, 3, 4, 5, 7 and 8, W+ = 28.
        let p = signed_rank_above_zero(&[1.0, 2.0, 3.0, 4.0, -5.0, -1.5, 6.0, 7.0]);
        let at_least = (0..256_u32)
            .filter(|mask| {
                (0..8)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| i + 1)
                    .sum::<u32>()
                    >= 28
            })
            .count();
        assert!((p - at_least as f64 / 256.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn ties_share_their_mean_rank() {
        // Magnitudes 1, 1, 2: ranks 1.5, 1.5, 3; positives sum to 4.5 of 6.
        // Patterns with W+ >= 4.5: {3, 1.5} twice and {3, 1.5, 1.5} once: 3 of 8.
        let p = signed_rank_above_zero(&[1.0, -1.0, 2.0]);
        assert!((p - 3.0 / 8.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn zeros_are_dropped() {
        assert_eq!(
            signed_rank_above_zero(&[0.0, 0.5, 0.7]),
            signed_rank_above_zero(&[0.5, 0.7])
        );
        assert_eq!(signed_rank_above_zero(&[0.0, 0.0]), 1.0);
    }

    #[test]
    fn trimmed_mean_drops_a_fifth_at_each_end() {
        let mut ten = [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0];
        assert_eq!(
            trimmed_mean(&mut ten),
            (3.0 + 4.0 + 5.0 + 6.0 + 7.0 + 8.0) / 6.0
        );
        let mut six = [-50.0, 1.0, 2.0, 3.0, 4.0, 60.0];
        assert_eq!(trimmed_mean(&mut six), 2.5);
        assert_eq!(trimmed_mean(&mut [5.0]), 5.0);
    }

    #[test]
    fn bootstrap_is_seeded_brackets_the_estimate_and_shrugs_off_an_outlier() {
        let values = [
            0.01, -0.02, 0.03, 0.0, 0.015, -0.005, 0.02, 0.01, 0.012, 0.4,
        ];
        let (low, high) = bootstrap_trimmed_mean(&values, 0.95, 2_000, 7);
        assert_eq!((low, high), bootstrap_trimmed_mean(&values, 0.95, 2_000, 7));
        let centre = trimmed_mean(&mut values.clone());
        let plain_mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(centre < 0.015 && plain_mean > 0.04, "{centre} {plain_mean}");
        assert!(low <= centre && centre <= high, "{low} {centre} {high}");
        assert!(low > -0.02 && high < 0.1, "{low} {high}");
    }
}
