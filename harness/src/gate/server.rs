//! The gateways under the gate: what to start for a side, starting it, and stopping its whole
//! process tree.
//!
//! Every server the gate starts leads a process group of its own, so stopping it reaches
//! everything it started too (a `sh -c` wrapper, a worker pool): SIGTERM to the group, then
//! SIGKILL to whatever is left after [`STOP_GRACE`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::git;
use crate::child::start_child;

/// How long a server may take to print its address or to listen on its port.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server's processes get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a starting command's port is tried.
const POLL: Duration = Duration::from_millis(50);

/// A gateway build to gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Build {
    /// The reference gateway inside this binary, run as `harness gateway`.
    Embedded,
    /// A `gateway` executable, run as `BIN --config FILE --port 0`.
    Binary(PathBuf),
    /// A git revision of this repository: its `gateway` is built in a worktree first.
    Revision(String),
}

/// Parsing only sorts the text: whether a revision exists is asked of git when the gate
/// prepares the build, not while the command line is parsed.
impl FromStr for Build {
    type Err = String;

    fn from_str(text: &str) -> Result<Build, String> {
        if text.trim().is_empty() {
            return Err("give a gateway executable, `embedded` or a git revision".to_owned());
        }
        let path = PathBuf::from(text);
        Ok(match text {
            "embedded" => Build::Embedded,
            _ if path.is_file() => Build::Binary(path),
            _ => Build::Revision(text.to_owned()),
        })
    }
}

impl Build {
    pub(super) fn label(&self) -> String {
        match self {
            Build::Embedded => "embedded".to_owned(),
            Build::Binary(path) => path.display().to_string(),
            Build::Revision(rev) => rev.clone(),
        }
    }

    /// Fails unless a revision names a commit of this repository; executables and `embedded`
    /// were told apart when parsed. Asked before the gate starts anything.
    pub(super) async fn check(&self) -> anyhow::Result<()> {
        if let Build::Revision(rev) = self {
            let commit = format!("{rev}^{{commit}}");
            git(&["rev-parse", "--verify", "--quiet", &commit])
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "`{rev}` is neither a gateway executable, `embedded`, nor a git \
                         revision of this repository"
                    )
                })?;
        }
        Ok(())
    }

    /// A build that can be started: a revision is checked out into a worktree under `dir` and
    /// its `gateway` built there (one shared target directory, so a second revision rebuilds
    /// only what differs).
    pub(super) async fn prepare(&self, dir: &Path) -> anyhow::Result<Runnable> {
        let rev = match self {
            Build::Embedded => return Ok(Runnable::Embedded),
            Build::Binary(path) => return Ok(Runnable::Binary(path.clone())),
            Build::Revision(rev) => rev,
        };
        let sha = git(&["rev-parse", "--short=12", &format!("{rev}^{{commit}}")]).await?;
        // cargo runs in the worktree: a relative target directory would land inside it.
        let dir = std::path::absolute(dir).context("resolving the out directory")?;
        // Each revision gets its own copy: the next build overwrites target/release/gateway.
        let bin = dir.join(format!("gateway-{sha}"));
        if bin.is_file() {
            return Ok(Runnable::Binary(bin));
        }
        let worktree = dir.join("worktrees").join(&sha);
        git(&["worktree", "prune"]).await?;
        if !worktree.exists() {
            let path = worktree.to_string_lossy();
            git(&["worktree", "add", "--detach", "--force", &path, &sha]).await?;
        }
        let target = dir.join("target");
        eprintln!("building gateway at {rev} ({sha})");
        let status = Command::new("cargo")
            .args(["build", "--release", "--locked", "-p", "reference-impl"])
            .args(["--bin", "gateway"])
            .current_dir(&worktree)
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .status()
            .await
            .context("running cargo")?;
        if !status.success() {
            bail!("building gateway at {rev} failed ({status})");
        }
        std::fs::copy(target.join("release").join("gateway"), &bin)
            .with_context(|| format!("copying the gateway built at {rev}"))?;
        // The checkout is no longer needed (the target directory stays, for the next build).
        git(&["worktree", "remove", "--force", &worktree.to_string_lossy()]).await?;
        Ok(Runnable::Binary(bin))
    }
}

/// A build ready to start.
#[derive(Clone, Debug)]
pub(super) enum Runnable {
    Embedded,
    Binary(PathBuf),
}

/// How one side of the gate is started for each run.
#[derive(Clone, Debug)]
pub(super) enum Launch {
    /// A gateway of this project with a configuration file: it prints its address.
    Project { build: Runnable, config: PathBuf },
    /// Any gateway: a `--base-cmd`/`--cand-cmd` template run through `sh -c`.
    Template(CommandTemplate),
}

/// A shell command that starts a gateway: `{port}` is replaced by a free loopback port it must
/// listen on, `{upstream}` by the mock provider's URL it must forward to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandTemplate(String);

impl FromStr for CommandTemplate {
    type Err = String;

    fn from_str(text: &str) -> Result<CommandTemplate, String> {
        if !text.contains("{port}") {
            return Err(format!(
                "`{text}` has no {{port}}: the gate picks the port and must tell the command"
            ));
        }
        Ok(CommandTemplate(text.to_owned()))
    }
}

impl CommandTemplate {
    pub(super) fn text(&self) -> &str {
        &self.0
    }

    fn render(&self, port: u16, upstream: &str) -> String {
        self.0
            .replace("{port}", &port.to_string())
            .replace("{upstream}", upstream)
    }
}

/// A running gateway: its URL and its process group.
pub(super) struct Server {
    pub url: String,
    child: Child,
    /// The group's id: the leader's pid, kept because a reaped child no longer has one.
    group: libc::pid_t,
}

impl Launch {
    /// Starts this side against `upstream`; its output goes to `log`.
    pub async fn start(
        &self,
        harness: &Path,
        upstream: &str,
        label: &str,
        log: &Path,
    ) -> anyhow::Result<Server> {
        match self {
            Launch::Project { build, config } => {
                let mut command = match build {
                    Runnable::Embedded => {
                        let mut command = Command::new(harness);
                        command.arg("gateway");
                        command
                    }
                    Runnable::Binary(path) => Command::new(path),
                };
                command
                    .arg("--config")
                    .arg(config)
                    .args(["--port", "0"])
                    .env("RUST_LOG", "warn")
                    .process_group(0);
                let (child, url) =
                    start_child(command, &format!("gateway {label}"), Some(log)).await?;
                Server::new(url, child)
            }
            Launch::Template(template) => start_template(template, upstream, log).await,
        }
    }
}

/// Runs `template` through `sh -c` on a free port and waits until the port accepts
/// connections.
async fn start_template(
    template: &CommandTemplate,
    upstream: &str,
    log: &Path,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let text = template.render(port, upstream);
    let output =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let errors = output.try_clone().context("sharing the log file")?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(&text)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{text}`"))?;
    let mut server = Server::new(format!("http://127.0.0.1:{port}"), child)?;
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(server);
        }
        if let Some(status) = server.child.try_wait().context("watching the command")? {
            // The leader is gone; anything it left behind goes with its group.
            server.stop().await;
            bail!(
                "`{text}` exited ({status}) before listening on 127.0.0.1:{port}: {}",
                last_line(log)
            );
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            server.stop().await;
            bail!(
                "`{text}` did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}: {}",
                last_line(log)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free loopback port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

/// The last non-empty line of `log`, for an error message.
fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!("its last output: {}", line.trim()),
        None => format!("no output (log: {})", log.display()),
    }
}

impl Server {
    /// `child` leads its own process group (`process_group(0)`): its pid is the group's id.
    fn new(url: String, child: Child) -> anyhow::Result<Server> {
        let pid = child.id().context("the server exited at once")?;
        let group = libc::pid_t::try_from(pid).context("process id out of range")?;
        Ok(Server { url, child, group })
    }

    /// Stops the server's whole process group: SIGTERM, then SIGKILL to what is still there
    /// after [`STOP_GRACE`]. Returns once the group is gone or killed.
    pub async fn stop(&mut self) {
        let group = -self.group;
        signal(group, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            // Reaps the leader once it exits, so it stops counting as a member.
            let _ = self.child.try_wait();
            if !signal(group, 0) {
                return;
            }
            if Instant::now() > deadline {
                signal(group, libc::SIGKILL);
                let _ = self.child.wait().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends `sig` to the process group `group` (negative); false once no process is left in it.
#[allow(unsafe_code)]
fn signal(group: libc::pid_t, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of this process.
    unsafe { libc::kill(group, sig) == 0 }
}
