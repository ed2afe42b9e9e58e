//! The named scenarios: each is data (load, request mix, prompts, upstream behaviour, default
//! SLOs) in a file of its own; adding a scenario is adding a file and a line to [`ALL`].

mod cache;
mod chat;
mod endurance;
mod failover;
mod mixed;
mod smoke;
mod spike;
mod streaming;
mod stress;
mod websocket;

use std::time::Duration;

use crate::load::Load;
use crate::workload::{Mix, PromptMix};

/// How the embedded mock provider behaves by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// TTFT around 50 ms, ITL around 10 ms, a few hundred tokens, about 1% faults.
    Realistic,
    /// The same timing without injected faults, so an SLO on errors judges the gateway alone.
    RealisticReliable,
    /// TTFT around 50 ms, then 100 to 200 tokens 50 ms apart (answers of 5 to 10 s), no faults:
    /// long streams, many at once.
    LongStreams,
}

/// How the load reaches the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP requests from Goose users ([`crate::attack`]).
    Http,
    /// Chat requests over WebSocket connections held at this path ([`crate::websocket`]).
    WebSocket { path: &'static str },
}

/// A change to the primary upstream at a point of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamChange {
    /// Every request to the primary fails with this status (500, 429, ...).
    PrimaryFails { status: u16 },
    /// The primary behaves as at the start again.
    PrimaryRecovers,
}

/// An [`UpstreamChange`] at a share (0..1) of the run's length, so it scales with `--duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedChange {
    pub at: f64,
    pub change: UpstreamChange,
}

/// One named scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// One line for `harness list`.
    pub description: &'static str,
    pub load: Load,
    pub mix: Mix,
    pub prompts: PromptMix,
    pub upstream: Upstream,
    pub transport: Transport,
    pub changes: Vec<TimedChange>,
    /// How often the sampler reads the gateway.
    pub sample_every: Duration,
    /// The default SLO file (TOML, parsed by `reports::slo::parse_slos`).
    pub slo: &'static str,
    /// Report the highest stage that met every SLO (stress).
    pub capacity_by_stage: bool,
}

impl Scenario {
    fn new(
        name: &'static str,
        description: &'static str,
        load: Load,
        mix: Mix,
        slo: &'static str,
    ) -> Scenario {
        Scenario {
            name,
            description,
            load,
            mix,
            prompts: PromptMix::conversational(),
            upstream: Upstream::Realistic,
            transport: Transport::Http,
            changes: Vec::new(),
            sample_every: Duration::from_secs(1),
            slo,
            capacity_by_stage: false,
        }
    }
}

/// Every scenario, in `harness list` order.
pub const ALL: [fn() -> Scenario; 10] = [
    smoke::scenario,
    chat::scenario,
    streaming::scenario,
    mixed::scenario,
    cache::scenario,
    failover::scenario,
    spike::scenario,
    stress::scenario,
    endurance::scenario,
    websocket::scenario,
];

/// Every scenario.
pub fn all() -> Vec<Scenario> {
    ALL.iter().map(|build| build()).collect()
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_valid_slo_file_and_a_load() {
        let names: Vec<&str> = all().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "smoke",
                "chat",
                "streaming",
                "mixed",
                "cache",
                "failover",
                "spike",
                "stress",
                "endurance",
                "websocket"
            ]
        );
        for scenario in all() {
            let slos = reports::slo::parse_slos(scenario.slo)
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
            assert!(!slos.is_empty(), "{} has SLOs", scenario.name);
            assert!(scenario.load.duration() > Duration::ZERO);
            assert!(!scenario.mix.entries().is_empty());
        }
        assert!(find("stress").is_some_and(|s| s.load.duration() <= Duration::from_secs(180)));
        assert!(find("nope").is_none());
    }
}
