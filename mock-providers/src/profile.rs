//! Server profiles: how long a mock takes, how much it says and how often it fails.
//!
//! A profile is plain data (TOML or JSON) so it can be shipped as a file, sent to `PUT /mock/config`
//! at run time, or built in code. Every random draw comes from a seeded RNG, so two runs of the same
//! profile against the same request sequence produce the same timings and faults.

use std::path::Path;

use rand::Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};
use serde::{Deserialize, Serialize};

use crate::ProfileError;
use crate::limits::{self, LimitError};

/// A distribution of non-negative values (milliseconds for timings, a count for tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Distribution {
    /// Always `value`.
    Constant { value: f64 },
    /// Uniform in `[min, max]`.
    Uniform { min: f64, max: f64 },
    /// Normal, truncated at zero.
    Normal { mean: f64, std_dev: f64 },
    /// Log-normal with the given median and shape: the long right tail real providers show.
    LogNormal { median: f64, sigma: f64 },
}

impl Distribution {
    /// A distribution that always yields `value`.
    pub const fn constant(value: f64) -> Self {
        Self::Constant { value }
    }

    /// Draws one value, never negative.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let v = match *self {
            Self::Constant { value } => value,
            Self::Uniform { min, max } if max > min => rng.random_range(min..=max),
            Self::Uniform { min, .. } => min,
            Self::Normal { mean, std_dev } => {
                Normal::new(mean, std_dev).map_or(mean, |d| d.sample(rng))
            }
            Self::LogNormal { median, sigma } => {
                LogNormal::new(median.ln(), sigma).map_or(median, |d| d.sample(rng))
            }
        };
        v.max(0.0)
    }

    /// Checks every parameter with `check` (the bound of what the distribution measures); the
    /// error names the parameter, e.g. `ttft_ms.median`.
    fn validate(
        &self,
        field: &str,
        check: fn(f64) -> Result<f64, LimitError>,
    ) -> Result<(), ProfileError> {
        let param = |name: &str, v: f64, check: fn(f64) -> Result<f64, LimitError>| {
            check(v)
                .map(drop)
                .map_err(|e| invalid(&format!("{field}.{name}"), e))
        };
        match *self {
            Self::Constant { value } => param("value", value, check),
            Self::Uniform { min, max } => {
                param("min", min, check)?;
                param("max", max, check)?;
                if min > max {
                    return Err(ProfileError::Invalid {
                        field: field.to_owned(),
                        why: "min must not exceed max".into(),
                    });
                }
                Ok(())
            }
            Self::Normal { mean, std_dev } => {
                param("mean", mean, check)?;
                param("std_dev", std_dev, check)
            }
            Self::LogNormal { median, sigma } => {
                param("median", median, check)?;
                if median <= 0.0 {
                    return Err(ProfileError::Invalid {
                        field: format!("{field}.median"),
                        why: "must be > 0".into(),
                    });
                }
                param("sigma", sigma, limits::sigma)
            }
        }
    }
}

fn invalid(field: &str, e: LimitError) -> ProfileError {
    ProfileError::Invalid {
        field: field.to_owned(),
        why: e.to_string(),
    }
}

/// Probability of each injected fault per request; the rest succeed.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    pub http_429: f64,
    pub http_500: f64,
    pub http_503: f64,
    /// Anthropic's "overloaded" status; OpenAI routes answer it too, as a proxy in front of them would.
    pub http_529: f64,
    /// Accept the request and never answer.
    pub timeout: f64,
    /// Stream some tokens, then drop the connection.
    pub disconnect: f64,
    /// Send a chunk (or body) that is not valid JSON.
    pub malformed: f64,
    /// Stream some tokens, then an error event (Anthropic's `event: error`, an OpenAI error
    /// chunk); non-streaming requests get a 500.
    pub error_event: f64,
}

impl FaultRates {
    fn entries(&self) -> [(&'static str, f64); 8] {
        [
            ("http_429", self.http_429),
            ("http_500", self.http_500),
            ("http_503", self.http_503),
            ("http_529", self.http_529),
            ("timeout", self.timeout),
            ("disconnect", self.disconnect),
            ("malformed", self.malformed),
            ("error_event", self.error_event),
        ]
    }

    /// Total probability that a request fails.
    pub fn total(&self) -> f64 {
        self.entries().iter().map(|(_, p)| p).sum()
    }
}

/// How one mock server behaves: timing, output length, faults and the models it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Seed of every random draw; per-request generators derive from it and the request's sequence number.
    pub seed: u64,
    /// Time to first token, in milliseconds.
    pub ttft_ms: Distribution,
    /// Gap between consecutive tokens, in milliseconds, drawn per token.
    pub itl_ms: Distribution,
    /// Output length in tokens when the request does not cap it lower with `max_tokens`.
    pub output_tokens: Distribution,
    pub faults: FaultRates,
    /// Sent as `retry-after` (rounded up to seconds) and `retry-after-ms` with every 429.
    pub retry_after_ms: u64,
    /// Listed by `GET /v1/models`. Any model name is accepted on every route regardless.
    pub models: Vec<String>,
    /// Length of the vectors `POST /v1/embeddings` returns unless the request asks for `dimensions`.
    pub embedding_dimensions: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Self::fast()
    }
}

impl Profile {
    /// Answers at once with 16 tokens and never fails: for functional tests and peak-rate runs.
    pub fn fast() -> Self {
        Self {
            seed: 0x5eed,
            ttft_ms: Distribution::constant(0.0),
            itl_ms: Distribution::constant(0.0),
            output_tokens: Distribution::constant(16.0),
            faults: FaultRates::default(),
            retry_after_ms: 1000,
            models: [
                "gpt-4o-mini",
                "gpt-4o",
                "claude-3-5-haiku-latest",
                "text-embedding-3-small",
            ]
            .map(String::from)
            .to_vec(),
            embedding_dimensions: 256,
        }
    }

    /// Timing and reliability like a hosted model under ordinary load: TTFT around 50 ms with a
    /// long tail, ITL around 10 ms, a few hundred output tokens, and about 1% of requests failing.
    pub fn realistic() -> Self {
        Self {
            ttft_ms: Distribution::LogNormal {
                median: 50.0,
                sigma: 0.25,
            },
            itl_ms: Distribution::Normal {
                mean: 10.0,
                std_dev: 2.0,
            },
            output_tokens: Distribution::Uniform {
                min: 100.0,
                max: 400.0,
            },
            faults: FaultRates {
                http_429: 0.004,
                http_500: 0.003,
                http_503: 0.002,
                disconnect: 0.001,
                ..FaultRates::default()
            },
            ..Self::fast()
        }
    }

    /// Resolves a profile name (`fast`, `realistic`) or reads a TOML file.
    pub fn from_name_or_file(spec: &str) -> Result<Self, ProfileError> {
        match spec {
            "fast" => Ok(Self::fast()),
            "realistic" => Ok(Self::realistic()),
            path => Self::from_toml_file(Path::new(path)),
        }
    }

    /// Reads and validates a TOML profile.
    pub fn from_toml_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates a TOML profile.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let profile: Self =
            toml::from_str(text).map_err(|e| ProfileError::Parse(e.message().to_owned()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks every field against the bounds in [`crate::limits`]; the error names the first one
    /// that is wrong.
    pub fn validate(&self) -> Result<(), ProfileError> {
        self.ttft_ms.validate("ttft_ms", limits::millis)?;
        self.itl_ms.validate("itl_ms", limits::millis)?;
        self.output_tokens
            .validate("output_tokens", limits::token_parameter)?;
        for (name, p) in self.faults.entries() {
            limits::probability(p).map_err(|e| invalid(&format!("faults.{name}"), e))?;
        }
        if self.faults.total() > 1.0 {
            return Err(ProfileError::Invalid {
                field: "faults".into(),
                why: "probabilities add up to more than 1".into(),
            });
        }
        limits::whole_millis(self.retry_after_ms).map_err(|e| invalid("retry_after_ms", e))?;
        limits::embedding_dimensions(self.embedding_dimensions)
            .map_err(|e| invalid("embedding_dimensions", e))?;
        Ok(())
    }

    /// Picks the fault for one request from the profile's rates, or `None` for success.
    pub(crate) fn draw_fault<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        tokens: usize,
    ) -> Option<crate::Fault> {
        use crate::Fault;
        if self.faults.total() <= 0.0 {
            return None;
        }
        let mut roll: f64 = rng.random();
        let f = &self.faults;
        let ordered = [
            (f.http_429, Fault::Status(429)),
            (f.http_500, Fault::Status(500)),
            (f.http_503, Fault::Status(503)),
            (f.http_529, Fault::Status(529)),
            (f.timeout, Fault::Timeout),
            (
                f.disconnect,
                Fault::DisconnectAfter(rng.random_range(0..tokens.max(1))),
            ),
            (f.malformed, Fault::Malformed),
            (
                f.error_event,
                Fault::ErrorAfter(rng.random_range(0..tokens.max(1))),
            ),
        ];
        for (p, fault) in ordered {
            if roll < p {
                return Some(fault);
            }
            roll -= p;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_toml() {
        for p in [Profile::fast(), Profile::realistic()] {
            p.validate().expect("preset is valid");
            let text = toml::to_string(&p).expect("serializes");
            assert_eq!(Profile::from_toml(&text).expect("parses"), p);
        }
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let err = Profile::from_toml("[ttft_ms]\nkind = \"uniform\"\nmin = 5.0\nmax = 1.0\n")
            .unwrap_err();
        assert!(err.to_string().contains("ttft_ms"), "{err}");
        let err = Profile::from_toml("[faults]\nhttp_500 = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("faults.http_500"), "{err}");
        let err = Profile::from_toml("colour = 1\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_field() {
        for (toml, field) in [
            (
                "[ttft_ms]\nkind = \"constant\"\nvalue = 1e300\n",
                "ttft_ms.value",
            ),
            (
                "[itl_ms]\nkind = \"constant\"\nvalue = nan\n",
                "itl_ms.value",
            ),
            (
                "[itl_ms]\nkind = \"normal\"\nmean = 1.0\nstd_dev = inf\n",
                "itl_ms.std_dev",
            ),
            (
                "[ttft_ms]\nkind = \"lognormal\"\nmedian = 50.0\nsigma = 40.0\n",
                "ttft_ms.sigma",
            ),
            (
                "[ttft_ms]\nkind = \"uniform\"\nmin = -1.0\nmax = 5.0\n",
                "ttft_ms.min",
            ),
            (
                "[output_tokens]\nkind = \"constant\"\nvalue = 1e12\n",
                "output_tokens.value",
            ),
            ("[faults]\ntimeout = nan\n", "faults.timeout"),
            ("retry_after_ms = 1000000000\n", "retry_after_ms"),
            (
                "embedding_dimensions = 1000000000\n",
                "embedding_dimensions",
            ),
        ] {
            let err = Profile::from_toml(toml).unwrap_err();
            assert!(
                matches!(&err, ProfileError::Invalid { field: f, .. } if f == field),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn sampling_is_seeded_and_never_negative() {
        let d = Distribution::Normal {
            mean: 1.0,
            std_dev: 5.0,
        };
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..1000).map(|_| d.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(draw(7).iter().all(|v| *v >= 0.0));
        let mut rng = SmallRng::seed_from_u64(1);
        let ln = Distribution::LogNormal {
            median: 50.0,
            sigma: 0.25,
        };
        let mut v: Vec<f64> = (0..10_001).map(|_| ln.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        assert!((v[5000] - 50.0).abs() < 2.0, "median {}", v[5000]);
    }

    #[test]
    fn fault_draws_follow_the_rates() {
        let mut p = Profile::fast();
        p.faults.http_500 = 0.25;
        let mut rng = SmallRng::seed_from_u64(3);
        let n = (0..10_000)
            .filter(|_| p.draw_fault(&mut rng, 10).is_some())
            .count();
        assert!(
            (2300..2700).contains(&n),
            "{n} faults in 10000 draws at 25%"
        );
    }
}
