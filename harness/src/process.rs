//! A process's resident memory and CPU time, read from `/proc`: the gateway's (sampled each
//! second of a run) and the load generator's own (its health); and the CPU time the machine's
//! hypervisor took from it.

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

/// The machine's CPU time, as `/proc/stat` counts it, at the previous reading.
pub(crate) struct MachineClock {
    /// Ticks its hypervisor gave to other guests.
    steal: u64,
    /// All ticks, steal included.
    total: u64,
}

impl MachineClock {
    pub(crate) fn new() -> MachineClock {
        let (steal, total) = machine_cpu().unwrap_or_default();
        MachineClock { steal, total }
    }

    /// The share of the machine's CPU time since the previous reading that its hypervisor
    /// gave to other guests; 100 is all of it. `None` without `/proc/stat` or when no tick
    /// has passed.
    pub(crate) fn steal_percent(&mut self) -> Option<f64> {
        let (steal, total) = machine_cpu()?;
        let ticks = total.saturating_sub(self.total);
        let stolen = steal.saturating_sub(self.steal);
        (self.steal, self.total) = (steal, total);
        (ticks > 0).then(|| stolen as f64 / ticks as f64 * 100.0)
    }
}

/// The machine's steal and total CPU ticks so far, from the `cpu` line of `/proc/stat`: user,
/// nice, system, idle, iowait, irq, softirq, steal (guest time is counted within user).
fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let steal = *ticks.get(7)?;
    Some((steal, ticks.iter().sum()))
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

    #[test]
    fn the_machine_counts_its_ticks_and_their_stolen_share() {
        let (steal, total) = machine_cpu().expect("/proc/stat has a cpu line");
        assert!(total > 0 && steal <= total, "{steal} of {total}");
        let mut clock = MachineClock::new();
        std::thread::sleep(Duration::from_millis(50));
        let share = clock.steal_percent().expect("ticks passed in 50 ms");
        assert!((0.0..=100.0).contains(&share), "{share}");
    }
}
