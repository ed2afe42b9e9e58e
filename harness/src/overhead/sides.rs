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
    children: Children,
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
    /// proxy when `bare`. Whatever was started before a failure is killed with it.
    pub async fn start(subject: &Subject, bare: bool, dir: &Path) -> Result<Sides, OverheadError> {
        let mut children = Children::default();
        let (direct, mut through) = match subject {
            Subject::External {
                target,
                direct,
                gateway_pid,
                direct_pid,
            } => (
                Served::new(DIRECT, direct.clone(), *direct_pid),
                vec![Served::new("gateway", target.clone(), *gateway_pid)],
            ),
            Subject::Started {
                profile,
                overlay,
                variants,
            } => {
                let (url, pid) = children
                    .spawn("mock", &["mock", "--profile", profile, "--port", "0"])
                    .await?;
                let mock = Served::new(DIRECT, url, pid);
                let upstream = &mock.label.url;
                let gateway = children
                    .gateway(dir, "gateway", "reference", upstream, overlay.as_deref())
                    .await?;
                let mut through = vec![gateway];
                for (name, overlay) in variants {
                    let side = format!("gateway+{name}");
                    let variant = children
                        .gateway(dir, &side, name, upstream, Some(overlay))
                        .await?;
                    through.push(variant);
                }
                (mock, through)
            }
        };
        if bare {
            let args = ["bare-proxy", "--upstream", &direct.label.url, "--port", "0"];
            let (url, pid) = children.spawn("bare proxy", &args).await?;
            through.push(Served::new("bare proxy", url, pid));
        }
        Ok(Sides {
            direct,
            through,
            children,
        })
    }

    /// Every side, direct first.
    pub fn all(&self) -> impl Iterator<Item = &Served> {
        std::iter::once(&self.direct).chain(&self.through)
    }

    /// Stops every child this started.
    pub async fn stop(mut self) {
        for child in &mut self.children.0 {
            // Already exited is fine: nothing more is asked of it.
            let _ = child.kill().await;
        }
    }
}

/// The processes started for the sides, killed when dropped.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    /// Starts the reference gateway in front of `upstream`, configured with `overlay`, as the
    /// side `name`; its configuration goes to `dir` as `gateway-<config>.toml`.
    async fn gateway(
        &mut self,
        dir: &Path,
        name: &str,
        config: &str,
        upstream: &str,
        overlay: Option<&Path>,
    ) -> Result<Served, OverheadError> {
        let config = write_config(dir, config, config_for(upstream), overlay)
            .map_err(|e| OverheadError::Start(crate::exit::message(&e)))?;
        let config = config.to_string_lossy();
        let (url, pid) = self
            .spawn(name, &["gateway", "--config", &config, "--port", "0"])
            .await?;
        Ok(Served::new(name, url, pid))
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
        self.0.push(child);
        Ok((url, pid))
    }
}
