//! Keeps the load generator's own console lines out of stdout while a run is in progress.
//!
//! Goose prints "N users launched." with `println!` whenever a test plan step finishes starting
//! users, with no option to turn it off. stdout belongs to the summary (and to `--json`), so
//! while the attack runs file descriptor 1 points at `/dev/null` and is restored afterwards.
//! Our own live output goes to stderr.

use std::io::Write;

/// Restores stdout when dropped.
pub struct StdoutGuard {
    saved: Option<libc::c_int>,
}

impl StdoutGuard {
    /// Points stdout at `/dev/null` until the guard is dropped; does nothing if that fails.
    pub fn silence() -> StdoutGuard {
        let _ = std::io::stdout().flush();
        // SAFETY: plain descriptor calls on descriptors this function owns or on fd 1; every
        // return value is checked, and on any failure stdout is left as it was.
        #[allow(unsafe_code)]
        let saved = unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null < 0 {
                return StdoutGuard { saved: None };
            }
            let saved = libc::dup(libc::STDOUT_FILENO);
            let redirected = saved >= 0 && libc::dup2(null, libc::STDOUT_FILENO) >= 0;
            libc::close(null);
            if !redirected {
                if saved >= 0 {
                    libc::close(saved);
                }
                return StdoutGuard { saved: None };
            }
            saved
        };
        StdoutGuard { saved: Some(saved) }
    }
}

impl Drop for StdoutGuard {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.saved.take() {
            // SAFETY: `saved` is the descriptor duplicated in `silence` and owned by this guard.
            unsafe {
                libc::dup2(saved, libc::STDOUT_FILENO);
                libc::close(saved);
            }
        }
    }
}
