//! Shared by the tests that run this binary: running it, the one-line errors it refuses bad
//! input with, scratch and run directories, and real processes of it (a standalone mock
//! provider and gateways on loopback, stopped when dropped). `redis` is the reference gateway's
//! `redis-server` helper, and `paced` the scenarios' mocks of known pacing, the same files.

#[path = "../../../scenarios/tests/it/common/paced.rs"]
pub mod paced;
#[path = "../../../reference-impl/tests/it/common/redis.rs"]
pub mod redis;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::RwLock;
use tokio::task::JoinHandle;

/// The machine, as the tests of this binary share it. The test runner runs tests side by side;
/// a test that measures the harness to a few milliseconds (or a few hundred microseconds) must
/// not share the machine with another test's load, nor with the processes that starve the
/// generator on purpose. Tests that load the machine for seconds (runs, servers, gates) hold it
/// shared, `read`; those that time closely or hog a CPU hold it alone, `write`; quick tests of
/// refused input need neither. An async lock, as the async tests hold it across their awaits.
pub static MACHINE: RwLock<()> = RwLock::const_new(());

/// The harness binary under test.
pub fn harness() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command.env("NO_COLOR", "1");
    command
}

/// Runs the harness with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    harness().args(args).output().expect("harness runs")
}

/// Starts the harness with `args` on a blocking thread and hands back its output once it ends,
/// so that the test's runtime, and a mock it serves, keeps running meanwhile.
pub fn spawn(args: &[&str]) -> JoinHandle<Output> {
    let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
    tokio::task::spawn_blocking(move || harness().args(args).output().expect("harness runs"))
}

/// The one line of stderr a refused command prints, once it is checked: exit code 1, a single
/// `error: ` line, no panic.
pub fn one_line_error(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

/// Panics unless `output` is a one-line error (see [`one_line_error`]) that mentions `needle`.
pub fn assert_one_line_error(output: &Output, needle: &str) {
    let line = one_line_error(output);
    assert!(line.contains(needle), "`{needle}` not in: {line}");
}

/// A new empty directory, removed with everything in it when dropped (by a failed test's
/// unwinding too); it reads as a [`Path`].
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

/// A scratch directory named after `name`, unique to this call.
pub fn scratch(name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("gatebench-{name}-"))
        .tempdir()
        .expect("scratch dir");
    Scratch(dir)
}

/// A directory for fixtures that a whole test binary shares from a static, which is never
/// dropped: under cargo's scratch space for integration tests, emptied first, so each run
/// reuses it rather than leaving a copy behind.
pub fn shared_scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `path` as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A server started as `harness mock` or `harness gateway` (or under a shell that supervises
/// it), its process group killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// The certificate file of an `https://` mock.
    pub certificate: Option<PathBuf>,
}

impl Server {
    /// `harness mock --port 0 --profile PROFILE`.
    pub fn mock(profile: &Path) -> Server {
        Server::start(&["mock", "--port", "0", "--profile", arg(profile)])
    }

    /// `harness gateway --upstream URL --port 0`.
    pub fn gateway(upstream: &str) -> Server {
        Server::start(&["gateway", "--upstream", upstream, "--port", "0"])
    }

    /// Starts `harness ARGS` and waits (at most 30 s) for the line that gives its address; the
    /// rest of its stderr is drained so it never blocks on a full pipe.
    pub fn start(args: &[&str]) -> Server {
        let mut command = harness();
        command.args(args).process_group(0);
        Server::spawn(command, args)
    }

    /// `harness ARGS` in a session of its own, as a gateway started from another terminal or by
    /// a service manager; the session's leader leads its own process group too.
    pub fn in_own_session(args: &[&str]) -> Server {
        let mut command = harness();
        command.args(args);
        // SAFETY: between fork and exec, setsid only; it is async-signal-safe, and the child
        // leads no process group yet, so it cannot fail for that.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| match libc::setsid() {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        Server::spawn(command, args)
    }

    /// `harness ARGS` under a shell that only waits for it, as a supervisor waits for its
    /// workers: the server's process is the shell's child, [`Server::pid`] the shell's.
    pub fn supervised(args: &[&str]) -> Server {
        let mut command = Command::new("sh");
        command
            .args(["-c", "\"$0\" \"$@\" & wait", env!("CARGO_BIN_EXE_harness")])
            .args(args)
            .env("NO_COLOR", "1")
            .process_group(0);
        Server::spawn(command, args)
    }

    /// The process started: the server's, or its supervisor's.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command`, which leads a process group of its own (stopped as a whole when
    /// dropped), and waits for the address it prints.
    fn spawn(mut command: Command, args: &[&str]) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("https://").or_else(|| line.find("http://")) {
                    let url = line[at..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let certificate = line
                        .split_once("(certificate: ")
                        .and_then(|(_, rest)| rest.split_once(')'))
                        .map(|(path, _)| PathBuf::from(path));
                    let _ = tx.send((url, certificate));
                }
            }
        });
        let (url, certificate) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("`harness {}` printed no address", args.join(" ")));
        Server {
            child,
            url,
            certificate,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no preconditions; the group is the one the server leads.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// Writes a mock profile with a spread of latencies and no faults, and returns its path.
pub fn mock_profile(dir: &Path) -> PathBuf {
    use mock_providers::{Distribution, Profile};
    let profile = Profile {
        ttft_ms: Distribution::LogNormal {
            median: 8.0,
            sigma: 0.6,
        },
        itl_ms: Distribution::Uniform { min: 0.5, max: 2.0 },
        output_tokens: Distribution::Uniform {
            min: 4.0,
            max: 12.0,
        },
        ..Profile::fast()
    };
    let path = dir.join("mock.toml");
    std::fs::write(
        &path,
        toml::to_string(&profile).expect("profile serializes"),
    )
    .expect("profile written");
    path
}

/// The `summary.json` of a run directory.
pub fn summary(dir: &Path) -> reports::RunResult {
    reports::run_dir::read_summary(&dir.join("summary.json")).expect("valid summary.json")
}

/// Whether this kernel schedules each session (terminal, `setsid`) as a group of its own.
pub fn groups_by_session() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .is_ok_and(|enabled| enabled.trim() == "1")
}

/// The run directories directly inside `dir`, by name.
pub fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("out dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Panics with the output unless the run finished: every SLO verdict counts (0 met, 2 failed,
/// 4 resting on seconds in which a busy test machine starved the load generator).
pub fn assert_ran(output: &Output, what: &str) {
    assert!(
        matches!(output.status.code(), Some(0 | 2 | 4)),
        "{what}: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
