//! The system under test when no `--target` is given: two mock providers (primary and
//! fallback) and the reference gateway, each its own process (this binary's `mock` and
//! `gateway` commands) on an ephemeral loopback port, their output in the run directory.
//!
//! Own processes, so the gateway's RSS, CPU, tasks and connections are its own and not the load
//! generator's, and the generator's runtime is not shared with what it measures.

use std::path::{Path, PathBuf};

use mock_providers::{Distribution, FaultRates, Profile};
use reference_impl::queue::QueueConfig;
use reference_impl::{GatewayConfig, ProviderConfig, ProviderKind};
use scenarios::scenario::{Upstream, UpstreamChange};
use tokio::process::Child;

use super::options::MockBackend;
use super::plan::Target;
use crate::child::{start_child, stop, this_binary};
use crate::gateway::write_config;

/// What the load is sent to, and what can be changed or sampled while it runs.
pub struct Stack {
    /// Where requests go, taken in turn; never empty. The first is the one sampled.
    urls: Vec<String>,
    /// The mocks and gateway this stack started, gateway first; killed if dropped.
    children: Vec<Child>,
    /// The started gateway's process id.
    gateway_pid: Option<u32>,
    mocks: Mocks,
}

enum Mocks {
    None,
    /// `harness mock` processes; the primary's profile is changed through its control API.
    Native {
        primary: String,
        fallback: String,
        profile: Profile,
        control: reqwest::Client,
    },
    /// In this process: wiremock answers without pacing (functional runs only).
    Wiremock {
        primary: wiremock::MockServer,
        fallback: wiremock::MockServer,
    },
}

/// The system under test could not start or be changed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("mock provider: {0}")]
    Mock(String),
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("run directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Tokens each wiremock answer carries.
const WIREMOCK_TOKENS: usize = 32;

impl Stack {
    /// Starts what `target` needs (nothing for an external one); the started processes' files
    /// (profiles, gateway config, output) go to `dir`, created here. The run's client checks
    /// that the targets answer before the load starts (see `Client::preflight`).
    pub async fn start(
        target: &Target,
        upstream: Upstream,
        dir: &Path,
    ) -> Result<Stack, StackError> {
        let backend = match target {
            Target::External(urls) => {
                return Ok(Stack {
                    urls: urls.clone(),
                    children: Vec::new(),
                    gateway_pid: None,
                    mocks: Mocks::None,
                });
            }
            Target::Embedded(backend) => *backend,
        };
        std::fs::create_dir_all(dir).map_err(|source| StackError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let mut stack = Stack {
            urls: Vec::new(),
            children: Vec::new(),
            gateway_pid: None,
            mocks: Mocks::None,
        };
        let started = async {
            let [primary, fallback] = stack.start_mocks(backend, upstream, dir).await?;
            let gateway = stack.start_gateway(&primary, &fallback, dir).await?;
            stack.urls.push(gateway);
            Ok(())
        };
        match started.await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.shutdown().await;
                Err(e)
            }
        }
    }

    /// Base URLs the load is sent to, in turn.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The gateway that is sampled: the only one, or the first of several replicas.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// The process id of the gateway this stack started, whose RSS and CPU are sampled.
    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway_pid
    }

    /// One line saying exactly what runs.
    pub fn describe(&self) -> String {
        let gateway = |url: &str| match self.gateway_pid {
            Some(pid) => format!("embedded gateway {url} (process {pid}, cache on)"),
            None => format!("embedded gateway {url} (cache on)"),
        };
        match &self.mocks {
            Mocks::None if self.urls.len() > 1 => format!(
                "external targets {} (round-robin; the first is sampled)",
                self.urls.join(", ")
            ),
            Mocks::None => format!("external target {}", self.url()),
            Mocks::Native {
                primary,
                fallback,
                profile,
                ..
            } => format!(
                "{} -> native mocks primary {primary} + fallback {fallback} (TTFT {:?} ms, ITL {:?} ms, faults {:.1}%)",
                gateway(self.url()),
                profile.ttft_ms,
                profile.itl_ms,
                profile.faults.total() * 100.0
            ),
            Mocks::Wiremock { primary, fallback } => format!(
                "{} -> wiremock mocks primary {} + fallback {} (unpaced, {WIREMOCK_TOKENS} tokens)",
                gateway(self.url()),
                primary.uri(),
                fallback.uri()
            ),
        }
    }

    /// Applies a scenario's mid-run change to the primary provider, through its control API.
    pub async fn apply(&self, change: UpstreamChange) -> Result<(), StackError> {
        let Mocks::Native {
            primary,
            profile,
            control,
            ..
        } = &self.mocks
        else {
            return Err(StackError::Mock(
                "upstream changes need the embedded native mock".to_owned(),
            ));
        };
        let next = match change {
            UpstreamChange::PrimaryRecovers => profile.clone(),
            UpstreamChange::PrimaryFails { status } => Profile {
                faults: failing(status),
                ..profile.clone()
            },
        };
        let response = control
            .put(format!("{primary}/mock/config"))
            .json(&next)
            .send()
            .await
            .map_err(|e| StackError::Mock(format!("changing the primary's profile: {e}")))?;
        if !response.status().is_success() {
            return Err(StackError::Mock(format!(
                "the primary refused its new profile ({})",
                response.status()
            )));
        }
        Ok(())
    }

    /// Stops the gateway, then the mocks.
    pub async fn shutdown(self) {
        for child in self.children {
            stop(child).await;
        }
    }

    /// Starts the two mocks of `backend` and returns their URLs (primary, fallback).
    async fn start_mocks(
        &mut self,
        backend: MockBackend,
        upstream: Upstream,
        dir: &Path,
    ) -> Result<[String; 2], StackError> {
        match backend {
            MockBackend::Native => {
                let profile = profile(upstream);
                let mut urls = Vec::with_capacity(2);
                for (name, seed) in [
                    ("primary", profile.seed),
                    ("fallback", profile.seed.wrapping_add(1)),
                ] {
                    let file = dir.join(format!("mock-{name}.toml"));
                    let own = Profile {
                        seed,
                        ..profile.clone()
                    };
                    let text =
                        toml::to_string(&own).map_err(|e| StackError::Mock(e.to_string()))?;
                    std::fs::write(&file, text).map_err(|source| StackError::Dir {
                        path: file.clone(),
                        source,
                    })?;
                    let file = file.to_string_lossy();
                    let url = self
                        .spawn(
                            &format!("{name} mock"),
                            &["mock", "--profile", &file, "--port", "0"],
                            &dir.join(format!("mock-{name}.log")),
                        )
                        .await
                        .map_err(StackError::Mock)?;
                    urls.push(url);
                }
                let [primary, fallback]: [String; 2] = urls
                    .try_into()
                    .map_err(|_| StackError::Mock("two mocks".to_owned()))?;
                self.mocks = Mocks::Native {
                    primary: primary.clone(),
                    fallback: fallback.clone(),
                    profile,
                    control: reqwest::Client::new(),
                };
                Ok([primary, fallback])
            }
            MockBackend::Wiremock => {
                let start = || async {
                    let server = wiremock::MockServer::start().await;
                    mock_providers::wiremock::Reply::openai()
                        .tokens(WIREMOCK_TOKENS)
                        .mock()
                        .mount(&server)
                        .await;
                    server
                };
                let primary = start().await;
                let fallback = start().await;
                let urls = [primary.uri(), fallback.uri()];
                self.mocks = Mocks::Wiremock { primary, fallback };
                Ok(urls)
            }
        }
    }

    /// Starts the reference gateway in front of `primary` and `fallback`; returns its URL.
    async fn start_gateway(
        &mut self,
        primary: &str,
        fallback: &str,
        dir: &Path,
    ) -> Result<String, StackError> {
        let file = write_config(dir, "reference", gateway_config(primary, fallback), None)
            .map_err(|e| StackError::Gateway(crate::exit::message(&e)))?;
        let file = file.to_string_lossy();
        let url = self
            .spawn(
                "gateway",
                &["gateway", "--config", &file, "--port", "0"],
                &dir.join("gateway.log"),
            )
            .await
            .map_err(StackError::Gateway)?;
        self.gateway_pid = self.children.last().and_then(Child::id);
        Ok(url)
    }

    /// Runs this binary with `args`, its output to `log`; returns the address it prints.
    async fn spawn(&mut self, label: &str, args: &[&str], log: &Path) -> Result<String, String> {
        let started = async { start_child(this_binary(args)?, label, Some(log)).await };
        let (child, url) = started.await.map_err(|e| crate::exit::message(&e))?;
        self.children.push(child);
        Ok(url)
    }
}

/// Every request to the primary fails with `status`.
fn failing(status: u16) -> FaultRates {
    let mut faults = FaultRates::default();
    match status {
        429 => faults.http_429 = 1.0,
        503 => faults.http_503 = 1.0,
        529 => faults.http_529 = 1.0,
        _ => faults.http_500 = 1.0,
    }
    faults
}

fn profile(upstream: Upstream) -> Profile {
    match upstream {
        Upstream::Realistic => Profile::realistic(),
        Upstream::RealisticReliable => Profile {
            faults: FaultRates::default(),
            ..Profile::realistic()
        },
        Upstream::LongStreams => Profile {
            itl_ms: Distribution::Normal {
                mean: 50.0,
                std_dev: 5.0,
            },
            output_tokens: Distribution::Uniform {
                min: 100.0,
                max: 200.0,
            },
            faults: FaultRates::default(),
            ..Profile::realistic()
        },
    }
}

/// The reference gateway as the embedded stack runs it, in front of `primary` and `fallback`.
fn gateway_config(primary: &str, fallback: &str) -> GatewayConfig {
    // The fallback costs twice as much, as a fallback usually does: the router prefers the
    // primary whenever it is healthy, so it goes back to it after an outage.
    let mut fallback = ProviderConfig::new("fallback", ProviderKind::OpenAi, fallback);
    fallback.cost = 2.0;
    let mut config = GatewayConfig::with_providers(vec![
        ProviderConfig::new("primary", ProviderKind::OpenAi, primary),
        fallback,
    ]);
    // The reference gateway as it is meant to run: its response cache and coalescing on, and a
    // per-provider queue wide enough that only the stress scenario's top steps wait in it (so
    // the queue depth series shows when the gateway starts to hold requests back).
    config.cache.enabled = true;
    config.queue = Some(QueueConfig {
        max_concurrent: 1024,
        max_queued: 8192,
        ..QueueConfig::default()
    });
    // Lab timings: a run of a minute shows the breaker's whole cycle (open, half-open probes,
    // closed) and the router's reliability score recovering, where the production defaults
    // (open 60 s, half-life 30 s) would outlast the run. The failure threshold stays at its
    // default: with the realistic profile's 1% faults, a lower one trips on chance alone.
    config.breaker.open_secs = 5;
    config.routing.reliability_half_life_secs = 5.0;
    config
}
