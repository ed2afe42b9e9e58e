//! Reads the gateway once per sample period: the RSS and CPU of its process and those under it
//! (the embedded stack's gateway, or `--gateway-pid`), and its Prometheus `/metrics` (queue
//! depth, breaker state, cache hit ratio, alive tasks, open connections).

use std::time::Duration;

use reports::model::{BreakerState, GatewaySample};
use scenarios::client::{Client, Scratch};

use crate::process::{Process, ProcessClock};

/// A scrape that takes longer is skipped: the sampler must not hold up the run's tick.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// Samples one gateway.
pub struct Sampler {
    /// The run's client (its TLS, headers and key): `/metrics` of its first target.
    client: Client,
    /// The connection scrapes are sent on, kept from one to the next.
    scratch: Scratch,
    process: Option<ProcessClock>,
    scrape: Scrape,
    /// The gateway's cache counters at the previous scrape: each sample's hit ratio is that of
    /// the lookups since, as the header ratio beside it is that of the second's answers.
    cache: Option<CacheCounters>,
}

/// Whether the gateway's `/metrics` is worth asking.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scrape {
    Untried,
    /// It answered once: a later failure (a slow answer under load) costs one sample only.
    /// `charted` once an answer had a series the report charts (another gateway's metrics
    /// may have none of them).
    Answering {
        charted: bool,
    },
    /// The first ask failed: an endpoint without `/metrics`, not asked again.
    Absent,
}

impl Sampler {
    /// A sampler for the first target of `client`, reading the RSS and CPU of `process` when
    /// known.
    pub fn new(client: Client, process: Option<Process>) -> Sampler {
        Sampler {
            client,
            scratch: Scratch::new(),
            process: process.map(ProcessClock::new),
            scrape: Scrape::Untried,
            cache: None,
        }
    }

    /// One sample, labelled with `second` of the run. Readings that fail are left empty.
    pub async fn sample(&mut self, second: u32) -> GatewaySample {
        let mut sample = GatewaySample {
            second,
            ..GatewaySample::default()
        };
        if let Some(clock) = &mut self.process {
            sample.rss_bytes = clock.rss();
            sample.cpu_percent = clock.cpu_percent();
        }
        if self.scrape != Scrape::Absent {
            match self.scrape_metrics().await {
                Some(text) => {
                    let read = apply_metrics(&text, &mut sample);
                    if let Some(now) = read.cache {
                        let before = self.cache.replace(now);
                        sample.cache_hit_ratio = before.and_then(|before| now.ratio_since(before));
                    }
                    let charted =
                        read.charted || self.scrape == Scrape::Answering { charted: true };
                    self.scrape = Scrape::Answering { charted };
                }
                None if self.scrape == Scrape::Untried => self.scrape = Scrape::Absent,
                None => {}
            }
        }
        sample
    }

    /// What the run's warnings should say about the target's metrics: nothing when its
    /// `/metrics` had series the report charts.
    pub fn metrics_warning(&self) -> Option<&'static str> {
        match self.scrape {
            Scrape::Absent => Some(
                "the target has no /metrics: its queue, breaker, cache and connection series \
                 were not sampled",
            ),
            Scrape::Answering { charted: false } => Some(
                "the target's /metrics has none of the series the report charts (queue depth, \
                 breaker state, cache hits and misses, alive tasks, open connections): those \
                 charts are empty",
            ),
            Scrape::Untried | Scrape::Answering { charted: true } => None,
        }
    }

    async fn scrape_metrics(&mut self) -> Option<String> {
        let body = self
            .client
            .fetch("/metrics", SCRAPE_TIMEOUT, &mut self.scratch)
            .await?;
        String::from_utf8(body.to_vec()).ok()
    }
}

/// What one scrape held beyond the gauges it wrote into the sample.
struct Scraped {
    /// It had a series the report charts.
    charted: bool,
    cache: Option<CacheCounters>,
}

/// The gateway's cache lookups so far, as its counters say.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CacheCounters {
    hits: f64,
    misses: f64,
}

impl CacheCounters {
    /// The hit ratio of the lookups since `before`; of all of them when a counter went back
    /// (the gateway restarted), and none without a lookup.
    fn ratio_since(self, before: CacheCounters) -> Option<f64> {
        let restarted = self.hits < before.hits || self.misses < before.misses;
        let (hits, misses) = if restarted {
            (self.hits, self.misses)
        } else {
            (self.hits - before.hits, self.misses - before.misses)
        };
        (hits + misses > 0.0).then(|| hits / (hits + misses))
    }
}

/// Reads the series the report charts from Prometheus text: the gauges into `sample`, the
/// cache counters into what it returns.
fn apply_metrics(text: &str, sample: &mut GatewaySample) -> Scraped {
    let mut queue: Option<f64> = None;
    let mut breaker: Option<f64> = None;
    let (mut hits, mut misses) = (None::<f64>, None::<f64>);
    for (name, labels, value) in series(text) {
        let add = |slot: &mut Option<f64>| *slot = Some(slot.unwrap_or(0.0) + value);
        match name {
            n if n.ends_with("queue_depth") => add(&mut queue),
            n if n.ends_with("breaker_state") => breaker = Some(breaker.unwrap_or(0.0).max(value)),
            n if n.ends_with("cache_hits_total") => add(&mut hits),
            n if n.ends_with("cache_misses_total") => add(&mut misses),
            // As the `x-cache` ratio beside it counts: a bypass is no lookup.
            n if n.ends_with("cache_lookups_total") => match labels_get(labels, "result") {
                Some("hit") => add(&mut hits),
                Some("miss" | "coalesced") => add(&mut misses),
                _ => {}
            },
            n if n.ends_with("runtime_alive_tasks") => sample.alive_tasks = Some(value as u64),
            n if n.ends_with("open_connections") => sample.open_connections = Some(value as u64),
            _ => {}
        }
    }
    sample.queue_depth = queue.map(|q| q.max(0.0) as u64);
    sample.breaker = breaker.map(|level| match level as u8 {
        0 => BreakerState::Closed,
        1 => BreakerState::HalfOpen,
        _ => BreakerState::Open,
    });
    let charted = [queue, breaker, hits, misses].iter().any(Option::is_some)
        || sample.alive_tasks.is_some()
        || sample.open_connections.is_some();
    // Both or nothing: a gateway that counts only its hits has no ratio to give.
    let cache = hits
        .zip(misses)
        .map(|(hits, misses)| CacheCounters { hits, misses });
    Scraped { charted, cache }
}

/// `(name, labels, value)` of every sample line.
fn series(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name, labels, value))
        })
}

fn labels_get<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_queue_breaker_cache_task_and_connection_series() {
        let text = "# HELP x\n# TYPE gateway_queue_depth gauge\ngateway_queue_depth 3\n\
            gateway_breaker_state{provider=\"primary\"} 2\ngateway_breaker_state{provider=\"fallback\"} 0\n\
            gateway_cache_lookups_total{result=\"hit\"} 30\ngateway_cache_lookups_total{result=\"miss\"} 60\n\
            gateway_cache_lookups_total{result=\"coalesced\"} 10\ngateway_cache_lookups_total{result=\"bypass\"} 500\n\
            gateway_runtime_alive_tasks 41\ngateway_open_connections 20\n";
        let mut sample = GatewaySample::default();
        let read = apply_metrics(text, &mut sample);
        assert!(read.charted);
        let counts = CacheCounters {
            hits: 30.0,
            misses: 70.0,
        };
        assert_eq!(read.cache, Some(counts));
        assert_eq!(sample.queue_depth, Some(3));
        assert_eq!(sample.breaker, Some(BreakerState::Open));
        assert_eq!(sample.alive_tasks, Some(41));
        assert_eq!(sample.open_connections, Some(20));
    }

    #[test]
    fn metrics_with_none_of_the_charted_series_say_so() {
        // LiteLLM's, for one: other names for what it measures, nothing to chart here.
        let text = "# TYPE litellm_in_flight_requests gauge\nlitellm_in_flight_requests 4\n\
            python_gc_objects_collected_total{generation=\"2\"} 81.0\n";
        let mut sample = GatewaySample::default();
        assert!(!apply_metrics(text, &mut sample).charted);
        assert_eq!(sample, GatewaySample::default());

        // One charted series is enough.
        assert!(apply_metrics("gateway_open_connections 2\n", &mut sample).charted);
    }

    #[test]
    fn the_cache_hit_ratio_is_that_of_the_lookups_since_the_previous_scrape() {
        let counts = |hits, misses| CacheCounters { hits, misses };
        // A gateway that served 900 hits before the run, then 10 hits and 30 misses.
        assert_eq!(
            counts(910.0, 130.0).ratio_since(counts(900.0, 100.0)),
            Some(0.25)
        );
        // No lookup since: no ratio, rather than the gateway's whole history.
        assert_eq!(counts(910.0, 130.0).ratio_since(counts(910.0, 130.0)), None);
        // Restarted in between: what it counted since.
        assert_eq!(
            counts(3.0, 1.0).ratio_since(counts(910.0, 130.0)),
            Some(0.75)
        );
        // Hits and misses counted apart; with one of them only there is no ratio.
        let both = "gateway_cache_hits_total 5\ngateway_cache_misses_total 15\n";
        let read = apply_metrics(both, &mut GatewaySample::default());
        assert_eq!(read.cache, Some(counts(5.0, 15.0)));
        let read = apply_metrics(
            "gateway_cache_hits_total 5\n",
            &mut GatewaySample::default(),
        );
        assert_eq!(read.cache, None);
    }
}
