//! Finding and starting headless Chromium for the tests that open a page in a real browser.
//! The gateway's dashboard test includes this file too. Such a test skips (with a message)
//! only when Chromium is not installed and `CI` is not set; under CI a missing browser fails
//! it, so that a CI job never passes without having looked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser, or `None` after printing why the test is skipped. Under CI a missing browser
/// fails the test instead.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let browser = find_chromium();
    if browser.is_none() {
        assert!(
            !under_ci(),
            "chromium is not installed but CI is set: install it (apt-get install -y chromium)"
        );
        eprintln!(
            "SKIPPED: chromium not installed (apt-get install -y chromium); set CI=true to make this a failure"
        );
    }
    browser
}

/// `browser` headless, with its profile in `profile`, logging to stderr, and with what would
/// make it reach the network on its own (updates, sync, first-run pages) or vary between
/// machines (GPU, scrollbars) turned off.
pub fn headless(browser: &Path, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// `$CHROMIUM`, else the first Chromium or Chrome on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}
