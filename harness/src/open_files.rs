//! The open files a run needs, provided before it starts.
//!
//! Every user holds a connection, and a shell's soft limit is often 1,024 descriptors: past it,
//! connects fail with "Too many open files", and a run would count those failures against the
//! target. As Locust does, the harness raises its soft limit up to the hard one before it starts
//! anything; the mock and gateway processes it starts inherit the raised limit. A hard limit
//! too low for the run is refused up front, in one line, rather than measured.

use std::io;

use anyhow::bail;

/// Descriptors a run uses besides its users' connections: the runtime, the run directory's
/// files, the pipes and sockets of the processes it starts.
const SPARE: u64 = 256;

/// Makes room for `users` connections in this process, and for twice as many in the gateway
/// it may start (a stream holds a client connection and an upstream one there).
pub fn provide(users: usize) -> anyhow::Result<()> {
    let users = u64::try_from(users).unwrap_or(u64::MAX);
    let need = users.saturating_add(SPARE);
    let (soft, hard) = limits()?;
    if hard < need {
        bail!(
            "{users} users need about {need} open files, and this process may open at most \
             {hard} (`ulimit -Hn`): raise the hard limit, or split the users over processes \
             with --worker"
        );
    }
    let wanted = users.saturating_mul(2).saturating_add(SPARE).min(hard);
    if soft < wanted {
        raise_soft(wanted, hard)?;
    }
    Ok(())
}

/// The soft and hard limits of open files.
fn limits() -> anyhow::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    #[allow(unsafe_code)]
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        bail!(
            "reading the open-file limit: {}",
            io::Error::last_os_error()
        );
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

fn raise_soft(soft: u64, hard: u64) -> anyhow::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit; a soft limit up to the hard one is always allowed.
    #[allow(unsafe_code)]
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        bail!(
            "raising the open-file limit to {soft}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(())
}
