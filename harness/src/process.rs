//! A process's resident memory and CPU time, read from `/proc`: the gateway's (sampled each
//! second of a run) and the load generator's own (its health).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whose RSS and CPU a sample reads.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    /// This process: the load generator (its own health).
    This,
    /// Another process on this machine: the embedded stack's gateway, or `--gateway-pid`.
    Pid(u32),
}

/// A process and its CPU time at the previous reading.
pub(crate) struct ProcessClock {
    /// `/proc/self` or `/proc/PID`.
    dir: PathBuf,
    cpu: Duration,
    at: Instant,
}

impl ProcessClock {
    pub(crate) fn new(process: Process) -> ProcessClock {
        let dir = match process {
            Process::This => PathBuf::from("/proc/self"),
            Process::Pid(pid) => PathBuf::from(format!("/proc/{pid}")),
        };
        ProcessClock {
            cpu: process_cpu(&dir).unwrap_or_default(),
            dir,
            at: Instant::now(),
        }
    }

    /// CPU use since the previous reading; 100 is one core.
    pub(crate) fn cpu_percent(&mut self) -> Option<f64> {
        let cpu = process_cpu(&self.dir)?;
        let wall = self.at.elapsed().as_secs_f64();
        let percent = (wall > 0.0).then(|| (cpu - self.cpu).as_secs_f64() / wall * 100.0);
        self.cpu = cpu;
        self.at = Instant::now();
        percent
    }

    /// Resident set size now.
    pub(crate) fn rss(&self) -> Option<u64> {
        process_rss(&self.dir)
    }
}

/// Resident set size of the process at `dir`, from its `statm`.
fn process_rss(dir: &Path) -> Option<u64> {
    let statm = std::fs::read_to_string(dir.join("statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// User plus system CPU time of the process at `dir`, from its `stat`.
fn process_cpu(dir: &Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (user + system) as f64 / clock_ticks(),
    ))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

fn clock_ticks() -> f64 {
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_another_by_pid_have_rss_and_cpu() {
        let this = Path::new("/proc/self");
        assert!(process_rss(this).is_some_and(|rss| rss > 1 << 20));
        assert!(process_cpu(this).is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let other = PathBuf::from(format!("/proc/{}", child.id()));
        assert!(process_rss(&other).is_some_and(|rss| rss > 0));
        assert!(process_cpu(&other).is_some());
        let _ = child.kill();
        let _ = child.wait();
    }
}
