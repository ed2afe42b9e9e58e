//! One run of a gate: every load level, straight to the upstream and through the gateway with
//! the same requests, measured with `harness overhead`'s load driver and tally.

use std::time::Duration;

use clap::ValueEnum;
use reports::gate::{GateError, GateLevel, GateMetric, Measurements};
use reports::model::GeneratorSample;
use reports::overhead::{Load, Quantiles};
use scenarios::client::Client;

use crate::health::Health;
use crate::overhead::drive::{Requests, drive};
use crate::overhead::tally::Tally;

/// Unrecorded load before each level's measurement, so connection pools hold the level's
/// connections: a share of the level's length, at most this much.
const WARM_UP: Duration = Duration::from_millis(250);

/// The levels `--levels` can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelChoice {
    /// One plain request at a time: the cost of a request on an idle gateway.
    C1,
    /// Plain requests arriving at the open-model rate.
    Open,
    /// Streamed requests arriving at the open-model rate.
    OpenStream,
}

impl LevelChoice {
    pub fn is_open(self) -> bool {
        self != LevelChoice::C1
    }

    /// The level, with `rate` for the open ones.
    pub fn level(self, rate: f64) -> GateLevel {
        match self {
            LevelChoice::C1 => GateLevel {
                load: Load::Closed { concurrency: 1 },
                stream: false,
            },
            LevelChoice::Open => GateLevel {
                load: Load::Open { rate },
                stream: false,
            },
            LevelChoice::OpenStream => GateLevel {
                load: Load::Open { rate },
                stream: true,
            },
        }
    }
}

/// The two sides of one run: the upstream reached directly, and the gateway in front of it.
pub(super) struct Pair<'a> {
    pub direct: &'a Client,
    pub gateway: &'a Client,
}

impl Pair<'_> {
    /// Measures every level for `length` on each side. `direct_first` alternates from run to
    /// run, so a drift within a run does not always favour the same side.
    pub async fn measure(
        &self,
        levels: &[GateLevel],
        requests: &Requests,
        length: Duration,
        direct_first: bool,
    ) -> Result<Vec<Measurements>, GateError> {
        let mut measured = Vec::with_capacity(levels.len());
        for level in levels {
            let requests = Requests {
                stream: level.stream,
                ..requests.clone()
            };
            let warm_up = (length / 4).min(WARM_UP);
            drive(self.direct, &requests, level.load, warm_up).await;
            drive(self.gateway, &requests, level.load, warm_up).await;
            let mut health = Health::start();
            let (direct, gateway) = if direct_first {
                let direct = drive(self.direct, &requests, level.load, length).await;
                (
                    direct,
                    drive(self.gateway, &requests, level.load, length).await,
                )
            } else {
                let gateway = drive(self.gateway, &requests, level.load, length).await;
                (
                    drive(self.direct, &requests, level.load, length).await,
                    gateway,
                )
            };
            // One sample covers the whole measured span: its worst lateness and its steal.
            let generator = health.sample_through(0).pop().unwrap_or_default();
            measured.push(figures(&direct, &gateway, level.stream, &generator)?);
        }
        Ok(measured)
    }
}

/// The smallest added latency the gate tells apart, at p50 and at p99: below it the figure is a
/// difference of two latencies that each move by about as much from round to round on
/// loopback (a mock measured against itself added 1-2 us at p50 and 1-83 us at p99 between
/// rounds), so a ratio of two such differences is noise. Read as the floor, they compare as
/// unchanged; a gateway slower by more than the floor still shows.
const ADDED_FLOOR_P50_US: u64 = 50;
/// Requests per second recorded for a run that answered but succeeded at nothing.
const NO_THROUGHPUT: f64 = 0.001;
const ADDED_FLOOR_P99_US: u64 = 100;

/// The gated figures of one level: the gateway's throughput, error rate, header overhead and
/// TTFT (streamed levels), and its latency minus the direct side's at p50 and p99.
///
/// Latencies are read at least as 1 µs, the resolution they are recorded with, so that a
/// sub-microsecond figure still has a logarithm; added latencies at least as their floors.
fn figures(
    direct: &Tally,
    gateway: &Tally,
    stream: bool,
    generator: &GeneratorSample,
) -> Result<Measurements, GateError> {
    let through = gateway.figures();
    let mut m = Measurements::new();
    m.lag_max_us = generator.lag_max_us;
    m.steal_percent = generator.steal_percent;
    m.dropped = direct.dropped() + gateway.dropped();
    let answered = through.ok + through.failed;
    if answered > 0 {
        m = m.with(
            GateMetric::ErrorRate,
            through.failed as f64 / answered as f64,
        )?;
    }
    if answered > 0 {
        // A run whose every answer failed did no work: the least throughput there is, not a
        // missing figure, so the gate judges it (a ratio needs a positive amount).
        let rate = through.throughput().unwrap_or(0.0).max(NO_THROUGHPUT);
        m = m.with(GateMetric::Throughput, rate)?;
    }
    let at_least_1 = |us: u64| us.max(1) as f64;
    if let (Some(d), Some(g)) = (direct.figures().e2e, through.e2e) {
        let added = |pick: fn(&Quantiles) -> u64, floor: u64| {
            pick(&g).saturating_sub(pick(&d)).max(floor) as f64
        };
        m = m.with(GateMetric::AddedP50, added(|q| q.p50, ADDED_FLOOR_P50_US))?;
        m = m.with(GateMetric::AddedP99, added(|q| q.p99, ADDED_FLOOR_P99_US))?;
    }
    if let Some(header) = gateway.header() {
        m = m.with(GateMetric::OverheadP50, at_least_1(header.p50))?;
        m = m.with(GateMetric::OverheadP99, at_least_1(header.p99))?;
    }
    if let Some(ttft) = through.ttft.filter(|_| stream) {
        m = m.with(GateMetric::TtftP50, at_least_1(ttft.p50))?;
        m = m.with(GateMetric::TtftP99, at_least_1(ttft.p99))?;
    }
    Ok(m)
}
