//! Errors of reading and writing run files.

use std::path::PathBuf;

/// Why a run file could not be read or written. Each variant renders as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid run summary: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} has schema version {found}, this build reads version {expected}",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{} is not a valid run summary: {message}", path.display())]
    Inconsistent { path: PathBuf, message: String },
    #[error("cannot render {name}: {source}")]
    Render {
        name: &'static str,
        source: minijinja::Error,
    },
}
