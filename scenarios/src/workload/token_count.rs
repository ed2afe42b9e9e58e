//! A length in tokens drawn per request: `MEAN[:STDDEV]`, as the command line and run files
//! write it.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest prompt or answer a workload asks for (128 Ki tokens, the context of today's
/// large models); a larger number is a typo, and would build prompts of megabytes.
pub const MAX_TOKENS: u32 = 128 * 1024;

/// A per-request length in tokens: normal with this mean and standard deviation, rounded and
/// clamped to `1..=MAX_TOKENS`; a standard deviation of 0 gives exactly the mean. Written
/// `MEAN[:STDDEV]` (`512`, `512:128`), in TOML as that string or as a plain integer mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCount {
    mean: u32,
    stddev: u32,
}

/// A `MEAN[:STDDEV]` token count that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenCountError {
    #[error("`{0}` is not MEAN[:STDDEV] in whole tokens (e.g. 512 or 512:128)")]
    Syntax(String),
    #[error("mean {0} tokens is outside 1..={MAX_TOKENS}")]
    Mean(String),
    #[error("standard deviation {0} tokens is more than {MAX_TOKENS}")]
    Stddev(String),
}

impl TokenCount {
    /// A count with the given mean and standard deviation, both in tokens.
    pub fn new(mean: u32, stddev: u32) -> Result<TokenCount, TokenCountError> {
        Self::checked(u128::from(mean), u128::from(stddev))
    }

    /// Exactly `tokens` every time.
    pub fn fixed(tokens: u32) -> Result<TokenCount, TokenCountError> {
        Self::new(tokens, 0)
    }

    /// Checks numbers of any width, so a huge one is reported as out of range, not wrapped.
    fn checked(mean: u128, stddev: u128) -> Result<TokenCount, TokenCountError> {
        let limit = u128::from(MAX_TOKENS);
        if !(1..=limit).contains(&mean) {
            return Err(TokenCountError::Mean(mean.to_string()));
        }
        if stddev > limit {
            return Err(TokenCountError::Stddev(stddev.to_string()));
        }
        // Both are at most MAX_TOKENS, so they fit.
        Ok(TokenCount {
            mean: mean as u32,
            stddev: stddev as u32,
        })
    }

    pub fn mean(&self) -> u32 {
        self.mean
    }

    pub fn stddev(&self) -> u32 {
        self.stddev
    }

    /// One request's length.
    pub(crate) fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> u32 {
        if self.stddev == 0 {
            return self.mean;
        }
        match Normal::new(f64::from(self.mean), f64::from(self.stddev)) {
            // Clamped to a range of u32, so the cast cannot truncate.
            Ok(normal) => normal.sample(rng).round().clamp(1.0, f64::from(MAX_TOKENS)) as u32,
            Err(_) => self.mean,
        }
    }
}

impl FromStr for TokenCount {
    type Err = TokenCountError;

    fn from_str(text: &str) -> Result<TokenCount, TokenCountError> {
        let syntax = || TokenCountError::Syntax(text.to_owned());
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            // All digits: only more than u128 holds fail, and those are out of range.
            Ok(part.parse::<u128>().unwrap_or(u128::MAX))
        };
        let (mean, stddev) = match text.split_once(':') {
            Some((mean, stddev)) => (number(mean)?, number(stddev)?),
            None => (number(text)?, 0),
        };
        TokenCount::checked(mean, stddev)
    }
}

impl fmt::Display for TokenCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stddev {
            0 => write!(f, "{}", self.mean),
            stddev => write!(f, "{}:{stddev}", self.mean),
        }
    }
}

impl Serialize for TokenCount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TokenCount, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = TokenCount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count: MEAN[:STDDEV] such as \"512:128\", or an integer")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TokenCount, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, mean: u64) -> Result<TokenCount, E> {
                TokenCount::checked(u128::from(mean), 0).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, mean: i64) -> Result<TokenCount, E> {
                match u64::try_from(mean) {
                    Ok(mean) => self.visit_u64(mean),
                    Err(_) => Err(E::custom(TokenCountError::Mean(mean.to_string()))),
                }
            }
        }
        deserializer.deserialize_any(Text)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn parses_mean_and_optional_stddev_and_prints_them_back() {
        for text in ["512", "512:128", "1", "131072:0"] {
            let count: TokenCount = text.parse().expect(text);
            let back = count.to_string();
            assert_eq!(back.parse::<TokenCount>(), Ok(count), "{text} -> {back}");
        }
        let count: TokenCount = " 300 : 20 ".parse().expect("spaces around numbers");
        assert_eq!((count.mean(), count.stddev()), (300, 20));
        assert_eq!(
            "131072:0".parse::<TokenCount>().map(|c| c.to_string()),
            Ok("131072".into())
        );
    }

    #[test]
    fn rejects_what_is_not_a_usable_count() {
        let err = |text: &str| text.parse::<TokenCount>().expect_err(text);
        for bad in [
            "", ":", "512:", ":5", "abc", "-5", "5.5", "512:12:1", "1e3", "+5",
        ] {
            assert_eq!(err(bad), TokenCountError::Syntax(bad.to_owned()), "{bad:?}");
        }
        assert_eq!(err("0"), TokenCountError::Mean("0".into()));
        assert_eq!(err("131073"), TokenCountError::Mean("131073".into()));
        let huge = "99999999999999999999999";
        assert_eq!(err(huge), TokenCountError::Mean(huge.into()));
        assert_eq!(err("10:131073"), TokenCountError::Stddev("131073".into()));
        assert_eq!(err("0").to_string(), "mean 0 tokens is outside 1..=131072",);
        assert_eq!(
            err("5.5").to_string(),
            "`5.5` is not MEAN[:STDDEV] in whole tokens (e.g. 512 or 512:128)",
        );
    }

    #[test]
    fn round_trips_through_toml_as_text_and_reads_a_plain_integer() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Options {
            prompt_tokens: TokenCount,
        }
        let options = Options {
            prompt_tokens: TokenCount::new(512, 64).expect("valid"),
        };
        let text = toml::to_string(&options).expect("serializes");
        assert_eq!(text.trim(), r#"prompt_tokens = "512:64""#);
        assert_eq!(
            toml::from_str::<Options>(&text).expect("reads back"),
            options
        );
        let plain: Options = toml::from_str("prompt_tokens = 300").expect("an integer mean");
        assert_eq!(plain.prompt_tokens, TokenCount::fixed(300).expect("valid"));
        for bad in [
            "prompt_tokens = 0",
            "prompt_tokens = -3",
            "prompt_tokens = \"x\"",
            "prompt_tokens = true",
        ] {
            assert!(toml::from_str::<Options>(bad).is_err(), "{bad}");
        }
        let negative = toml::from_str::<Options>("prompt_tokens = -3").expect_err("negative");
        assert!(
            negative
                .to_string()
                .contains("mean -3 tokens is outside 1..=131072"),
            "{negative}"
        );
    }

    #[test]
    fn samples_center_on_the_mean_and_never_fall_below_one() {
        let mut rng = StdRng::seed_from_u64(5);
        let fixed = TokenCount::fixed(512).expect("valid");
        assert!((0..100).all(|_| fixed.sample(&mut rng) == 512));
        let spread = TokenCount::new(200, 50).expect("valid");
        let draws: Vec<u32> = (0..4000).map(|_| spread.sample(&mut rng)).collect();
        let mean = draws.iter().map(|d| f64::from(*d)).sum::<f64>() / draws.len() as f64;
        assert!((195.0..=205.0).contains(&mean), "{mean}");
        assert!(draws.iter().any(|d| *d < 150) && draws.iter().any(|d| *d > 250));
        let wide = TokenCount::new(2, 100).expect("valid");
        assert!((0..1000).all(|_| wide.sample(&mut rng) >= 1));
    }
}
