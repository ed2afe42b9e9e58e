//! One second of measurements, as one shard collects it.

use std::time::Duration;

use hdrhistogram::Histogram;
use reports::model::{
    Counters, GoodputLimits, Histograms, Interval, Metric, StatusCounts, new_histogram,
};

use super::sample::{CacheOutcome, Sample};

/// Histograms (decoded, so recording is a counter increment) and counters of one second.
pub(super) struct Accum {
    histograms: [Histogram<u64>; Metric::ALL.len()],
    pub(super) counters: Counters,
    statuses: StatusCounts,
}

impl Accum {
    pub(super) fn new() -> Accum {
        Accum {
            histograms: std::array::from_fn(|_| new_histogram()),
            counters: Counters::default(),
            statuses: StatusCounts::default(),
        }
    }

    fn histogram(&mut self, metric: Metric) -> &mut Histogram<u64> {
        // `Metric::ALL` lists the variants in declaration order.
        &mut self.histograms[metric as usize]
    }

    pub(super) fn record_value(&mut self, metric: Metric, value: u64) {
        record(self.histogram(metric), value);
    }

    pub(super) fn record(&mut self, sample: &Sample<'_>, limits: &GoodputLimits) {
        let counters = &mut self.counters;
        counters.requests += 1;
        match sample.reply.result {
            Ok(()) => counters.ok += 1,
            Err(class) => counters.errors.record(class),
        }
        if sample.is_good(limits) {
            counters.good += 1;
        }
        counters.input_tokens += sample.reply.input_tokens;
        counters.output_tokens += sample.reply.output_tokens;
        counters.tokens_counted += u64::from(sample.reply.tokens_counted);
        counters.itl_burst_gaps += sample.reply.burst_gaps;
        match sample.reply.cache {
            Some(CacheOutcome::Hit) => counters.cache.hit += 1,
            Some(CacheOutcome::Miss) => counters.cache.miss += 1,
            Some(CacheOutcome::Coalesced) => counters.cache.coalesced += 1,
            None => {}
        }
        if let Some(status) = sample.reply.status.filter(|s| !(200..300).contains(s)) {
            self.statuses.record(status);
        }
        if sample.reply.result.is_err() {
            // Failed requests count in the error rate, not in the latency distributions.
            return;
        }
        self.record_value(Metric::Latency, micros(sample.latency()));
        if let Some(ttft) = sample.ttft() {
            self.record_value(Metric::Ttft, micros(ttft));
        }
        if let Some(ttft) = sample.ttft_from_send() {
            self.record_value(Metric::TtftFromSend, micros(ttft));
        }
        if let Some(tpot) = sample.tpot() {
            self.record_value(Metric::Tpot, micros(tpot));
        }
        if let Some(rate) = sample.milli_tokens_per_s() {
            self.record_value(Metric::OutputTokensPerS, rate);
        }
        if let Some(overhead) = sample.reply.overhead_us {
            self.record_value(Metric::Overhead, overhead);
        }
        let itl = self.histogram(Metric::Itl);
        for gap in sample.itl_us {
            record(itl, u64::from(*gap));
        }
    }

    pub(super) fn merge(&mut self, other: &Accum) {
        self.counters.merge(&other.counters);
        self.statuses.merge(&other.statuses);
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            if !theirs.is_empty() {
                // Auto-resizing histograms of equal precision always add.
                let _ = mine.add(theirs);
            }
        }
    }

    /// The report form of this second: histograms encoded, empty ones left out.
    pub(super) fn into_interval(self, second: u32, active_users: u64) -> Interval {
        let mut histograms = Histograms::new();
        for (metric, histogram) in Metric::ALL.into_iter().zip(&self.histograms) {
            histograms.insert(metric, histogram);
        }
        Interval {
            second,
            active_users,
            counters: self.counters,
            statuses: self.statuses,
            histograms,
        }
    }
}

/// Records into an auto-resizing histogram, which grows to fit; only a value beyond what any
/// histogram can hold is clamped instead.
pub(super) fn record(histogram: &mut Histogram<u64>, value: u64) {
    if histogram.record(value).is_err() {
        histogram.saturating_record(value);
    }
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
