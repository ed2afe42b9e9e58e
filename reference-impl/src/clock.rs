//! Measures gateway overhead: wall time of a request minus the time spent waiting on upstreams.

use std::future::Future;
use std::time::{Duration, Instant};

/// Started when a request arrives; every await on an upstream goes through [`Clock::upstream`]
/// and every wait for a queue slot through [`Clock::queued`], so [`Clock::overhead`] is the
/// time the gateway itself spent (parsing, routing, translating, scheduling). That is the
/// figure in `x-gateway-overhead-us`; queue waits are policy, measured on their own.
#[derive(Debug)]
pub struct Clock {
    started: Instant,
    upstream: Duration,
    queued: Duration,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            upstream: Duration::ZERO,
            queued: Duration::ZERO,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Awaits `future` (upstream I/O, or a pause an upstream asked for) off the overhead clock.
    pub async fn upstream<F: Future>(&mut self, future: F) -> F::Output {
        let began = Instant::now();
        let output = future.await;
        self.upstream += began.elapsed();
        output
    }

    /// Awaits `future` (a wait for a concurrency slot) off the overhead clock.
    pub async fn queued<F: Future>(&mut self, future: F) -> F::Output {
        let began = Instant::now();
        let output = future.await;
        self.queued += began.elapsed();
        output
    }

    /// Time since arrival not spent waiting on upstreams or in a queue.
    pub fn overhead(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(self.upstream + self.queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upstream_waits_do_not_count_as_overhead() {
        let mut clock = Clock::start();
        let pause = Duration::from_millis(20);
        clock.upstream(tokio::time::sleep(pause)).await;
        // Holds whatever the machine's speed: the sleep lasted at least `pause`.
        assert!(clock.overhead() + pause <= clock.started().elapsed());
    }
}
