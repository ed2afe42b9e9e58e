//! Where a run was measured, so results from different machines are not compared blindly.

use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine and build a run was measured on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub host: String,
    /// Logical CPUs available to the process.
    pub cores: u32,
    /// Operating system and architecture, e.g. `linux x86_64 (Debian GNU/Linux 13)`.
    pub os: String,
    /// `git rev-parse HEAD` of the working directory, when it is a git checkout.
    pub git_commit: Option<String>,
    /// Version of the measuring tool.
    pub tool_version: String,
}

impl Environment {
    /// Reads the environment of the current process; `tool_version` is the caller's
    /// `CARGO_PKG_VERSION`. Readings that are unavailable are left empty, never an error.
    pub fn detect(tool_version: &str) -> Environment {
        Environment {
            host: hostname(),
            cores: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            os: os(),
            git_commit: git_commit(),
            tool_version: tool_version.to_owned(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

fn os() -> String {
    let base = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                .map(|name| name.trim_matches('"').to_owned())
        });
    match pretty {
        Some(name) => format!("{base} ({name})"),
        None => base,
    }
}

fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}
