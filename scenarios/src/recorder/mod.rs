//! The live metric recorder shared by every Goose user of a run.
//!
//! Requests are recorded by the second they finished in, into one of a few mutex-guarded shards
//! (picked by user index), so users seldom wait on each other. Once a second the harness calls
//! [`Recorder::close_ready`], which merges each finished second across the shards into one
//! [`Interval`] for [`reports::RunResult::push_interval`]. A request recorded after its second
//! was closed is not lost: it comes out with the next close as a second interval of the same
//! second, which `push_interval` merges.

mod accum;
mod sample;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reports::model::{GoodputLimits, INTERVAL, Interval, Metric, new_histogram};

use accum::{Accum, micros};
pub use sample::{CacheOutcome, Reply, Sample};

/// How long after a second ends it is closed: requests finishing at its very end are recorded
/// within microseconds, so this only covers threads that were descheduled mid-record.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// Sends later than this past their slot count as late: the arrival timer wakes a sender
/// within a fraction of a millisecond of its slot, so a millisecond means a busy generator.
pub const LATE_SEND: Duration = Duration::from_millis(1);

/// Collects every measurement of a run; see the module documentation.
pub struct Recorder {
    origin: Instant,
    limits: GoodputLimits,
    shards: Box<[Mutex<Shard>]>,
    active_users: AtomicU64,
}

/// Open seconds of one shard, oldest first (rarely more than two), and the shard's share of
/// the run-long cache latency split.
#[derive(Default)]
struct Shard {
    open: Vec<(u32, Accum)>,
    cache_latency: CacheLatency,
}

/// End-to-end latency of successful requests by cache outcome, over the whole run: what a
/// cache hit saves. Coalesced requests (which wait for a leader's answer) are in neither.
#[derive(Clone, Debug)]
pub struct CacheLatency {
    pub hit: Histogram<u64>,
    pub miss: Histogram<u64>,
}

impl Default for CacheLatency {
    fn default() -> CacheLatency {
        CacheLatency {
            hit: new_histogram(),
            miss: new_histogram(),
        }
    }
}

impl Shard {
    fn second(&mut self, second: u32) -> &mut Accum {
        let at = match self.open.iter().position(|(s, _)| *s == second) {
            Some(at) => at,
            None => {
                self.open.push((second, Accum::new()));
                self.open.len() - 1
            }
        };
        &mut self.open[at].1
    }
}

impl Recorder {
    /// A recorder whose second 0 starts now.
    pub fn new(limits: GoodputLimits) -> Recorder {
        let shards = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2;
        Recorder {
            origin: Instant::now(),
            limits,
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            active_users: AtomicU64::new(0),
        }
    }

    /// The instant second 0 starts at.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The goodput limits requests are judged by.
    pub fn limits(&self) -> &GoodputLimits {
        &self.limits
    }

    /// Records one finished request; `user` picks the shard.
    pub fn record(&self, user: usize, sample: &Sample<'_>) {
        let second = self.second_at(sample.reply.finished);
        let mut shard = self.shard(user);
        shard.second(second).record(sample, &self.limits);
        if let (Some(cache), Ok(())) = (sample.reply.cache, sample.reply.result) {
            let split = &mut shard.cache_latency;
            let histogram = match cache {
                CacheOutcome::Hit => Some(&mut split.hit),
                CacheOutcome::Miss => Some(&mut split.miss),
                CacheOutcome::Coalesced => None,
            };
            if let Some(histogram) = histogram {
                accum::record(histogram, micros(sample.latency()));
            }
        }
    }

    /// Latency by cache outcome over the run so far.
    pub fn cache_latency(&self) -> CacheLatency {
        let mut total = CacheLatency::default();
        for shard in &self.shards {
            let shard = lock(shard);
            // Auto-resizing histograms of equal precision always add.
            let _ = total.hit.add(&shard.cache_latency.hit);
            let _ = total.miss.add(&shard.cache_latency.miss);
        }
        total
    }

    /// Records how long opening a connection took (`connect`), finished at `at`.
    pub fn record_connect(&self, user: usize, at: Instant, took: Duration) {
        self.with_second(user, at, |accum| {
            accum.record_value(Metric::Connect, micros(took));
        });
    }

    /// Counts `count` open-model arrivals that found no free user, noticed at `at`.
    pub fn record_dropped(&self, user: usize, at: Instant, count: u64) {
        if count > 0 {
            self.with_second(user, at, |accum| accum.counters.dropped_arrivals += count);
        }
    }

    /// Records how late a send started after its slot; only lateness above [`LATE_SEND`]
    /// counts.
    pub fn record_send_lag(&self, user: usize, sent: Instant, lag: Duration) {
        if lag <= LATE_SEND {
            return;
        }
        let us = micros(lag);
        self.with_second(user, sent, |accum| {
            let lag = &mut accum.counters.send_lag;
            lag.late += 1;
            lag.total_us += us;
            lag.max_us = lag.max_us.max(us);
        });
    }

    /// A Goose user began running.
    pub fn user_started(&self) {
        self.active_users.fetch_add(1, Ordering::Relaxed);
    }

    /// A Goose user stopped.
    pub fn user_stopped(&self) {
        self.active_users.fetch_sub(1, Ordering::Relaxed);
    }

    /// Users running now.
    pub fn active_users(&self) -> u64 {
        self.active_users.load(Ordering::Relaxed)
    }

    /// Closes every second that ended at least `CLOSE_GRACE` before `now`, oldest first.
    pub fn close_ready(&self, now: Instant) -> Vec<Interval> {
        let settled = now.saturating_duration_since(self.origin + CLOSE_GRACE);
        self.close_before(self.second_at_offset(settled))
    }

    /// Closes every open second: the end of the run.
    pub fn close_all(&self) -> Vec<Interval> {
        self.close_before(u32::MAX)
    }

    fn close_before(&self, limit: u32) -> Vec<Interval> {
        let mut closing: Vec<(u32, Accum)> = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            let (done, open) = std::mem::take(&mut shard.open)
                .into_iter()
                .partition(|(second, _)| *second < limit);
            shard.open = open;
            drop(shard);
            for (second, accum) in done {
                match closing.iter_mut().find(|(s, _)| *s == second) {
                    Some((_, merged)) => merged.merge(&accum),
                    None => closing.push((second, accum)),
                }
            }
        }
        closing.sort_by_key(|(second, _)| *second);
        let users = self.active_users();
        closing
            .into_iter()
            .map(|(second, accum)| accum.into_interval(second, users))
            .collect()
    }

    fn with_second(&self, user: usize, at: Instant, f: impl FnOnce(&mut Accum)) {
        let second = self.second_at(at);
        f(self.shard(user).second(second));
    }

    fn shard(&self, user: usize) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[user % self.shards.len()])
    }

    fn second_at(&self, at: Instant) -> u32 {
        self.second_at_offset(at.saturating_duration_since(self.origin))
    }

    fn second_at_offset(&self, offset: Duration) -> u32 {
        u32::try_from(offset.as_secs() / INTERVAL.as_secs()).unwrap_or(u32::MAX - 1)
    }
}

/// Locks a shard, recovering from a panic in another user: counters stay usable.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use reports::model::{ErrorClass, Metric};

    use super::*;

    fn sample(
        recorder: &Recorder,
        finished_ms: u64,
        result: Result<(), ErrorClass>,
    ) -> Sample<'static> {
        let origin = recorder.origin();
        let finished = origin + Duration::from_millis(finished_ms);
        Sample {
            intended: None,
            reply: Reply {
                sent: finished - Duration::from_millis(20),
                first_content: Some(finished - Duration::from_millis(15)),
                finished,
                status: Some(if result.is_ok() { 200 } else { 503 }),
                result,
                input_tokens: 3,
                output_tokens: 6,
                tokens_counted: false,
                burst_gaps: 1,
                overhead_us: Some(40),
                cache: Some(CacheOutcome::Hit),
            },
            itl_us: &[1_000, 1_000, 1_000, 1_000, 1_000],
        }
    }

    #[test]
    fn seconds_close_in_order_and_merge_across_shards() {
        let recorder = Recorder::new(GoodputLimits::default());
        for user in 0..8 {
            recorder.record(user, &sample(&recorder, 100, Ok(())));
        }
        recorder.record(0, &sample(&recorder, 1_500, Err(ErrorClass::Http5xx)));
        recorder.record_dropped(1, recorder.origin() + Duration::from_millis(1_200), 1);
        recorder.record_send_lag(
            2,
            recorder.origin() + Duration::from_millis(1_300),
            Duration::from_millis(7),
        );
        recorder.record_send_lag(
            2,
            recorder.origin() + Duration::from_millis(1_300),
            Duration::from_micros(300),
        );

        let first = recorder.close_ready(recorder.origin() + Duration::from_millis(1_150));
        assert_eq!(first.len(), 1);
        let second0 = &first[0];
        assert_eq!(second0.second, 0);
        assert_eq!(second0.counters.requests, 8);
        assert_eq!(second0.counters.ok, 8);
        assert_eq!(second0.counters.good, 8);
        assert_eq!(second0.counters.cache.hit, 8);
        assert_eq!(second0.counters.output_tokens, 48);
        assert_eq!(second0.counters.itl_burst_gaps, 8);
        let latency = second0
            .histograms
            .summary(Metric::Latency)
            .expect("latency");
        assert_eq!(latency.count, 8);
        assert!((19_980..=20_020).contains(&latency.p50), "{latency:?}");
        let itl = second0.histograms.summary(Metric::Itl).expect("itl");
        assert_eq!(itl.count, 40);
        assert_eq!(
            second0
                .histograms
                .summary(Metric::Tpot)
                .map(|s| s.p50 / 100),
            Some(30)
        );

        // A late record for a closed second comes out on the next close.
        recorder.record(3, &sample(&recorder, 900, Ok(())));
        let rest = recorder.close_all();
        assert_eq!(rest.iter().map(|i| i.second).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(rest[0].counters.requests, 1);
        let second1 = &rest[1].counters;
        assert_eq!(second1.errors.http_5xx, 1);
        assert_eq!(rest[1].statuses.iter().collect::<Vec<_>>(), [(503, 1)]);
        assert!(rest[0].statuses.is_empty(), "2xx statuses are not counted");
        assert_eq!(second1.ok, 0);
        assert_eq!(second1.dropped_arrivals, 1);
        assert_eq!(second1.send_lag.late, 1);
        assert_eq!(second1.send_lag.max_us, 7_000);
        assert!(
            rest[1].histograms.get(Metric::Latency).is_none(),
            "failures have no latency"
        );
    }

    #[test]
    fn active_users_follow_starts_and_stops() {
        let recorder = Recorder::new(GoodputLimits::default());
        recorder.user_started();
        recorder.user_started();
        recorder.user_stopped();
        assert_eq!(recorder.active_users(), 1);
        recorder.record(0, &sample(&recorder, 10, Ok(())));
        assert_eq!(recorder.close_all()[0].active_users, 1);
        let split = recorder.cache_latency();
        assert_eq!((split.hit.len(), split.miss.len()), (1, 0));
    }

    #[test]
    fn connect_times_go_to_the_second_they_ended_in() {
        let recorder = Recorder::new(GoodputLimits::default());
        let at = recorder.origin() + Duration::from_millis(1_200);
        recorder.record_connect(0, at, Duration::from_micros(850));
        recorder.record_connect(5, at, Duration::from_micros(1_150));
        let closed = recorder.close_all();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].second, 1);
        assert_eq!(closed[0].counters.requests, 0, "a connect is not a request");
        let connect = closed[0]
            .histograms
            .summary(Metric::Connect)
            .expect("connect");
        assert_eq!(
            (connect.count, connect.min / 10, connect.max / 10),
            (2, 85, 115)
        );
    }
}
