//! `summary.json`: the serde form of [`RunResult`].

use std::io::Write;
use std::path::Path;

use serde::Deserialize;

use crate::error::ReportError;
use crate::model::{RunResult, SCHEMA_VERSION};

/// Longest run a summary may describe. A bound on `second` keeps a corrupt file from making the
/// per-second views allocate without limit.
const MAX_RUN_SECONDS: u32 = 7 * 24 * 3600;

/// Writes `run` as pretty JSON (secrets in its config redacted).
pub fn write_summary(out: &mut impl Write, run: &RunResult) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, run)?;
    out.write_all(b"\n")
}

/// Reads a `summary.json`, checking its schema version and that its series are ordered.
pub fn read_summary(path: &Path) -> Result<RunResult, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_summary(&text).map_err(|error| error.at(path))
}

/// Why a summary text is not a valid [`RunResult`], before the file name is known.
enum SummaryError {
    Json(serde_json::Error),
    Version(u32),
    Inconsistent(String),
}

impl SummaryError {
    fn at(self, path: &Path) -> ReportError {
        let path = path.to_owned();
        match self {
            SummaryError::Json(source) => ReportError::Json { path, source },
            SummaryError::Version(found) => ReportError::SchemaVersion {
                path,
                found,
                expected: SCHEMA_VERSION,
            },
            SummaryError::Inconsistent(message) => ReportError::Inconsistent { path, message },
        }
    }
}

fn parse_summary(text: &str) -> Result<RunResult, SummaryError> {
    // Read the version first, so a newer file fails with a version message rather than with
    // whatever field it added.
    #[derive(Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let version: Version = serde_json::from_str(text).map_err(SummaryError::Json)?;
    if version.schema_version != SCHEMA_VERSION {
        return Err(SummaryError::Version(version.schema_version));
    }
    let run: RunResult = serde_json::from_str(text).map_err(SummaryError::Json)?;
    check_ordered("intervals", run.intervals.iter().map(|i| i.second), true)?;
    check_ordered("gateway", run.gateway.iter().map(|s| s.second), false)?;
    Ok(run)
}

fn check_ordered(
    field: &str,
    seconds: impl Iterator<Item = u32>,
    strictly: bool,
) -> Result<(), SummaryError> {
    let mut previous: Option<u32> = None;
    for second in seconds {
        if second > MAX_RUN_SECONDS {
            return Err(SummaryError::Inconsistent(format!(
                "`{field}` has second {second}, beyond the {MAX_RUN_SECONDS} s limit"
            )));
        }
        if let Some(previous) = previous
            && (second < previous || (strictly && second == previous))
        {
            return Err(SummaryError::Inconsistent(format!(
                "`{field}` is not ordered by second ({second} after {previous})"
            )));
        }
        previous = Some(second);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_other_schema_versions_by_name() {
        let Err(SummaryError::Version(found)) = parse_summary(r#"{"schema_version": 99}"#) else {
            panic!("a future schema version must be rejected as such");
        };
        assert_eq!(found, 99);
    }
}
