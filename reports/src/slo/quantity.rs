//! Values of SLO limits and measurements: durations, ratios and plain numbers.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::short;

/// A limit or a measured value, with its kind kept so it prints the way it was written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantity {
    /// `"250ms"`, `"1.5s"`, `"200us"`.
    Duration(Duration),
    /// `"1%"`; held as a fraction (0.01).
    Ratio(f64),
    /// `"120"` or `120`: requests/s, tokens/s, a count.
    Number(f64),
}

/// Why a value string is not a [`Quantity`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a duration (\"250ms\", \"1.5s\", \"200us\"), a percentage (\"1%\") or a number"
)]
pub struct BadQuantity(pub String);

impl Quantity {
    /// The value in base units: microseconds for durations, a fraction for ratios.
    pub fn base_value(self) -> f64 {
        match self {
            Quantity::Duration(d) => d.as_secs_f64() * 1e6,
            Quantity::Ratio(r) => r,
            Quantity::Number(n) => n,
        }
    }
}

impl FromStr for Quantity {
    type Err = BadQuantity;

    fn from_str(text: &str) -> Result<Quantity, BadQuantity> {
        let bad = || BadQuantity(text.to_owned());
        let trimmed = text.trim();
        let number = |digits: &str| {
            digits
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(bad)
        };
        if let Some(percent) = trimmed.strip_suffix('%') {
            return Ok(Quantity::Ratio(number(percent)? / 100.0));
        }
        // Longest suffixes first so "ms" is not read as "s".
        const UNITS: [(&str, f64); 6] = [
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ];
        for (suffix, secs_per_unit) in UNITS {
            if let Some(digits) = trimmed.strip_suffix(suffix) {
                let secs = number(digits)? * secs_per_unit;
                return Duration::try_from_secs_f64(secs)
                    .map(Quantity::Duration)
                    .map_err(|_| bad());
            }
        }
        number(trimmed).map(Quantity::Number)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Quantity::Duration(d) => {
                let us = d.as_secs_f64() * 1e6;
                if us < 1_000.0 {
                    write!(f, "{}us", short(us))
                } else if us < 1_000_000.0 {
                    write!(f, "{}ms", short(us / 1e3))
                } else {
                    write!(f, "{}s", short(us / 1e6))
                }
            }
            Quantity::Ratio(r) => write!(f, "{}%", short(r * 100.0)),
            Quantity::Number(n) => f.write_str(&short(n)),
        }
    }
}

/// The JSON form: kind-tagged and exact, e.g. `{"duration_ns": 250000000}` or `{"ratio": 0.01}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    DurationNs(u64),
    Ratio(f64),
    Number(f64),
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Quantity::Duration(d) => {
                Tagged::DurationNs(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            }
            Quantity::Ratio(r) => Tagged::Ratio(r),
            Quantity::Number(n) => Tagged::Number(n),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Tagged::deserialize(deserializer)? {
            Tagged::DurationNs(ns) => Quantity::Duration(Duration::from_nanos(ns)),
            Tagged::Ratio(r) => Quantity::Ratio(r),
            Tagged::Number(n) => Quantity::Number(n),
        })
    }
}
