//! Reading SLO files, with errors that name the line and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{BadQuantity, Op, Quantity, Slo, SloMetric, Stat};

/// Why an SLO file could not be used. Each variant renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    #[error("cannot read SLO file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}line {line}: {message}", origin(.path))]
    Invalid {
        path: Option<PathBuf>,
        line: usize,
        message: String,
    },
}

fn origin(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("SLO file {}: ", p.display()))
        .unwrap_or_else(|| "SLO file: ".to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    slo: Vec<RawSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    metric: Spanned<String>,
    stat: Spanned<String>,
    op: Spanned<String>,
    value: Spanned<RawValue>,
    #[serde(default)]
    abort: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Number(f64),
    Text(String),
}

/// Reads and checks an SLO file.
pub fn load_slos(path: &Path) -> Result<Vec<Slo>, SloError> {
    let text = std::fs::read_to_string(path).map_err(|source| SloError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_slos(&text).map_err(|error| match error {
        SloError::Invalid { line, message, .. } => SloError::Invalid {
            path: Some(path.to_owned()),
            line,
            message,
        },
        read @ SloError::Read { .. } => read,
    })
}

/// Parses and checks the text of an SLO file.
pub fn parse_slos(text: &str) -> Result<Vec<Slo>, SloError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| SloError::Invalid {
        path: None,
        line: error.span().map_or(1, |span| line_of(text, span.start)),
        message: error.message().trim().to_owned(),
    })?;
    raw.slo.into_iter().map(|raw| check(text, raw)).collect()
}

fn check(text: &str, raw: RawSlo) -> Result<Slo, SloError> {
    let invalid = |span: std::ops::Range<usize>, message: String| SloError::Invalid {
        path: None,
        line: line_of(text, span.start),
        message,
    };
    let metric = SloMetric::from_name(raw.metric.get_ref()).ok_or_else(|| {
        invalid(
            raw.metric.span(),
            format!(
                "field `metric`: unknown metric `{}` (expected one of: {})",
                raw.metric.get_ref(),
                SloMetric::NAMES.join(", ")
            ),
        )
    })?;
    let stat = Stat::ALL
        .into_iter()
        .find(|s| s.name() == raw.stat.get_ref())
        .ok_or_else(|| {
            invalid(
                raw.stat.span(),
                format!(
                    "field `stat`: unknown stat `{}` (expected one of: {})",
                    raw.stat.get_ref(),
                    names(&Stat::ALL)
                ),
            )
        })?;
    if !metric.stats().contains(&stat) {
        return Err(invalid(
            raw.stat.span(),
            format!(
                "field `stat`: `{}` does not apply to `{}` (use one of: {})",
                stat.name(),
                metric.name(),
                names(metric.stats())
            ),
        ));
    }
    let op = Op::from_symbol(raw.op.get_ref()).ok_or_else(|| {
        invalid(
            raw.op.span(),
            format!(
                "field `op`: unknown operator `{}` (expected <, <=, > or >=)",
                raw.op.get_ref()
            ),
        )
    })?;
    let value_span = raw.value.span();
    let value = match raw.value.into_inner() {
        RawValue::Number(n) if n.is_finite() && n >= 0.0 => Ok(Quantity::Number(n)),
        RawValue::Number(n) => Err(BadQuantity(n.to_string())),
        RawValue::Text(text) => text.parse::<Quantity>(),
    }
    .map_err(|e| invalid(value_span.clone(), format!("field `value`: {e}")))?;
    let kind = metric.value_kind(stat);
    if !kind.matches(value) {
        return Err(invalid(
            value_span,
            format!(
                "field `value`: {} {} needs {}, not `{value}`",
                metric.name(),
                stat.name(),
                kind.example()
            ),
        ));
    }
    Ok(Slo {
        metric,
        stat,
        op,
        value,
        abort: raw.abort,
    })
}

fn names(stats: &[Stat]) -> String {
    stats
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
