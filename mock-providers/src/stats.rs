//! Request counters by route and outcome, kept in atomics so counting never takes a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// The routes a mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Messages,
    Embeddings,
    Models,
}

impl Route {
    const ALL: [Self; 4] = [
        Self::ChatCompletions,
        Self::Messages,
        Self::Embeddings,
        Self::Models,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Messages => "messages",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
        }
    }
}

/// What happened to a request, as the mock decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    BadRequest,
    /// Refused with a 401: the server requires an API key and the request's was missing or wrong.
    Unauthorized,
    Http429,
    Http500,
    Http503,
    Http529,
    Timeout,
    Disconnect,
    ErrorEvent,
    Malformed,
    /// The client went away before the answer was complete. Counted in addition to the outcome
    /// the request was planned to have, so a gateway's cancellation of upstream calls is visible.
    Cancelled,
}

impl Outcome {
    const ALL: [Self; 12] = [
        Self::Ok,
        Self::BadRequest,
        Self::Unauthorized,
        Self::Http429,
        Self::Http500,
        Self::Http503,
        Self::Http529,
        Self::Timeout,
        Self::Disconnect,
        Self::ErrorEvent,
        Self::Malformed,
        Self::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Http429 => "http_429",
            Self::Http500 => "http_500",
            Self::Http503 => "http_503",
            Self::Http529 => "http_529",
            Self::Timeout => "timeout",
            Self::Disconnect => "disconnect",
            Self::ErrorEvent => "error_event",
            Self::Malformed => "malformed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn for_status(status: u16) -> Self {
        match status {
            429 => Self::Http429,
            503 => Self::Http503,
            529 => Self::Http529,
            _ => Self::Http500,
        }
    }
}

/// Live counters of one server.
#[derive(Debug, Default)]
pub struct Stats {
    counts: [[AtomicU64; Outcome::ALL.len()]; Route::ALL.len()],
    in_flight: AtomicI64,
}

impl Stats {
    pub(crate) fn record(&self, route: Route, outcome: Outcome) {
        self.counts[route as usize][outcome as usize].fetch_add(1, Relaxed);
    }

    /// Marks a request as being answered until the returned guard finishes or drops.
    pub(crate) fn start(self: &Arc<Self>, route: Route) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight {
            stats: Some(Arc::clone(self)),
            route,
        }
    }

    pub(crate) fn reset(&self) {
        self.counts
            .iter()
            .flatten()
            .for_each(|c| c.store(0, Relaxed));
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut routes = BTreeMap::new();
        let mut requests = 0;
        for route in Route::ALL {
            let mut outcomes = BTreeMap::new();
            for outcome in Outcome::ALL {
                let n = self.counts[route as usize][outcome as usize].load(Relaxed);
                if n > 0 {
                    outcomes.insert(outcome.name().to_owned(), n);
                    if outcome != Outcome::Cancelled {
                        requests += n;
                    }
                }
            }
            if !outcomes.is_empty() {
                routes.insert(route.name().to_owned(), outcomes);
            }
        }
        StatsSnapshot {
            requests,
            in_flight: self.in_flight.load(Relaxed).max(0) as u64,
            routes,
        }
    }
}

/// A point-in-time copy of the counters; the JSON of `GET /mock/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Every request answered or being answered (cancellations are not extra requests).
    pub requests: u64,
    /// Requests whose answer has not finished yet.
    pub in_flight: u64,
    /// route name -> outcome name -> count; zero counts are left out.
    pub routes: BTreeMap<String, BTreeMap<String, u64>>,
}

impl StatsSnapshot {
    pub fn count(&self, route: Route, outcome: Outcome) -> u64 {
        self.routes
            .get(route.name())
            .and_then(|o| o.get(outcome.name()))
            .copied()
            .unwrap_or(0)
    }
}

/// Guard for a request being answered: leaves the in-flight count when dropped, and counts a
/// cancellation if it is dropped before [`InFlight::finish`].
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Option<Arc<Stats>>,
    route: Route,
}

impl InFlight {
    pub fn finish(&mut self) {
        if let Some(stats) = self.stats.take() {
            stats.in_flight.fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(stats) = self.stats.take() {
            stats.in_flight.fetch_sub(1, Relaxed);
            stats.record(self.route, Outcome::Cancelled);
        }
    }
}
