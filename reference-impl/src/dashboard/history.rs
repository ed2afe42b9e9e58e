//! The sampler's memory: fixed rings of past windows, the readings a 10-second window is taken
//! against, and what the last sample made of them.

use std::collections::VecDeque;

use serde::Serialize;

use super::alerts::{self, Alert, AlertThresholds};
use super::sample::{ProviderInsight, Reading, Totals, Window};

/// Seconds the rolling window (realtime figures, alerts, 10-second trend points) spans.
pub const WINDOW_SECS: usize = 10;
/// One-second trend points kept: 10 minutes.
pub const SECOND_POINTS: usize = 600;
/// Ten-second trend points kept: 1 hour.
pub const TEN_SECOND_POINTS: usize = 360;

/// A fixed-capacity ring: pushing into a full ring drops the oldest item, so memory never grows
/// past the capacity however long the gateway runs.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Ring<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The newest `n` items (fewer if the ring holds fewer), oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &T> {
        self.items.iter().skip(self.items.len().saturating_sub(n))
    }

    pub fn oldest(&self) -> Option<&T> {
        self.items.front()
    }

    pub fn latest(&self) -> Option<&T> {
        self.items.back()
    }
}

/// Everything the dashboard shows at one instant: what `/admin/dashboard/metrics/realtime`
/// answers and each event of the feed carries.
#[derive(Debug, Clone, Serialize)]
pub struct Realtime {
    pub unix_ms: u64,
    pub uptime_secs: f64,
    pub totals: Totals,
    /// The last sampled second.
    pub last_second: Window,
    /// The last [`WINDOW_SECS`] seconds (less just after start).
    pub window: Window,
    pub providers: Vec<ProviderInsight>,
    pub alerts: Vec<Alert>,
}

/// What the sampler keeps between ticks.
pub struct History {
    /// The last `WINDOW_SECS + 1` readings: the newest against the oldest is the window.
    readings: Ring<Reading>,
    pub seconds: Ring<Window>,
    pub ten_seconds: Ring<Window>,
    ticks: u64,
    /// The last sample's view, `None` before the first.
    pub latest: Option<Realtime>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            readings: Ring::new(WINDOW_SECS + 1),
            seconds: Ring::new(SECOND_POINTS),
            ten_seconds: Ring::new(TEN_SECOND_POINTS),
            ticks: 0,
            latest: None,
        }
    }
}

impl History {
    /// Takes in one reading: a 1-second point (against the reading before), every tenth tick
    /// a 10-second point, the rolling window, provider insights and alerts.
    pub fn record(
        &mut self,
        reading: Reading,
        thresholds: &AlertThresholds,
        unix_ms: u64,
        uptime_secs: f64,
    ) -> &Realtime {
        let last_second = match self.readings.latest() {
            Some(before) => {
                let point = Window::between(&reading, before, unix_ms);
                self.seconds.push(point);
                point
            }
            None => Window::empty(&reading, unix_ms),
        };
        let oldest = self.readings.oldest().unwrap_or(&reading);
        let window = Window::between(&reading, oldest, unix_ms);
        let before = self.readings.latest().unwrap_or(&reading);
        let providers = ProviderInsight::all(&reading, before);
        self.ticks += 1;
        if self.readings.len() == self.readings.capacity()
            && self.ticks.is_multiple_of(WINDOW_SECS as u64)
        {
            self.ten_seconds.push(window);
        }
        let previous = self.latest.as_ref().map_or(&[][..], |r| &r.alerts[..]);
        let alerts = alerts::evaluate(thresholds, &window, &providers, previous, unix_ms);
        let totals = reading.totals();
        self.readings.push(reading);
        self.latest.insert(Realtime {
            unix_ms,
            uptime_secs,
            totals,
            last_second,
            window,
            providers,
            alerts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayConfig;
    use crate::server::Shared;

    #[test]
    fn a_full_ring_drops_its_oldest_and_never_grows() {
        let mut ring = Ring::new(3);
        for i in 0..10_000 {
            ring.push(i);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(
            ring.newest(10).copied().collect::<Vec<_>>(),
            [9_997, 9_998, 9_999]
        );
        assert_eq!(ring.newest(2).copied().collect::<Vec<_>>(), [9_998, 9_999]);
        assert_eq!(ring.oldest(), Some(&9_997));
    }

    #[test]
    fn an_hour_of_samples_fills_the_rings_and_no_more() {
        let gw = Shared::new(GatewayConfig::default()).expect("valid config");
        let mut history = History::default();
        let thresholds = AlertThresholds::default();
        for tick in 0..3_700u64 {
            if tick % 3 == 0 {
                gw.metrics.record_status(200);
                gw.metrics.latency_us.record(1_000 + tick);
            }
            let latest = history.record(Reading::take(&gw), &thresholds, tick * 1_000, 0.0);
            assert!(
                latest.window.requests <= 4,
                "tick {tick}: {:?}",
                latest.window
            );
        }
        assert_eq!(history.readings.len(), WINDOW_SECS + 1);
        assert_eq!(history.seconds.len(), SECOND_POINTS);
        assert_eq!(history.ten_seconds.len(), TEN_SECOND_POINTS);
        let newest = history.seconds.latest().expect("points");
        assert_eq!(newest.unix_ms, 3_699_000);
        let last_ten = history.ten_seconds.latest().map_or(0, |w| w.requests);
        assert!((3..=4).contains(&last_ten), "{last_ten}");
    }
}
