//! The system under test when no `--target` is given: two mock providers (primary and
//! fallback) and the reference gateway, all in this process on ephemeral loopback ports.

use mock_providers::{FaultRates, MockConfig, MockServer, Profile};
use reference_impl::queue::QueueConfig;
use reference_impl::{Gateway, GatewayConfig, GatewayHandle, ProviderConfig, ProviderKind};
use scenarios::scenario::{Upstream, UpstreamChange};

use crate::options::MockBackend;
use crate::resolve::Target;

/// What the load is sent to, and what can be changed or sampled while it runs.
pub struct Stack {
    /// Where requests go, taken in turn; never empty. The first is the one sampled.
    urls: Vec<String>,
    gateway: Option<GatewayHandle>,
    mocks: Mocks,
}

enum Mocks {
    None,
    /// Boxed: a native server is several hundred bytes, the other variants a few.
    Native {
        primary: Box<MockServer>,
        fallback: Box<MockServer>,
        profile: Profile,
    },
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
}

/// Tokens each wiremock answer carries.
const WIREMOCK_TOKENS: usize = 32;

impl Stack {
    /// Starts what `target` needs (nothing for an external one). The run's client checks that
    /// the targets answer before the load starts (see `Client::preflight`).
    pub async fn start(target: &Target, upstream: Upstream) -> Result<Stack, StackError> {
        let stack = match target {
            Target::External(urls) => Stack {
                urls: urls.clone(),
                gateway: None,
                mocks: Mocks::None,
            },
            Target::Embedded(backend) => {
                let (mocks, urls) = start_mocks(*backend, upstream).await?;
                let gateway = start_gateway(&urls).await?;
                Stack {
                    urls: vec![gateway.url().to_owned()],
                    gateway: Some(gateway),
                    mocks,
                }
            }
        };
        Ok(stack)
    }

    /// Base URLs the load is sent to, in turn.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The gateway that is sampled: the only one, or the first of several replicas.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// True when the gateway runs in this process, so this process's RSS and CPU are its.
    pub fn in_process(&self) -> bool {
        self.gateway.is_some()
    }

    /// One line saying exactly what runs.
    pub fn describe(&self) -> String {
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
            } => format!(
                "embedded gateway {} (cache on) -> native mocks primary {} + fallback {} (TTFT {:?} ms, ITL {:?} ms, faults {:.1}%)",
                self.url(),
                primary.url(),
                fallback.url(),
                profile.ttft_ms,
                profile.itl_ms,
                profile.faults.total() * 100.0
            ),
            Mocks::Wiremock { primary, fallback } => format!(
                "embedded gateway {} (cache on) -> wiremock mocks primary {} + fallback {} (unpaced, {WIREMOCK_TOKENS} tokens)",
                self.url(),
                primary.uri(),
                fallback.uri()
            ),
        }
    }

    /// Applies a scenario's mid-run change to the primary provider.
    pub fn apply(&self, change: UpstreamChange) -> Result<(), StackError> {
        let Mocks::Native {
            primary, profile, ..
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
        primary
            .set_profile(next)
            .map_err(|e| StackError::Mock(e.to_string()))
    }

    /// Stops the gateway, then the mocks.
    pub async fn shutdown(self) {
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
        }
        if let Mocks::Native {
            primary, fallback, ..
        } = self.mocks
        {
            (*primary).shutdown().await;
            (*fallback).shutdown().await;
        }
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
    }
}

async fn start_mocks(
    backend: MockBackend,
    upstream: Upstream,
) -> Result<(Mocks, [String; 2]), StackError> {
    match backend {
        MockBackend::Native => {
            let profile = profile(upstream);
            let start = |seed: u64| {
                let profile = Profile {
                    seed,
                    ..profile.clone()
                };
                async move {
                    MockServer::start(MockConfig::new(profile))
                        .await
                        .map_err(|e| StackError::Mock(e.to_string()))
                }
            };
            let primary = start(profile.seed).await?;
            let fallback = start(profile.seed.wrapping_add(1)).await?;
            let urls = [primary.url().to_owned(), fallback.url().to_owned()];
            Ok((
                Mocks::Native {
                    primary: Box::new(primary),
                    fallback: Box::new(fallback),
                    profile,
                },
                urls,
            ))
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
            Ok((Mocks::Wiremock { primary, fallback }, urls))
        }
    }
}

async fn start_gateway([primary, fallback]: &[String; 2]) -> Result<GatewayHandle, StackError> {
    // The fallback costs twice as much, as a fallback usually does: the router prefers the
    // primary whenever it is healthy, so it goes back to it after an outage.
    let mut fallback = ProviderConfig::new("fallback", ProviderKind::OpenAi, fallback.as_str());
    fallback.cost = 2.0;
    let mut config = GatewayConfig::with_providers(vec![
        ProviderConfig::new("primary", ProviderKind::OpenAi, primary.as_str()),
        fallback,
    ]);
    config.server.listen = ([127, 0, 0, 1], 0).into();
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
    Gateway::start(config)
        .await
        .map_err(|e| StackError::Gateway(e.to_string()))
}
