//! Per-provider circuit breaker: stop sending traffic to a provider that keeps failing, and
//! find out cheaply when it has recovered.
//!
//! Contract:
//! - **Closed** (normal): every call is allowed. The breaker opens after `failure_threshold`
//!   consecutive failures, or, when `failure_ratio` is set, once at least `ratio_min_calls`
//!   calls in the current `ratio_window_secs` window failed at that ratio or more.
//! - **Open**: every call is rejected with the time left until the breaker half-opens
//!   (`open_secs`), which the gateway turns into `retry-after`.
//! - **Half-open**: at most `half_open_max_probes` calls are in flight at once; `success_threshold`
//!   successes close the breaker, any failure opens it again for another `open_secs`.
//!
//! [`CircuitBreaker::allow`] is one atomic load while closed. It returns a [`Permit`] that the
//! caller settles with [`Permit::success`] or [`Permit::failure`]; a permit dropped unsettled
//! (the client went away) frees its probe slot and counts as neither. Results of calls that were
//! admitted under an earlier state are ignored, so a slow call that fails after the breaker opened
//! cannot extend the open period, and a late success cannot close a breaker it never probed.
//! State changes are logged, counted in [`BreakerStats`] and published to [`CircuitBreaker::subscribe`].
//!
//! ```
//! # use reference_impl::breaker::{BreakerConfig, CircuitBreaker};
//! let breaker = CircuitBreaker::new("openai", BreakerConfig::default());
//! match breaker.allow() {
//!     Ok(permit) => permit.success(), // or permit.failure() after a 5xx, timeout or connect error
//!     Err(open) => println!("skip provider, retry in {:?}", open.retry_after),
//! }
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

/// `[breaker]` configuration; every field has the documented default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// Optional failure ratio (0..=1] over the window that also opens it; off by default.
    pub failure_ratio: Option<f64>,
    /// Length of the tumbling window the ratio is computed over.
    pub ratio_window_secs: u64,
    /// Calls a window needs before its ratio counts, so one failure in two calls does not trip.
    pub ratio_min_calls: u32,
    /// How long an open breaker rejects calls before it lets probes through.
    pub open_secs: u64,
    /// Probes allowed in flight at once while half-open.
    pub half_open_max_probes: u32,
    /// Successful probes that close a half-open breaker.
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_ratio: None,
            ratio_window_secs: 30,
            ratio_min_calls: 20,
            open_secs: 60,
            half_open_max_probes: 1,
            success_threshold: 2,
        }
    }
}

impl BreakerConfig {
    /// Rejects settings that would make the breaker never open, never close or never probe.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let counts = [
            ("failure_threshold", self.failure_threshold),
            ("ratio_min_calls", self.ratio_min_calls),
            ("half_open_max_probes", self.half_open_max_probes),
            ("success_threshold", self.success_threshold),
        ];
        if let Some((field, _)) = counts.into_iter().find(|(_, value)| *value == 0) {
            return Err(BreakerConfigError::Zero(field));
        }
        if let Some(ratio) = self.failure_ratio
            && !(ratio > 0.0 && ratio <= 1.0)
        {
            return Err(BreakerConfigError::Ratio(ratio));
        }
        Ok(())
    }
}

/// An invalid `[breaker]` setting, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BreakerConfigError {
    #[error("breaker.{0} must be at least 1")]
    Zero(&'static str),
    #[error("breaker.failure_ratio must be in (0, 1], got {0}")]
    Ratio(f64),
}

/// Where a breaker stands, in order of severity, so the worst of several is the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Numeric form for a Prometheus gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> u8 {
        self as u8
    }

    fn from_u8(raw: u8) -> Self {
        match raw {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }
}

/// The call was refused because the breaker is open (or half-open with every probe slot taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open, retry in {retry_after:?}")]
pub struct Open {
    /// Time until the breaker lets probes through again (zero while half-open).
    pub retry_after: Duration,
}

/// Counters since the breaker was created, for `/metrics` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerStats {
    pub provider: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Half-open probes admitted and not yet settled or dropped.
    pub probes_in_flight: u32,
    pub opened: u64,
    pub half_opened: u64,
    pub closed: u64,
    pub rejected: u64,
}

/// A circuit breaker for one provider. Share it behind an `Arc`.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: String,
    config: BreakerConfig,
    /// Mirror of `inner.state`, read without the lock on the hot path.
    state: AtomicU8,
    inner: Mutex<Inner>,
    rejected: AtomicU64,
    changes: watch::Sender<BreakerState>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Bumped on every transition; permits from an older generation are ignored.
    generation: u64,
    consecutive_failures: u32,
    window: Window,
    opened_at: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    opened: u64,
    half_opened: u64,
    closed: u64,
}

/// Calls and failures in the current tumbling ratio window.
#[derive(Debug)]
struct Window {
    started: Instant,
    calls: u32,
    failures: u32,
}

/// How a call admitted with a [`Deferred`] ended, for [`CircuitBreaker::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider served the call (a stream that ran to its end).
    Success,
    /// The provider failed it (a stream that broke).
    Failure,
    /// It ended without saying anything about the provider (the client went away): frees a
    /// probe slot, counts as neither.
    Abandoned,
}

/// An admission whose outcome comes later ([`Permit::defer`]); owns no borrow, so it can travel
/// with a stream. Settle it with [`CircuitBreaker::settle`]: a probe left unsettled would keep
/// its half-open slot.
#[must_use = "settle it with CircuitBreaker::settle so the breaker learns the outcome"]
#[derive(Debug)]
pub struct Deferred(PermitKind);

/// Admission to call the provider; settle it with [`Permit::success`] or [`Permit::failure`].
#[must_use = "settle the permit with success() or failure() so the breaker learns the outcome"]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    kind: PermitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermitKind {
    Closed,
    Probe {
        generation: u64,
    },
    /// Already settled; dropping it does nothing.
    Settled,
}

impl CircuitBreaker {
    pub fn new(provider: impl Into<String>, config: BreakerConfig) -> Self {
        let now = Instant::now();
        let (changes, _) = watch::channel(BreakerState::Closed);
        Self {
            provider: provider.into(),
            config,
            state: AtomicU8::new(BreakerState::Closed as u8),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                consecutive_failures: 0,
                window: Window {
                    started: now,
                    calls: 0,
                    failures: 0,
                },
                opened_at: now,
                probes_in_flight: 0,
                probe_successes: 0,
                opened: 0,
                half_opened: 0,
                closed: 0,
            }),
            rejected: AtomicU64::new(0),
            changes,
        }
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The current state (an open breaker whose time is up reads as open until the next `allow`).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// A receiver that sees every state change, for routing tables and admin views.
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.changes.subscribe()
    }

    /// Asks to make one call. Lock-free while closed.
    pub fn allow(&self) -> Result<Permit<'_>, Open> {
        if self.state.load(Ordering::Acquire) == BreakerState::Closed as u8 {
            return Ok(Permit {
                breaker: self,
                kind: PermitKind::Closed,
            });
        }
        let mut inner = self.lock();
        let now = Instant::now();
        if inner.state == BreakerState::Open {
            let open_for = Duration::from_secs(self.config.open_secs);
            let waited = now.duration_since(inner.opened_at);
            if waited < open_for {
                drop(inner);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Open {
                    retry_after: open_for - waited,
                });
            }
            self.transition(&mut inner, BreakerState::HalfOpen, now);
        }
        match inner.state {
            BreakerState::Closed => Ok(Permit {
                breaker: self,
                kind: PermitKind::Closed,
            }),
            BreakerState::HalfOpen if inner.probes_in_flight < self.config.half_open_max_probes => {
                inner.probes_in_flight += 1;
                Ok(Permit {
                    breaker: self,
                    kind: PermitKind::Probe {
                        generation: inner.generation,
                    },
                })
            }
            _ => {
                drop(inner);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Open {
                    retry_after: Duration::ZERO,
                })
            }
        }
    }

    pub fn stats(&self) -> BreakerStats {
        let inner = self.lock();
        BreakerStats {
            provider: self.provider.clone(),
            state: inner.state,
            consecutive_failures: inner.consecutive_failures,
            probes_in_flight: inner.probes_in_flight,
            opened: inner.opened,
            half_opened: inner.half_opened,
            closed: inner.closed,
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Settles a deferred admission with how its call ended.
    pub fn settle(&self, deferred: Deferred, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.settle_kind(deferred.0, true),
            Outcome::Failure => self.settle_kind(deferred.0, false),
            Outcome::Abandoned => self.abandon(deferred.0),
        }
    }

    fn settle_kind(&self, kind: PermitKind, success: bool) {
        let mut inner = self.lock();
        let now = Instant::now();
        match (kind, inner.state) {
            (PermitKind::Closed, BreakerState::Closed) => {
                self.record_closed(&mut inner, success, now);
            }
            (PermitKind::Probe { generation }, BreakerState::HalfOpen)
                if generation == inner.generation =>
            {
                inner.probes_in_flight -= 1;
                if success {
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.config.success_threshold {
                        self.transition(&mut inner, BreakerState::Closed, now);
                    }
                } else {
                    self.transition(&mut inner, BreakerState::Open, now);
                }
            }
            // Admitted under an earlier state: the outcome says nothing about the present one.
            _ => {}
        }
    }

    /// Frees the probe slot of a permit dropped without an outcome.
    fn abandon(&self, kind: PermitKind) {
        if let PermitKind::Probe { generation } = kind {
            let mut inner = self.lock();
            if inner.state == BreakerState::HalfOpen && inner.generation == generation {
                inner.probes_in_flight -= 1;
            }
        }
    }

    fn record_closed(&self, inner: &mut Inner, success: bool, now: Instant) {
        let window_len = Duration::from_secs(self.config.ratio_window_secs);
        if now.duration_since(inner.window.started) >= window_len {
            inner.window = Window {
                started: now,
                calls: 0,
                failures: 0,
            };
        }
        inner.window.calls += 1;
        if success {
            inner.consecutive_failures = 0;
        } else {
            inner.window.failures += 1;
            inner.consecutive_failures += 1;
        }
        self.trip_if_due(inner, now);
    }

    /// Opens a closed breaker whose failure count or ratio reached its threshold.
    fn trip_if_due(&self, inner: &mut Inner, now: Instant) {
        let ratio_tripped = self.config.failure_ratio.is_some_and(|ratio| {
            inner.window.calls >= self.config.ratio_min_calls
                && f64::from(inner.window.failures) >= ratio * f64::from(inner.window.calls)
        });
        if inner.consecutive_failures >= self.config.failure_threshold || ratio_tripped {
            self.transition(inner, BreakerState::Open, now);
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: Instant) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        match to {
            BreakerState::Open => {
                inner.opened_at = now;
                inner.opened += 1;
            }
            BreakerState::HalfOpen => inner.half_opened += 1,
            BreakerState::Closed => {
                inner.closed += 1;
                inner.consecutive_failures = 0;
                inner.window = Window {
                    started: now,
                    calls: 0,
                    failures: 0,
                };
            }
        }
        self.state.store(to as u8, Ordering::Release);
        self.changes.send_replace(to);
        tracing::info!(provider = %self.provider, ?from, ?to, "circuit breaker state change");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every update is a plain store.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Permit<'_> {
    /// The call succeeded (the provider answered with something other than a 5xx or 429).
    pub fn success(mut self) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Settled);
        self.breaker.settle_kind(kind, true);
    }

    /// The call failed: connect error, timeout, 429 or 5xx.
    pub fn failure(mut self) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Settled);
        self.breaker.settle_kind(kind, false);
    }

    /// Leaves the outcome for later, for a call whose end is not yet known (a stream that has
    /// begun): settle the returned [`Deferred`] with [`CircuitBreaker::settle`] when it ends.
    pub fn defer(mut self) -> Deferred {
        Deferred(std::mem::replace(&mut self.kind, PermitKind::Settled))
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe { .. })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.abandon(self.kind);
    }
}
