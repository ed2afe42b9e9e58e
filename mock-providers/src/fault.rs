//! Faults a mock can inject, chosen per request by header or drawn from the profile.

use std::fmt;
use std::str::FromStr;

/// One injected failure. The wire form is the value of the `x-mock-fault` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and the provider's error body (`429`, `500`, `503`, `529`).
    Status(u16),
    /// Accept the request and never answer (until the server shuts down).
    Timeout,
    /// Stream this many content tokens, then drop the connection without ending the stream.
    DisconnectAfter(usize),
    /// Stream this many content tokens, then send the provider's in-stream error event and end.
    ErrorAfter(usize),
    /// Send a chunk (or, for non-streaming requests, a body) that is not valid JSON.
    Malformed,
}

/// The `x-mock-fault` header had a value this mock does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid x-mock-fault {0:?}: expected 429, 500, 503, 529, timeout, disconnect-after:N, error-after:N (N at most 100000) or malformed"
)]
pub struct InvalidFault(pub String);

impl FromStr for Fault {
    type Err = InvalidFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidFault(s.to_owned());
        // Bounded like `x-mock-tokens`: a stream never has more tokens than that anyway.
        let count = |n: &str| crate::limits::parse_tokens(n).map_err(|_| invalid());
        match s {
            "429" | "500" | "503" | "529" => Ok(Self::Status(s.parse().map_err(|_| invalid())?)),
            "timeout" => Ok(Self::Timeout),
            "malformed" => Ok(Self::Malformed),
            _ => match s.split_once(':') {
                Some(("disconnect-after", n)) => Ok(Self::DisconnectAfter(count(n)?)),
                Some(("error-after", n)) => Ok(Self::ErrorAfter(count(n)?)),
                _ => Err(invalid()),
            },
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "{code}"),
            Self::Timeout => f.write_str("timeout"),
            Self::DisconnectAfter(n) => write!(f, "disconnect-after:{n}"),
            Self::ErrorAfter(n) => write!(f, "error-after:{n}"),
            Self::Malformed => f.write_str("malformed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_trip() {
        for s in [
            "429",
            "500",
            "503",
            "529",
            "timeout",
            "disconnect-after:3",
            "error-after:0",
            "malformed",
        ] {
            assert_eq!(s.parse::<Fault>().expect(s).to_string(), s);
        }
    }

    #[test]
    fn unknown_values_are_rejected() {
        for s in [
            "404",
            "",
            "disconnect-after:x",
            "error-after",
            "slow",
            "disconnect-after:1000000000000",
            "error-after:-1",
        ] {
            assert_eq!(s.parse::<Fault>(), Err(InvalidFault(s.to_owned())));
        }
    }
}
