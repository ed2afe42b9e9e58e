//! How a change is measured: as a ratio of amounts, or as a difference of shares.

use serde::{Deserialize, Serialize};

use crate::model::short;

/// How a metric's two sides are compared.
///
/// A change is computed on the scale's own terms (a log-ratio, or a difference), so that a
/// bootstrap averages like with like, and shown as a relative change or a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Positive amounts compared by ratio: the change is `ln(cand / base)`, shown as the
    /// relative change `cand / base - 1`, its margin relative (3% = 0.03). Logs make a 10%
    /// drop and a 10% rise the same size and let ratios average.
    Ratio,
    /// Shares from 0 to 1 compared by difference, since a share of 0 has no logarithm: the
    /// change is `cand - base`, its margin in points (0.001 = 0.1 points).
    Points,
}

impl Scale {
    /// The change from `base` to `cand` on this scale; `None` for a ratio to a base that is not
    /// positive. A candidate of 0 is a ratio of `-inf`, shown as -100%.
    pub fn change(self, base: f64, cand: f64) -> Option<f64> {
        match self {
            Scale::Ratio => (base > 0.0).then(|| (cand / base).ln()),
            Scale::Points => Some(cand - base),
        }
    }

    /// A change on this scale as shown: a relative change (`exp(x) - 1`) or the difference
    /// itself.
    pub fn shown(self, change: f64) -> f64 {
        match self {
            Scale::Ratio => change.exp_m1(),
            Scale::Points => change,
        }
    }

    /// A shown change formatted: `+5.1%` for a relative change, `+5.1 pp` for a difference of
    /// shares.
    pub fn format(self, shown: f64) -> String {
        match self {
            Scale::Ratio => percent(shown),
            Scale::Points => percent(shown).replace('%', " pp"),
        }
    }

    /// A margin (a fraction, or a share in points) as `±3%` or `±0.1 pp`.
    pub fn margin(self, margin: f64) -> String {
        let unit = match self {
            Scale::Ratio => "%",
            Scale::Points => " pp",
        };
        format!("±{}{unit}", short(margin * 100.0))
    }

    /// The edges of a margin band on this scale: `ln(1 - m), ln(1 + m)` for ratios, `-m, m`
    /// for points.
    pub fn band(self, margin: f64) -> (f64, f64) {
        match self {
            Scale::Ratio => ((-margin).ln_1p(), margin.ln_1p()),
            Scale::Points => (-margin, margin),
        }
    }
}

/// A signed percentage with one decimal; a change that rounds to zero prints as `+0.0%`, never
/// `-0.0%`.
pub fn percent(fraction: f64) -> String {
    let tenths = (fraction * 1_000.0).round();
    let tenths = if tenths == 0.0 { 0.0 } else { tenths };
    format!("{:+.1}%", tenths / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_compute_show_and_band_their_changes() {
        let (low, high) = Scale::Ratio.band(0.03);
        assert!((low.exp() - 0.97).abs() < 1e-12 && (high.exp() - 1.03).abs() < 1e-12);
        assert_eq!(Scale::Points.band(0.03), (-0.03, 0.03));
        let change = Scale::Ratio.change(200.0, 220.0).expect("positive base");
        assert!((Scale::Ratio.shown(change) - 0.1).abs() < 1e-12);
        assert_eq!(Scale::Ratio.change(0.0, 1.0), None);
        assert_eq!(
            Scale::Ratio.shown(Scale::Ratio.change(5.0, 0.0).expect("base")),
            -1.0
        );
        assert_eq!(Scale::Points.change(0.0, 0.05), Some(0.05));
        assert_eq!(Scale::Points.shown(0.05), 0.05);
        assert_eq!(Scale::Points.format(0.051), "+5.1 pp");
        assert_eq!(Scale::Ratio.format(-0.12), "-12.0%");
        assert_eq!(Scale::Ratio.format(-0.0001), "+0.0%");
        assert_eq!(Scale::Points.margin(0.001), "±0.1 pp");
        assert_eq!(Scale::Ratio.margin(0.25), "±25%");
    }
}
