//! Run options: the flags of `harness scenario`, also readable from a `--config` TOML file.
//!
//! One struct serves both, every field optional: a field given on the command line wins over
//! the file, and what neither gives comes from the scenario's defaults (see `plan`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use reports::model::GoodputLimits;
use scenarios::client::{Api, CacheHeader};
use scenarios::load::{Arrivals, Stages, parse_duration};
use scenarios::workload::TokenCount;
use serde::{Deserialize, Serialize};

use super::worker::WorkerSpec;
use crate::toml_overlay::overlay;

/// Options of one run. Unknown keys in a file are an error that names them.
#[derive(Clone, Debug, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Send to this OpenAI-compatible base URL instead of starting the embedded gateway;
    /// several, comma-separated (replicas of one gateway), take the requests in turn.
    #[arg(long, value_name = "URL[,URL...]")]
    pub target: Option<String>,
    /// The API the target speaks: `openai` (`/v1/chat/completions`) or `anthropic`
    /// (`/v1/messages`).
    #[arg(long, value_name = "API")]
    pub api: Option<Api>,
    /// Send this header with every request (repeatable); `[headers]` in a config file. Values
    /// of credential headers are written as `***` in every file and line a run writes.
    #[arg(long = "header", value_name = "NAME:VALUE", action = ArgAction::Append)]
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "header_table")]
    pub headers: Vec<HeaderEntry>,
    /// Read the API key from this environment variable and send it as the API expects
    /// (`Authorization: Bearer` or `x-api-key`); only the variable's name is recorded.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Trust the CA certificates of this PEM file for `https://` targets (a private CA or a
    /// self-signed certificate), beside the bundled web PKI roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the target's certificate (a warning in the summary and the report).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub insecure: Option<bool>,
    /// Speak HTTP/1.1 only, even where the target offers HTTP/2 through ALPN.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub http1: Option<bool>,
    /// How the target marks a cache hit: `NAME` (values hit, miss, coalesced) or
    /// `NAME=VALUE` (that value is a hit, any other a miss). Default `x-cache`.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub cache_header: Option<CacheHeaderText>,
    /// With --target: the process id of the gateway on this machine, whose RSS and CPU (with
    /// those of every process under it: a supervisor's workers) are then sampled like the
    /// embedded gateway's (endurance runs of a gateway built elsewhere).
    #[arg(long, value_name = "PID")]
    pub gateway_pid: Option<u32>,
    /// Which mock provider the embedded gateway talks to.
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub mock_backend: Option<MockBackend>,
    /// Closed model: this many users for the whole run.
    #[arg(long, value_name = "N")]
    pub users: Option<usize>,
    /// Closed model: k6-like stages, DURATION:USERS,... (e.g. 30s:100,2m:100,30s:0).
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<Stages>,
    /// Open model: arrivals per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Open model and rate sweep: how arrivals are spaced.
    #[arg(long, value_parser = parse_arrivals, value_name = "KIND")]
    pub arrivals: Option<Arrivals>,
    /// Open model: the user pool; arrivals that find every user busy are dropped. Rate sweep:
    /// the probe's users; every rate is served by twice as many.
    #[arg(long, value_name = "N")]
    pub max_users: Option<usize>,
    /// Rate sweep (stress): how many open-model rates follow the throughput probe.
    #[arg(long, value_name = "N")]
    pub sweep_rates: Option<usize>,
    /// Run length (e.g. 30s, 5m); stretches or shrinks the scenario's stages to fit.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<Span>,
    /// Prompts from a file instead of the scenario's corpus: JSONL of OpenAI chat request
    /// bodies, or a ShareGPT JSON file (first human turn, the answer's length as `max_tokens`).
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Synthetic prompts of this many tokens (o200k_base), e.g. 512 or 512:64 (mean:stddev).
    #[arg(long, value_name = "MEAN[:STDDEV]")]
    pub prompt_tokens: Option<TokenCount>,
    /// `max_tokens` of synthetic prompts, e.g. 128 or 128:16; needs --prompt-tokens.
    #[arg(long, value_name = "MEAN[:STDDEV]")]
    pub output_tokens: Option<TokenCount>,
    /// Synthetic prompts start with one of --prefix-count shared prefixes of this many tokens
    /// (prompt-cache workloads); needs --prompt-tokens.
    #[arg(long, value_name = "N")]
    pub prefix_tokens: Option<u32>,
    /// How many distinct shared prefixes (default 1); needs --prefix-tokens.
    #[arg(long, value_name = "K")]
    pub prefix_count: Option<u32>,
    /// Model name sent in chat requests.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Seed of every random choice (prompts, request kinds, arrivals).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Send only the I-th of N shares of the load (users and arrivals dealt round-robin);
    /// `auto/N` takes I from JOB_COMPLETION_INDEX + 1 (Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N")]
    pub worker: Option<WorkerSpec>,
    /// SLO file (TOML) instead of the scenario's default.
    #[arg(long, value_name = "FILE")]
    pub slo: Option<PathBuf>,
    /// Directory the run directory is created in.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Per-request limits for goodput, e.g. ttft:200ms,tpot:50ms,e2e:5s.
    #[arg(long, value_name = "LIMITS")]
    pub goodput: Option<Goodput>,
    /// A request not complete after this long counts as a timeout.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<Span>,
    /// No live progress line and no summary table (the verdict line stays).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub quiet: Option<bool>,
    /// Print the summary as JSON (summary.json's content) on stdout.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub json: Option<bool>,
    /// List prices per model for the report's cost estimate; config file only:
    /// `[prices."gpt-4o-mini"]` with `input_per_mtok` and `output_per_mtok`.
    #[arg(skip)]
    pub prices: Option<reports::cost::PriceTable>,
}

/// The mock provider behind the embedded gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MockBackend {
    /// The paced native server (realistic TTFT and ITL, faults, runtime profile changes).
    #[default]
    Native,
    /// wiremock answers without pacing; for functional checks, not timing.
    Wiremock,
}

/// The options file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("the config file and the flags do not merge: {0}")]
    Merge(String),
}

impl RunOptions {
    /// Reads a TOML options file.
    pub fn load(path: &Path) -> Result<RunOptions, OptionsError> {
        let text = std::fs::read_to_string(path).map_err(|source| OptionsError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| OptionsError::Parse {
            path: path.to_owned(),
            message: one_line(&text, &e),
        })
    }

    /// These options with every field `flags` sets replacing this one's: whole values, except
    /// that `headers` are merged by name (names are kept in lower case, so `Authorization` on
    /// the command line replaces `authorization` in the file).
    ///
    /// Both sides go through their TOML form, so a field added to [`RunOptions`] is merged
    /// without a line here.
    pub fn overridden_by(self, flags: RunOptions) -> Result<RunOptions, OptionsError> {
        let merge = |e: &dyn fmt::Display| OptionsError::Merge(e.to_string());
        let mut table = toml::Table::try_from(&self).map_err(|e| merge(&e))?;
        overlay(
            &mut table,
            toml::Table::try_from(&flags).map_err(|e| merge(&e))?,
        );
        table.try_into().map_err(|e| merge(&e))
    }
}

/// One `--header NAME:VALUE`, checked to be sendable when parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    pub name: String,
    pub value: String,
}

impl HeaderEntry {
    /// The value as a run may write it: credentials as `***` (`Bearer ***`).
    pub fn redacted(&self) -> HeaderEntry {
        HeaderEntry {
            name: self.name.clone(),
            value: reports::redact::header_value(&self.name, &self.value),
        }
    }
}

/// Never prints a credential, so `{:?}` of the options is safe in logs.
impl fmt::Debug for HeaderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.redacted();
        write!(f, "{}: {}", shown.name, shown.value)
    }
}

impl FromStr for HeaderEntry {
    type Err = String;

    fn from_str(text: &str) -> Result<HeaderEntry, String> {
        let (name, value) = scenarios::client::parse_header(text).map_err(|e| e.to_string())?;
        let value = value
            .to_str()
            .map_err(|_| format!("the value of header `{name}` must be visible ASCII"))?;
        Ok(HeaderEntry {
            name: name.to_string(),
            value: value.to_owned(),
        })
    }
}

/// `[headers]` in a config file: a table of names and values.
mod header_table {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::HeaderEntry;

    pub fn serialize<S: Serializer>(headers: &[HeaderEntry], s: S) -> Result<S::Ok, S::Error> {
        let table: toml::Table = headers
            .iter()
            .map(|h| (h.name.clone(), toml::Value::String(h.value.clone())))
            .collect();
        table.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HeaderEntry>, D::Error> {
        let table = toml::Table::deserialize(d)?;
        table
            .into_iter()
            .map(|(name, value)| {
                let value = value.as_str().ok_or_else(|| {
                    D::Error::custom(format!("headers.{name}: expected a string"))
                })?;
                format!("{name}:{value}")
                    .parse::<HeaderEntry>()
                    .map_err(|e| D::Error::custom(format!("headers.{name}: {e}")))
            })
            .collect()
    }
}

/// `--cache-header` as written, kept as text in files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheHeaderText(pub CacheHeader);

impl FromStr for CacheHeaderText {
    type Err = String;

    fn from_str(text: &str) -> Result<CacheHeaderText, String> {
        text.parse().map(CacheHeaderText)
    }
}

impl fmt::Display for CacheHeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

serde_as_text!(CacheHeaderText, Span, Goodput);

/// A TOML error on one line: the line number and the message, without the source excerpt.
pub(crate) fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

fn parse_arrivals(text: &str) -> Result<Arrivals, String> {
    match text {
        "constant" => Ok(Arrivals::Constant),
        "poisson" => Ok(Arrivals::Poisson),
        other => Err(format!(
            "`{other}` is not an arrival kind (constant, poisson)"
        )),
    }
}

/// A duration written with a unit (`500ms`, `30s`, `2m`); kept as text in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        parse_duration(text).map(Span).map_err(|e| e.to_string())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}us", d.as_micros())
        }
    }
}

/// Goodput limits as written on the command line: `ttft:200ms,tpot:50ms,e2e:5s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Goodput(pub GoodputLimits);

impl FromStr for Goodput {
    type Err = String;

    fn from_str(text: &str) -> Result<Goodput, String> {
        let mut limits = GoodputLimits::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not NAME:DURATION (e.g. ttft:200ms)"))?;
            let value = parse_duration(value).map_err(|e| e.to_string())?;
            let slot = match name.trim() {
                "ttft" => &mut limits.ttft,
                "tpot" => &mut limits.tpot,
                "e2e" | "latency" => &mut limits.e2e,
                other => return Err(format!("unknown goodput limit `{other}` (ttft, tpot, e2e)")),
            };
            *slot = Some(value);
        }
        Ok(Goodput(limits))
    }
}

impl fmt::Display for Goodput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits = [
            ("ttft", self.0.ttft),
            ("tpot", self.0.tpot),
            ("e2e", self.0.e2e),
        ];
        let parts: Vec<String> = limits
            .iter()
            .filter_map(|(name, limit)| limit.map(|d| format!("{name}:{}", Span(d))))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_field_by_field() {
        let file: RunOptions = toml::from_str(
            "users = 5\nmodel = \"m\"\nquiet = true\nrate = 2.5\n\
             [headers]\nx-team = \"a\"\nauthorization = \"Bearer file\"\n",
        )
        .expect("valid");
        let flags = RunOptions {
            users: Some(9),
            goodput: Some("ttft:200ms".parse().expect("valid")),
            headers: vec!["Authorization:Bearer flag".parse().expect("valid")],
            ..RunOptions::default()
        };
        let merged = file.overridden_by(flags).expect("merges");
        assert_eq!(merged.users, Some(9));
        assert_eq!(merged.model.as_deref(), Some("m"));
        assert_eq!(merged.quiet, Some(true));
        assert_eq!(merged.rate, Some(2.5));
        assert_eq!(
            merged.goodput.map(|g| g.to_string()).as_deref(),
            Some("ttft:200ms")
        );
        let mut headers: Vec<(String, String)> = merged
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect();
        headers.sort();
        assert_eq!(
            headers,
            [
                ("authorization".to_owned(), "Bearer flag".to_owned()),
                ("x-team".to_owned(), "a".to_owned())
            ]
        );
    }

    #[test]
    fn files_round_trip_and_reject_unknown_keys() {
        let options = RunOptions {
            stages: Some("10s:5,20s:5".parse().expect("valid")),
            duration: Some(Span(Duration::from_millis(1500))),
            goodput: Some("ttft:200ms,e2e:5s".parse().expect("valid")),
            arrivals: Some(Arrivals::Poisson),
            ..RunOptions::default()
        };
        let text = toml::to_string(&options).expect("serializes");
        assert_eq!(
            toml::from_str::<RunOptions>(&text).expect("parses"),
            options
        );
        let error = toml::from_str::<RunOptions>("userz = 3\n").expect_err("unknown key");
        assert!(error.message().contains("userz"), "{}", error.message());
    }

    #[test]
    fn goodput_names_the_bad_part() {
        assert!("ttft:fast".parse::<Goodput>().unwrap_err().contains("fast"));
        assert!("speed:1s".parse::<Goodput>().unwrap_err().contains("speed"));
        let limits = "tpot:50ms".parse::<Goodput>().expect("valid").0;
        assert_eq!(limits.tpot, Some(Duration::from_millis(50)));
        assert_eq!(limits.ttft, None);
    }
}
