//! The run directory: `<out>/<scenario>-<UTC timestamp>/` with `summary.json` and the resolved
//! `config.toml`.

use std::path::{Path, PathBuf};

use reports::RunResult;

use crate::options::RunOptions;

/// The run directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {why}")]
    Encode { what: &'static str, why: String },
}

/// Creates a fresh run directory under `out` and writes the run into it.
pub fn write_run(out: &Path, run: &RunResult, options: &RunOptions) -> Result<PathBuf, OutputError> {
    let stamp = run.started_at.format("%Y%m%dT%H%M%SZ");
    let mut dir = out.join(format!("{}-{stamp}", run.scenario));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{}-{stamp}-{n}", run.scenario));
    }
    std::fs::create_dir_all(&dir).map_err(|source| OutputError::Write {
        path: dir.clone(),
        source,
    })?;
    let json = serde_json::to_string_pretty(run).map_err(|e| OutputError::Encode {
        what: "summary.json",
        why: e.to_string(),
    })?;
    write(&dir.join("summary.json"), json)?;
    let config = toml::to_string(options).map_err(|e| OutputError::Encode {
        what: "config.toml",
        why: e.to_string(),
    })?;
    write(
        &dir.join("config.toml"),
        format!("# Repeat this run: harness scenario {} --config config.toml\n{config}", run.scenario),
    )?;
    Ok(dir)
}

fn write(path: &Path, contents: String) -> Result<(), OutputError> {
    std::fs::write(path, contents).map_err(|source| OutputError::Write {
        path: path.to_owned(),
        source,
    })
}
