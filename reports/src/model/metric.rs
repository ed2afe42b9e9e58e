//! The histogram metrics of the glossary and the unit each one is recorded in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A per-request measurement recorded into an HdrHistogram (see the metric glossary in docs/design.md).
///
/// Every metric is recorded as a `u64` in the unit given by [`Metric::unit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Intended start (open model) or send (closed model) to the last byte of the body.
    Latency,
    /// Intended start (open model) or send (closed model) to the first SSE event carrying
    /// content: like latency, it includes any wait for a free user in the open model.
    Ttft,
    /// Send to the first SSE event carrying content, recorded in the open model only: the
    /// target's time to first token without the generator's wait.
    TtftFromSend,
    /// Gap between consecutive content events of one stream; every gap is recorded.
    Itl,
    /// `(e2e - ttft) / (output_tokens - 1)`, one value per request with at least two tokens.
    Tpot,
    /// `output_tokens / e2e` of one request.
    OutputTokensPerS,
    /// Time the gateway spent outside upstream I/O (`x-gateway-overhead-us`).
    Overhead,
    /// Start of the TCP connect to the WebSocket upgrade's `101`, one value per connection
    /// opened (the websocket scenario).
    Connect,
}

/// The unit a [`Metric`] is recorded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Time in microseconds.
    Micros,
    /// Thousandths of a token per second, so that integer buckets keep three significant digits
    /// for rates in the tens of tokens per second.
    MilliTokensPerS,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 8] = [
        Metric::Latency,
        Metric::Ttft,
        Metric::TtftFromSend,
        Metric::Itl,
        Metric::Tpot,
        Metric::OutputTokensPerS,
        Metric::Overhead,
        Metric::Connect,
    ];

    /// The glossary name, as used in SLO files, CSV columns and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Ttft => "ttft",
            Metric::TtftFromSend => "ttft_from_send",
            Metric::Itl => "itl",
            Metric::Tpot => "tpot",
            Metric::OutputTokensPerS => "output_tokens_per_s",
            Metric::Overhead => "overhead",
            Metric::Connect => "connect",
        }
    }

    /// Looks a metric up by its glossary name; `e2e` is accepted for `latency`.
    pub fn from_name(name: &str) -> Option<Metric> {
        match name {
            "e2e" => Some(Metric::Latency),
            _ => Metric::ALL.into_iter().find(|m| m.name() == name),
        }
    }

    /// A human label for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Latency => "e2e latency",
            Metric::Ttft => "TTFT",
            Metric::TtftFromSend => "TTFT from send",
            Metric::Itl => "ITL",
            Metric::Tpot => "TPOT",
            Metric::OutputTokensPerS => "output tokens/s",
            Metric::Overhead => "gateway overhead",
            Metric::Connect => "connect time",
        }
    }

    /// The unit recorded values are in.
    pub fn unit(self) -> Unit {
        match self {
            Metric::OutputTokensPerS => Unit::MilliTokensPerS,
            _ => Unit::Micros,
        }
    }
}

impl Unit {
    /// Converts a recorded value to the display unit ([`Unit::display_name`]).
    pub fn to_display(self, recorded: f64) -> f64 {
        match self {
            Unit::Micros => recorded / 1_000.0,
            Unit::MilliTokensPerS => recorded / 1_000.0,
        }
    }

    /// The display unit: milliseconds for times, tokens per second for rates.
    pub fn display_name(self) -> &'static str {
        match self {
            Unit::Micros => "ms",
            Unit::MilliTokensPerS => "tokens/s",
        }
    }

    /// Formats a recorded value in the display unit with three significant digits.
    pub fn format(self, recorded: f64) -> String {
        format!(
            "{} {}",
            significant(self.to_display(recorded)),
            self.display_name()
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats a number with three significant digits and no exponent (`0.0123`, `12.3`, `12300`).
pub fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    // Rounding can carry into the next power of ten (9.9996 -> 10.00): one decimal fewer then.
    let rounds_up = format!("{:.*}", (2 - magnitude).clamp(0, 6) as usize, value.abs())
        .parse::<f64>()
        .is_ok_and(|rounded| rounded >= 10f64.powi(magnitude + 1));
    let decimals = (2 - magnitude - i32::from(rounds_up)).clamp(0, 6) as usize;
    format!("{value:.decimals$}")
}

/// Three significant digits without trailing zeros: `250`, `96.1`, `1`.
pub fn short(value: f64) -> String {
    let text = significant(value);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits() {
        assert_eq!(significant(0.012345), "0.0123");
        assert_eq!(significant(12.345), "12.3");
        assert_eq!(significant(12345.0), "12345");
        assert_eq!(significant(9.9996), "10.0");
        assert_eq!(significant(-0.99996), "-1.00");
        assert_eq!(significant(0.0), "0");
        assert_eq!(short(1.5), "1.5");
        assert_eq!(short(250.0), "250");
        assert_eq!(short(5.0), "5");
    }
}
