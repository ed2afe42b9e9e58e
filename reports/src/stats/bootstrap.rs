//! Percentile bootstrap intervals of any estimator.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How a bootstrap resamples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resampling {
    /// Confidence level of the interval (0.95 = 95%).
    pub confidence: f64,
    /// How many resamples the interval is read from.
    pub resamples: usize,
    /// Seed of the generator, so that the same values always give the same interval.
    pub seed: u64,
}

impl Default for Resampling {
    /// 95% from 2,000 resamples: the tails then rest on 50 estimates each.
    fn default() -> Resampling {
        Resampling {
            confidence: 0.95,
            resamples: 2_000,
            seed: 0x6761_7465,
        }
    }
}

/// Percentile bootstrap interval of `estimate` over `samples`, at `resampling.confidence`.
///
/// Each sample is resampled with replacement on its own, to its own size: one sample of paired
/// changes (a gate's rounds), or two independent sides (a comparison's base and candidate
/// runs). `estimate` reads one set of resamples (it may reorder them) and returns `None` for a
/// set it cannot read, e.g. a base whose mean is 0. The interval runs between the tails of the
/// estimates; `None` when a sample is empty or no set could be read.
pub(crate) fn bootstrap<const N: usize>(
    samples: [&[f64]; N],
    resampling: Resampling,
    mut estimate: impl FnMut(&mut [Vec<f64>; N]) -> Option<f64>,
) -> Option<(f64, f64)> {
    if samples.iter().any(|sample| sample.is_empty()) {
        return None;
    }
    let mut rng = SmallRng::seed_from_u64(resampling.seed);
    let mut drawn = samples.map(|sample| vec![0.0; sample.len()]);
    let mut estimates: Vec<f64> = (0..resampling.resamples)
        .filter_map(|_| {
            for (slots, sample) in drawn.iter_mut().zip(samples) {
                for slot in slots.iter_mut() {
                    *slot = sample[rng.random_range(0..sample.len())];
                }
            }
            estimate(&mut drawn)
        })
        .collect();
    estimates.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - resampling.confidence) / 2.0;
    Some((
        quantile(&estimates, tail)?,
        quantile(&estimates, 1.0 - tail)?,
    ))
}

/// The value at `q` (0 to 1) of `sorted`: the nearest rank, by rounding; `None` if it is empty.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((q * last as f64).round() as usize).min(last)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{mean, trimmed_mean};

    #[test]
    fn one_sample_is_seeded_brackets_the_estimate_and_shrugs_off_an_outlier() {
        let values = [
            0.01, -0.02, 0.03, 0.0, 0.015, -0.005, 0.02, 0.01, 0.012, 0.4,
        ];
        let trimmed = |[v]: &mut [Vec<f64>; 1]| Some(trimmed_mean(v));
        let settings = Resampling {
            seed: 7,
            ..Resampling::default()
        };
        let (low, high) = bootstrap([&values], settings, trimmed).expect("values");
        assert_eq!(Some((low, high)), bootstrap([&values], settings, trimmed));
        let centre = trimmed_mean(&mut values.clone());
        let plain_mean = mean(&values).expect("values");
        assert!(centre < 0.015 && plain_mean > 0.04, "{centre} {plain_mean}");
        assert!(low <= centre && centre <= high, "{low} {centre} {high}");
        assert!(low > -0.02 && high < 0.1, "{low} {high}");
    }

    #[test]
    fn two_samples_are_resampled_each_on_its_own() {
        let base = [100.0, 102.0, 98.0, 101.0];
        let cand = [120.0, 123.0, 118.0, 121.0];
        let ratio = |[b, c]: &mut [Vec<f64>; 2]| Some(mean(c)? / mean(b)? - 1.0);
        let (low, high) = bootstrap([&base, &cand], Resampling::default(), ratio).expect("runs");
        assert!(0.15 < low && low <= high && high < 0.25, "[{low}, {high}]");
        // Identical sides of one value each: every resample is the same, and so is the interval.
        let same = bootstrap([&[5.0], &[5.0]], Resampling::default(), ratio);
        assert_eq!(same, Some((0.0, 0.0)));
    }

    #[test]
    fn no_interval_without_values_or_without_a_readable_resample() {
        let never = |_: &mut [Vec<f64>; 1]| None;
        assert_eq!(bootstrap([&[1.0, 2.0]], Resampling::default(), never), None);
        let always = |_: &mut [Vec<f64>; 2]| Some(1.0);
        assert_eq!(
            bootstrap([&[], &[1.0]], Resampling::default(), always),
            None
        );
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&sorted, 0.0), Some(1.0));
        assert_eq!(quantile(&sorted, 0.5), Some(3.0));
        assert_eq!(quantile(&sorted, 0.6), Some(3.0));
        assert_eq!(quantile(&sorted, 0.65), Some(4.0));
        assert_eq!(quantile(&sorted, 1.0), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
