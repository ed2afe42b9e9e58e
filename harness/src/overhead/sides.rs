//! The processes behind the sides: a mock and the reference gateway started as children of
//! this binary (or a gateway someone else runs), and the bare proxy.

use std::path::Path;

use reports::overhead::SideLabel;
use tokio::process::Child;

use super::OverheadError;
use super::plan::Subject;
use crate::child::{start_child, this_binary};
use crate::gateway::{config_for, write_config};

/// The name of the side that reaches the upstream without a proxy.
const DIRECT: &str = "direct";

/// Where each side is, and the children that serve them (killed when this is dropped).
pub(super) struct Sides {
    /// The upstream, reached directly.
    pub direct: Served,
    /// The proxies in front of it: the gateway, its variants, then the bare proxy if asked for.
    pub through: Vec<Served>,
    children: Vec<Child>,
}

/// One side: its name and address, and the process serving it where it is known.
pub(super) struct Served {
    pub label: SideLabel,
    pub process: Option<u32>,
}

impl Served {
    fn new(name: &str, url: String, process: Option<u32>) -> Served {
        Served {
            label: SideLabel {
                name: name.to_owned(),
                url,
            },
            process,
        }
    }
}

impl Sides {
    /// Starts what `subject` needs (the gateway's configuration goes to `dir`) and the bare
    /// proxy when `bare`.
    pub async fn start(subject: &Subject, bare: bool, dir: &Path) -> Result<Sides, OverheadError> {
        let mut sides = Sides {
            direct: Served::new(DIRECT, String::new(), None),
            through: Vec::new(),
            children: Vec::new(),
        };
        match subject {
            Subject::External {
                target,
                direct,
                gateway_pid,
                direct_pid,
            } => {
                sides.direct = Served::new(DIRECT, direct.clone(), *direct_pid);
                let gateway = Served::new("gateway", target.clone(), *gateway_pid);
                sides.through.push(gateway);
            }
            Subject::Started {
                profile,
                overlay,
                variants,
            } => {
                let (url, pid) = sides
                    .spawn("mock", &["mock", "--profile", profile, "--port", "0"])
                    .await?;
                sides.direct = Served::new(DIRECT, url, pid);
                sides
                    .start_gateway(dir, "gateway", "reference", overlay.as_deref())
                    .await?;
                for (name, overlay) in variants {
                    let side = format!("gateway+{name}");
                    sides.start_gateway(dir, &side, name, Some(overlay)).await?;
                }
            }
        }
        if bare {
            let upstream = sides.direct.label.url.clone();
            let (url, pid) = sides
                .spawn(
                    "bare proxy",
                    &["bare-proxy", "--upstream", &upstream, "--port", "0"],
                )
                .await?;
            sides.through.push(Served::new("bare proxy", url, pid));
        }
        Ok(sides)
    }

    /// Every side, direct first.
    pub fn all(&self) -> impl Iterator<Item = &Served> {
        std::iter::once(&self.direct).chain(&self.through)
    }

    /// Starts the reference gateway in front of the mock, configured with `overlay`, as the
    /// side `name`; its configuration goes to `dir` as `gateway-<config>.toml`.
    async fn start_gateway(
        &mut self,
        dir: &Path,
        name: &str,
        config: &str,
        overlay: Option<&Path>,
    ) -> Result<(), OverheadError> {
        let config = write_config(dir, config, config_for(&self.direct.label.url), overlay)
            .map_err(|e| OverheadError::Start(crate::exit::message(&e)))?;
        let config = config.to_string_lossy();
        let (url, pid) = self
            .spawn(name, &["gateway", "--config", &config, "--port", "0"])
            .await?;
        self.through.push(Served::new(name, url, pid));
        Ok(())
    }

    /// Runs this binary with `args` and returns the address it prints and its process.
    async fn spawn(
        &mut self,
        label: &str,
        args: &[&str],
    ) -> Result<(String, Option<u32>), OverheadError> {
        let started = async { start_child(this_binary(args)?, label, None).await };
        let (child, url) = started
            .await
            .map_err(|e| OverheadError::Start(crate::exit::message(&e)))?;
        let pid = child.id();
        self.children.push(child);
        Ok((url, pid))
    }

    /// Stops every child this started.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            // Already exited is fine: nothing more is asked of it.
            let _ = child.kill().await;
        }
    }
}
