//! The exact one-sided Wilcoxon signed-rank test: whether paired changes lie beyond an edge,
//! with the exact null distribution a handful of rounds needs.

/// One-sided p-value of the Wilcoxon signed-rank test that the values are centred above zero.
///
/// Zeros are dropped and tied magnitudes get their mean rank (Pratt and Wilcoxon's usual
/// handling). The null distribution of the rank sum of the positive values is computed
/// exactly for the ranks at hand (every sign equally likely), so the p-value is right for the
/// handful of rounds a gate has; a normal approximation is not. With no non-zero value the
/// p-value is 1.
pub(crate) fn signed_rank_above_zero(values: &[f64]) -> f64 {
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
}
