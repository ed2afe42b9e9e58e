//! How the load generator itself fared, second by second: whether a second's figures describe
//! the target or the client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A probe timer later than this means ready tasks of the generator (sends, SSE reads, the
/// recorder) waited this long for a thread: the times it took in that second include that
/// wait, and describe the client. Chosen from measurements on a 2-core machine: an unloaded
/// generator's probe is at most a few milliseconds late, a saturated one tens to hundreds
/// (docs/design.md, "Generator saturation").
pub const SATURATED_LAG: Duration = Duration::from_millis(20);

/// Steal (see [`GeneratorSample::steal_percent`]) from which a report names the machine's
/// hypervisor: an idle guest on a shared host loses a few percent, a busy host takes tens.
pub const STEAL_NOTED: f64 = 5.0;

/// Readings of steal (rounds, runs) of which some reached [`STEAL_NOTED`]: how many did, of
/// how many read, and the most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NotedSteal {
    pub noted: usize,
    pub read: usize,
    pub most: f64,
}

impl NotedSteal {
    /// `None` unless some reading reached [`STEAL_NOTED`].
    pub fn of(readings: impl IntoIterator<Item = f64>) -> Option<NotedSteal> {
        let mut tally = NotedSteal {
            noted: 0,
            read: 0,
            most: 0.0,
        };
        for steal in readings {
            tally.read += 1;
            tally.noted += usize::from(steal >= STEAL_NOTED);
            tally.most = tally.most.max(steal);
        }
        (tally.noted > 0).then_some(tally)
    }
}

/// One second of the generator's own health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSample {
    /// Seconds since the run started.
    pub second: u32,
    /// The largest lateness of the generator's probe timer in this second, in microseconds:
    /// how long a ready task waited for a runtime thread at worst.
    pub lag_max_us: u64,
    /// CPU of the generator's process over the second; 100 is one core.
    pub cpu_percent: Option<f64>,
    /// The share of the machine's CPU time over the second that its hypervisor gave to other
    /// guests (`steal` in Linux's `/proc/stat`); 100 is all of it. A stolen CPU stalls every
    /// process on the machine, the target's too: a probe late while its generator works little
    /// and this is high was held back by the machine, not by the generator's own load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_percent: Option<f64>,
    /// The lag passed [`SATURATED_LAG`]: this second's figures describe the client.
    pub saturated: bool,
}

impl GeneratorSample {
    /// A sample whose saturation is judged from its lag.
    pub fn new(
        second: u32,
        lag_max_us: u64,
        cpu_percent: Option<f64>,
        steal_percent: Option<f64>,
    ) -> GeneratorSample {
        GeneratorSample {
            second,
            lag_max_us,
            cpu_percent,
            steal_percent,
            saturated: Duration::from_micros(lag_max_us) > SATURATED_LAG,
        }
    }
}
