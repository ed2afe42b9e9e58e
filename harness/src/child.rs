//! Server processes the harness starts (mocks, gateways, the bare proxy): each is started, its
//! address read from the line it prints, its output kept in a log file or drained, and it is
//! stopped with whatever started it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long a server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server is given to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// This harness binary run with `args`, as the command of a child server.
pub(crate) fn this_binary(args: &[&str]) -> anyhow::Result<Command> {
    let harness = std::env::current_exe().context("locating the harness executable")?;
    let mut command = Command::new(harness);
    command.args(args);
    Ok(command)
}

/// Starts a server process (`label` names it in errors), waits for the first `http://` address
/// it prints on stdout or stderr, and returns it. Everything it prints goes to `log` when given
/// (its start included), else is drained so it never blocks. The process is killed when the
/// returned child is dropped.
pub(crate) async fn start_child(
    mut command: Command,
    label: &str,
    log: Option<&Path>,
) -> anyhow::Result<(Child, String)> {
    let mut log = match log {
        Some(path) => Some(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let (tx, mut rx) = unbounded_channel();
    forward_lines(child.stdout.take(), tx.clone());
    forward_lines(child.stderr.take(), tx);
    let mut last = None;
    let url = tokio::time::timeout(STARTUP_TIMEOUT, async {
        while let Some(line) = rx.recv().await {
            write_line(&mut log, &line).await;
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                return Some(url.to_owned());
            }
            last = Some(line);
        }
        None
    })
    .await;
    match url {
        Ok(Some(url)) => {
            if let Some(log) = log {
                tokio::spawn(keep_logging(rx, log));
            }
            Ok((child, url))
        }
        Ok(None) => bail!(
            "{label} exited before listening: {}",
            last.as_deref().unwrap_or("no output")
        ),
        Err(_) => bail!("{label} printed no address within {STARTUP_TIMEOUT:?}"),
    }
}

/// Asks `child` to stop (SIGTERM, as a container runtime would), and kills it if it has not
/// exited within [`STOP_GRACE`].
pub(crate) async fn stop(mut child: Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM)
        };
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    // Already exited is fine: nothing more is asked of it.
    let _ = child.kill().await;
}

async fn write_line(log: &mut Option<tokio::fs::File>, line: &str) {
    if let Some(file) = log {
        // A log that cannot be written loses lines, not the run.
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}

async fn keep_logging(mut rx: UnboundedReceiver<String>, log: tokio::fs::File) {
    let mut log = Some(log);
    while let Some(line) = rx.recv().await {
        write_line(&mut log, &line).await;
    }
}

/// Sends every line `reader` yields to `tx` until it ends; the receiver may go away first.
fn forward_lines<R>(reader: Option<R>, tx: UnboundedSender<String>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let Some(reader) = reader else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                // Nobody reads any more, but the pipe must still be emptied.
                while let Ok(Some(_)) = lines.next_line().await {}
                return;
            }
        }
    });
}
