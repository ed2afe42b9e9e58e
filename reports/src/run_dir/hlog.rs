//! `latency.hlog`: the HdrHistogram interval log of every metric, one tagged histogram per
//! metric per second, readable by HdrHistogram's own tools (HistogramLogProcessor,
//! HistogramLogAnalyzer) and by `hdrhistogram::serialization::interval_log`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::model::{INTERVAL, RunResult};

/// Values are microseconds (and thousandths of tokens/s); the divisor makes the log's max column
/// read in milliseconds (and tokens/s).
pub const MAX_VALUE_DIVISOR: f64 = 1_000.0;

/// Writes the interval log. Each histogram is tagged with its metric name (`latency`, `ttft`, …).
pub fn write_hlog(out: &mut impl Write, run: &RunResult) -> std::io::Result<()> {
    let start = SystemTime::from(run.started_at);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("[Histogram log format version 1.3]")
        .add_comment(&format!(
            "gatebench {} scenario {}",
            run.environment.tool_version, run.scenario
        ))
        .add_comment("values in microseconds; output_tokens_per_s in 1/1000 tokens/s")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(out, &mut serializer)?;
    for interval in &run.intervals {
        let offset = Duration::from_secs(u64::from(interval.second));
        for metric in interval.histograms.metrics() {
            let Some(histogram) = interval.histograms.get(metric) else {
                continue;
            };
            log.write_histogram(&histogram, offset, INTERVAL, Tag::new(metric.name()))
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
    }
    Ok(())
}
