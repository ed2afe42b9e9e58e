//! A provider's live health: moving averages of latency and reliability, and its cooldown.
//!
//! Reliability is an exponential moving average of attempt outcomes (1 = success). Lost
//! reliability decays back toward 1 with a half-life, so a provider the router skipped for
//! being unreliable is tried again once enough time has passed; without the decay a skipped
//! provider would never get the samples that could rehabilitate it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::limits::MAX_RETRY_AFTER;

/// Moving averages and cooldown of one provider. Cheap to update: one uncontended lock.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// Wakes the requests waiting out a cooldown when an answer clears it.
    cleared: Notify,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Moving average of time to first byte, once there is a sample.
    latency_us: Option<f64>,
    reliability: f64,
    updated: Instant,
    /// The provider asked (`retry-after`) not to be called before this.
    cooldown_until: Option<Instant>,
    successes: u64,
    failures: u64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                latency_us: None,
                reliability: 1.0,
                updated: Instant::now(),
                cooldown_until: None,
                successes: 0,
                failures: 0,
            }),
            cleared: Notify::new(),
        }
    }
}

/// What the router needs to rank a provider, read at one instant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HealthView {
    pub reliability: f64,
    pub latency_us: Option<f64>,
    #[serde(serialize_with = "millis")]
    pub cooldown: Option<Duration>,
    pub successes: u64,
    pub failures: u64,
}

fn millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.map_or(0, |d| d.as_millis() as u64))
}

/// Smoothing settings shared by all providers.
#[derive(Debug, Clone, Copy)]
pub struct Smoothing {
    pub alpha: f64,
    pub half_life_secs: f64,
}

impl State {
    fn decayed_reliability(&self, now: Instant, smoothing: Smoothing) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        1.0 - (1.0 - self.reliability) * 0.5f64.powf(elapsed / smoothing.half_life_secs)
    }

    /// What is left at `now` of the cooldown, if any.
    fn cooldown_left(&self, now: Instant) -> Option<Duration> {
        self.cooldown_until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }
}

impl Health {
    /// Records a successful attempt and its time to first byte.
    pub fn success(&self, latency: Duration, smoothing: Smoothing) {
        let now = Instant::now();
        let mut s = self.lock();
        let sample = latency.as_secs_f64() * 1e6;
        s.latency_us = Some(match s.latency_us {
            None => sample,
            Some(avg) => avg + smoothing.alpha * (sample - avg),
        });
        s.reliability =
            s.decayed_reliability(now, smoothing) * (1.0 - smoothing.alpha) + smoothing.alpha;
        s.updated = now;
        s.successes += 1;
        let cleared = s.cooldown_until.take().is_some();
        drop(s);
        if cleared {
            self.cleared.notify_waiters();
        }
    }

    /// Records a failed attempt; `retry_after` starts a cooldown.
    pub fn failure(&self, retry_after: Option<Duration>, smoothing: Smoothing) {
        let now = Instant::now();
        let mut s = self.lock();
        s.reliability = s.decayed_reliability(now, smoothing) * (1.0 - smoothing.alpha);
        s.updated = now;
        if let Some(after) = retry_after {
            // Clamped again here: the pause may come from a caller that did not read it
            // through `limits`, and `Instant + Duration` panics on overflow.
            s.cooldown_until = now.checked_add(after.min(MAX_RETRY_AFTER));
        }
        s.failures += 1;
    }

    /// Waits out the provider's cooldown, `at_most` this long (what the caller planned for):
    /// until its `retry-after` has passed, or until the provider answers meanwhile (an attempt
    /// already in flight when the cooldown began), which ends the cooldown as it does for
    /// routing ([`Health::success`]).
    ///
    /// Without the second way out, one 429 among hundreds of requests a second would hold every
    /// request that arrives after it for the whole `retry-after` (a second, typically), while the
    /// provider goes on answering the requests sent before it.
    pub async fn cooled_down(&self, at_most: Duration) {
        let cleared = self.cleared.notified();
        tokio::pin!(cleared);
        // Registered before the cooldown is read, so an answer between the two is not missed.
        cleared.as_mut().enable();
        if let Some(left) = self.cooldown().map(|left| left.min(at_most)) {
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                () = cleared => {}
            }
        }
    }

    /// What is left of the cooldown now, if any: all an attempt needs to know before it is
    /// sent, without the moving averages [`Health::view`] also works out.
    pub fn cooldown(&self) -> Option<Duration> {
        self.lock().cooldown_left(Instant::now())
    }

    pub fn view(&self, now: Instant, smoothing: Smoothing) -> HealthView {
        let s = *self.lock();
        HealthView {
            reliability: s.decayed_reliability(now, smoothing),
            latency_us: s.latency_us,
            cooldown: s.cooldown_left(now),
            successes: s.successes,
            failures: s.failures,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain numbers, valid after any panic; keep going with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOOTHING: Smoothing = Smoothing {
        alpha: 0.2,
        half_life_secs: 30.0,
    };

    #[test]
    fn failures_lower_reliability_and_successes_raise_it() {
        let h = Health::default();
        h.failure(None, SMOOTHING);
        let r1 = h.view(Instant::now(), SMOOTHING).reliability;
        assert!(r1 < 0.81 && r1 > 0.79, "{r1}");
        h.success(Duration::from_millis(10), SMOOTHING);
        let r2 = h.view(Instant::now(), SMOOTHING).reliability;
        assert!(r2 > r1);
    }

    #[test]
    fn lost_reliability_halves_per_half_life() {
        let h = Health::default();
        h.failure(None, SMOOTHING);
        let later = Instant::now() + Duration::from_secs(30);
        let r = h.view(later, SMOOTHING).reliability;
        assert!((r - 0.9).abs() < 0.01, "{r}");
    }

    #[test]
    fn an_endless_retry_after_is_clamped_not_a_panic() {
        let h = Health::default();
        h.failure(Some(Duration::MAX), SMOOTHING);
        let cooldown = h.view(Instant::now(), SMOOTHING).cooldown.unwrap();
        assert!(cooldown <= MAX_RETRY_AFTER, "{cooldown:?}");
    }

    #[test]
    fn retry_after_sets_a_cooldown_that_success_clears() {
        let h = Health::default();
        h.failure(Some(Duration::from_secs(5)), SMOOTHING);
        assert!(h.view(Instant::now(), SMOOTHING).cooldown.is_some());
        assert!(
            h.view(Instant::now() + Duration::from_secs(6), SMOOTHING)
                .cooldown
                .is_none()
        );
        h.success(Duration::from_millis(1), SMOOTHING);
        assert!(h.view(Instant::now(), SMOOTHING).cooldown.is_none());
    }

    // The clock is paused: a wait that is not cut short jumps the clock by the whole cooldown.
    #[tokio::test(start_paused = true)]
    async fn an_answer_ends_the_wait_for_a_cooldown() {
        let h = Health::default();
        let cooldown = Duration::from_secs(10);
        h.failure(Some(cooldown), SMOOTHING);
        let began = tokio::time::Instant::now();
        tokio::join!(h.cooled_down(cooldown), async {
            tokio::task::yield_now().await;
            h.success(Duration::from_millis(1), SMOOTHING);
        });
        assert!(began.elapsed() < cooldown, "{:?}", began.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_answer_the_wait_lasts_the_cooldown_or_the_callers_limit() {
        let h = Health::default();
        h.failure(Some(Duration::from_secs(10)), SMOOTHING);
        let began = tokio::time::Instant::now();
        h.cooled_down(Duration::from_secs(4)).await;
        assert_eq!(began.elapsed().as_secs(), 4);
        // The cooldown ends on the real clock, which has hardly moved: about 10 s are left.
        let began = tokio::time::Instant::now();
        h.cooled_down(Duration::from_secs(60)).await;
        assert!(
            (9..=10).contains(&began.elapsed().as_secs()),
            "{:?}",
            began.elapsed()
        );
    }
}
