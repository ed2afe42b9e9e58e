//! Where a sample sits: its mean, or its mean without its extremes.

/// Share of values cut from each end by [`trimmed_mean`].
const TRIM: f64 = 0.2;

/// The arithmetic mean; `None` for no values.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_mean_of_nothing_is_none() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    }
}
