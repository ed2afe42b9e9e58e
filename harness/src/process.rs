//! A process's resident memory and CPU time, read from `/proc`: the gateway's (sampled each
//! second of a run) and the load generator's own (its health); and the CPU time the machine's
//! hypervisor took from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whose RSS and CPU a sample reads.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    /// This process alone: the load generator (its own health), without the embedded stack's
    /// servers it started.
    This,
    /// A process on this machine and every process under it: the embedded stack's gateway, or
    /// `--gateway-pid`, where a supervisor's workers (uvicorn's, gunicorn's, a Node cluster's)
    /// serve the requests.
    Tree(u32),
}

/// A process, or a tree of them, and the CPU time of each at the previous reading.
pub(crate) struct ProcessClock {
    process: Process,
    /// CPU time so far of every process read, by pid: a process that joins the tree counts
    /// from its start, one that leaves it takes its last interval along.
    cpu: HashMap<u32, Duration>,
    at: Instant,
}

impl ProcessClock {
    pub(crate) fn new(process: Process) -> ProcessClock {
        let mut clock = ProcessClock {
            process,
            cpu: HashMap::new(),
            at: Instant::now(),
        };
        clock.cpu = clock.read_cpu().unwrap_or_default();
        clock
    }

    /// CPU use since the previous reading, summed over the tree; 100 is one core.
    pub(crate) fn cpu_percent(&mut self) -> Option<f64> {
        let (spent, wall) = self.advance()?;
        (!wall.is_zero()).then(|| spent.as_secs_f64() / wall.as_secs_f64() * 100.0)
    }

    /// CPU time spent since the previous reading, summed over the tree.
    pub(crate) fn spent(&mut self) -> Option<Duration> {
        self.advance().map(|(spent, _)| spent)
    }

    /// CPU time spent and wall time passed since the previous reading, which this one
    /// becomes.
    fn advance(&mut self) -> Option<(Duration, Duration)> {
        let cpu = self.read_cpu()?;
        let spent: Duration = cpu
            .iter()
            .map(|(pid, now)| now.saturating_sub(self.cpu.get(pid).copied().unwrap_or_default()))
            .sum();
        let wall = self.at.elapsed();
        self.cpu = cpu;
        self.at = Instant::now();
        Some((spent, wall))
    }

    /// Resident set size now, summed over the tree (pages the processes share count once per
    /// process, as `top` shows them).
    pub(crate) fn rss(&self) -> Option<u64> {
        Some(
            self.read_each(process_rss)?
                .iter()
                .map(|(_, rss)| rss)
                .sum(),
        )
    }

    /// The CPU time so far of every process of the tree.
    fn read_cpu(&self) -> Option<HashMap<u32, Duration>> {
        Some(self.read_each(process_cpu)?.into_iter().collect())
    }

    /// `read` of every process of the tree, by pid, the root's first; `None` once the root is
    /// gone (a process under it that exits between being listed and being read is left out).
    fn read_each<T>(&self, read: impl Fn(&Path) -> Option<T>) -> Option<Vec<(u32, T)>> {
        let members = match self.process {
            Process::This => vec![std::process::id()],
            Process::Tree(root) => tree(root),
        };
        let root = members[0];
        let values: Vec<(u32, T)> = members
            .into_iter()
            .filter_map(|pid| Some((pid, read(&proc_dir(pid))?)))
            .collect();
        (values.first()?.0 == root).then_some(values)
    }
}

/// `root` and every process under it, `root` first, each found through its parent's `children`
/// lists (one per thread of the parent: a child belongs to the thread that forked it).
pub(crate) fn tree(root: u32) -> Vec<u32> {
    let mut members = vec![root];
    let mut next = 0;
    while let Some(&pid) = members.get(next) {
        next += 1;
        let Ok(threads) = std::fs::read_dir(proc_dir(pid).join("task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let Ok(children) = std::fs::read_to_string(thread.path().join("children")) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                // A pid reused while the tree is read must not loop it.
                if !members.contains(&child) && members.len() < MAX_TREE {
                    members.push(child);
                }
            }
        }
    }
    members
}

/// The most processes a tree is read with: a supervisor's workers are tens, and a runaway
/// fork must not make every sample read thousands of files.
const MAX_TREE: usize = 256;

fn proc_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

/// A process `pid` runs on this machine.
pub(crate) fn runs(pid: u32) -> bool {
    proc_dir(pid).exists()
}

/// Where the kernel's scheduler puts a process before it shares the CPU between threads: its
/// cgroup, and its autogroup (one per session: a terminal, a `setsid`) when the kernel groups
/// by session. When the cores are busy, each group gets its share first, so a gateway in
/// another group than the load generator runs with a share that depends on how it was
/// started, not only on its own work.
#[derive(Debug)]
struct SchedGroup {
    cgroup: Option<String>,
    /// `None` where the kernel does not group by session or the file cannot be read.
    session: Option<String>,
}

/// A note when process `pid` is scheduled in another group than this one, for a run's banner.
pub(crate) fn scheduling_note(pid: u32) -> Option<String> {
    let by_session = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .is_ok_and(|enabled| enabled.trim() == "1");
    let group = |pid| SchedGroup::of(pid, by_session);
    let apart = group(Some(pid)).apart_from(&group(None))?;
    Some(format!(
        "note: process {pid} runs in another {apart} than this harness: when the cores are busy \
         the kernel divides the CPU between groups first, so figures under load depend on where \
         the gateway was started (README, \"Your own gateway\")"
    ))
}

impl SchedGroup {
    /// The groups of `pid`, or of this process; its autogroup only `by_session`, when the
    /// kernel groups by session.
    fn of(pid: Option<u32>, by_session: bool) -> SchedGroup {
        let dir = pid.map_or_else(|| PathBuf::from("/proc/self"), proc_dir);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        SchedGroup::parse(
            read("cgroup").as_deref(),
            read("autogroup").as_deref().filter(|_| by_session),
        )
    }

    /// From the text of `/proc/PID/cgroup` and `/proc/PID/autogroup` (`/autogroup-12 nice 0`).
    /// The kernel prints nothing for a process in the root autogroup (PID 1 and whatever it
    /// starts without a `setsid` in between, a CI runner's jobs among them), a group apart from
    /// every numbered one.
    fn parse(cgroup: Option<&str>, autogroup: Option<&str>) -> SchedGroup {
        SchedGroup {
            cgroup: cgroup.map(|text| text.trim().to_owned()),
            session: autogroup
                .map(|text| text.split_whitespace().next().unwrap_or("/"))
                .map(str::to_owned),
        }
    }

    /// What sets `self` apart from `other`, in words for a note; `None` when nothing known
    /// does.
    fn apart_from(&self, other: &SchedGroup) -> Option<&'static str> {
        let differ = |a: &Option<String>, b: &Option<String>| a.is_some() && b.is_some() && a != b;
        if differ(&self.cgroup, &other.cgroup) {
            Some("cgroup")
        } else if differ(&self.session, &other.session) {
            Some("session (the kernel's autogroup)")
        } else {
            None
        }
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
    fn scheduling_groups_apart_are_named_and_unknown_ones_are_not() {
        let user = Some("0::/user.slice/session-3.scope");
        let group = |cgroup, autogroup| SchedGroup::parse(cgroup, autogroup);
        let here = group(user, Some("/autogroup-303 nice 0"));
        assert_eq!(
            here.apart_from(&group(user, Some("/autogroup-303 nice 5"))),
            None
        );
        assert_eq!(
            here.apart_from(&group(user, Some("/autogroup-309 nice 0"))),
            Some("session (the kernel's autogroup)")
        );
        let root = group(user, Some(""));
        assert_eq!(
            root.apart_from(&here),
            Some("session (the kernel's autogroup)")
        );
        assert_eq!(root.apart_from(&group(user, Some("\n"))), None);
        let service = group(Some("0::/system.slice/gateway.service\n"), None);
        assert_eq!(here.apart_from(&service), Some("cgroup"));
        // What cannot be read, or a kernel that does not group by session, says nothing.
        assert_eq!(here.apart_from(&group(None, None)), None);
        assert_eq!(group(user, None).apart_from(&here), None);
    }

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
    fn a_tree_is_read_with_the_processes_under_its_root() {
        use std::os::unix::process::CommandExt;
        // A supervisor that only waits, a worker under it that spins, and one under that.
        let mut supervisor = std::process::Command::new("sh")
            .args(["-c", "sh -c 'sleep 30 & while :; do :; done' & wait"])
            .process_group(0)
            .spawn()
            .expect("sh runs");
        let root = supervisor.id();
        let started = Instant::now();
        while tree(root).len() < 3 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let members = tree(root);
        let mut whole = ProcessClock::new(Process::Tree(root));
        std::thread::sleep(Duration::from_millis(400));
        let whole_cpu = whole.cpu_percent();
        let whole_rss = whole.rss();
        let root_rss = process_rss(&proc_dir(root));
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{root}")])
            .status();
        let _ = supervisor.wait();

        assert_eq!(members.len(), 3, "{members:?}");
        assert_eq!(members[0], root);
        let whole_cpu = whole_cpu.expect("read twice");
        // The spinning worker's share, though the supervisor spends none.
        assert!(whole_cpu > 20.0, "{whole_cpu}% of a core");
        let (whole_rss, root_rss) = (whole_rss.expect("rss"), root_rss.expect("rss"));
        assert!(
            whole_rss > root_rss,
            "{whole_rss} against the root's {root_rss}"
        );
        // Gone with its root: no figure rather than a figure of nothing.
        assert_eq!(whole.cpu_percent(), None);
        assert_eq!(whole.rss(), None);
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
