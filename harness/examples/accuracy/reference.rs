//! The reference client: the fewest moving parts that can time a stream, so whatever the
//! harness reports beyond it is the harness's own cost.
//!
//! It shares no code with the harness's client (`scenarios::client`): a tokio `TcpStream` per
//! stream, one fixed HTTP/1.1 request written as bytes, chunked transfer decoding and SSE `data:`
//! lines parsed here, in place (a line is copied only when it spans two reads). Each event is
//! timed by the read that brought its last byte, taken as soon as the read returns; events that
//! came in one read share that time (the same definition as docs/design.md gives for ITL). Each
//! of the `streams` tasks is a closed loop on one keep-alive connection, keeping its times in
//! plain vectors (no lock, no shared state); they are put into histograms only when the run is
//! over.
//!
//! It watches itself as the harness does: a probe sleeps 10 ms at a time and records how late
//! it woke; a second whose worst lateness passes 20 ms is saturated.
//!
//! The target is assumed to be an OpenAI-style chat completions endpoint that answers a stream
//! with `transfer-encoding: chunked` and one `data:` line per event (the native mock and the
//! reference gateway do); a content event is one whose `content` string is not empty.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use memchr::memmem;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A probe later than this in a second marks the second saturated (as the harness's does).
const SATURATED_LAG: Duration = Duration::from_millis(20);

/// The probe's sleep.
const PROBE: Duration = Duration::from_millis(10);

/// How long in-flight streams may run past the planned end before they are abandoned.
const DRAIN: Duration = Duration::from_secs(30);

/// What the reference client is told to do.
pub struct Plan {
    pub addr: SocketAddr,
    pub streams: usize,
    pub duration: Duration,
    /// `max_tokens` of every request.
    pub tokens: u32,
    /// Requests that end this soon after the start are run but left out of the percentiles.
    pub warmup: Duration,
}

/// The one JSON line a reference run prints.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Report {
    pub requests: u64,
    pub failed: u64,
    /// Complete requests that ended in the warm-up: not in the percentiles.
    pub warm_up: u64,
    /// Content events of every complete request, the warm-up's included.
    pub events: u64,
    pub ttft_us: Percentiles,
    pub itl_us: Percentiles,
    /// Gaps of 0 us: events that came in one read.
    pub burst_gaps: u64,
    /// The probe's worst lateness, and the seconds in which it passed [`SATURATED_LAG`].
    pub lag_max_us: u64,
    pub saturated_seconds: u64,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(values: &[u32]) -> Percentiles {
        // Every u32 fits: these bounds and 3 significant digits are valid.
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, u64::from(u32::MAX), 3).expect("valid bounds");
        for value in values {
            histogram.saturating_record(u64::from(*value));
        }
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            max: histogram.max(),
        }
    }
}

/// What one stream task saw, over all its requests.
#[derive(Default)]
struct Tally {
    requests: u64,
    failed: u64,
    warm_up: u64,
    events: u64,
    ttft_us: Vec<u32>,
    itl_us: Vec<u32>,
    burst_gaps: u64,
}

/// Runs `plan` and reports on it.
pub async fn run(plan: Plan) -> Report {
    let request: Arc<[u8]> = request(plan.addr, plan.tokens).into();
    let started = Instant::now();
    let end = started + plan.duration;
    let counted_from = started + plan.warmup;
    let probe = tokio::spawn(probe(end));
    let tasks: Vec<_> = (0..plan.streams)
        .map(|_| {
            let request = Arc::clone(&request);
            tokio::spawn(stream_loop(plan.addr, request, counted_from, end))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        // A task that panicked has nothing to add; its streams are missing from the count.
        if let Ok(tally) = task.await {
            total.requests += tally.requests;
            total.failed += tally.failed;
            total.warm_up += tally.warm_up;
            total.events += tally.events;
            total.ttft_us.extend(tally.ttft_us);
            total.itl_us.extend(tally.itl_us);
            total.burst_gaps += tally.burst_gaps;
        }
    }
    let lags = probe.await.unwrap_or_default();
    Report {
        requests: total.requests,
        failed: total.failed,
        warm_up: total.warm_up,
        events: total.events,
        ttft_us: Percentiles::of(&total.ttft_us),
        itl_us: Percentiles::of(&total.itl_us),
        burst_gaps: total.burst_gaps,
        lag_max_us: lags.iter().copied().max().unwrap_or(0),
        saturated_seconds: lags
            .iter()
            .filter(|lag| **lag > micros(SATURATED_LAG))
            .count() as u64,
    }
}

/// The worst lateness of the probe in each second until `end`, in microseconds.
async fn probe(end: Instant) -> Vec<u64> {
    let start = Instant::now();
    let mut worst = Vec::new();
    while Instant::now() < end {
        let due = Instant::now() + PROBE;
        tokio::time::sleep_until(due.into()).await;
        let woke = Instant::now();
        let second = (woke - start).as_secs() as usize;
        if worst.len() <= second {
            worst.resize(second + 1, 0);
        }
        worst[second] = worst[second].max(micros(woke - due));
    }
    worst
}

/// One closed loop: a request, read to its end, then the next, until `end`; requests that end
/// before `counted_from` are counted but not timed.
async fn stream_loop(
    addr: SocketAddr,
    request: Arc<[u8]>,
    counted_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<TcpStream> = None;
    let mut buffer = vec![0u8; 16 * 1024];
    while Instant::now() < end {
        // The clock starts before a connection is opened, as a pooled client's does when it
        // has no idle connection.
        let sent = Instant::now();
        let exchange = async {
            let mut socket = match connection.take() {
                Some(socket) => socket,
                None => {
                    let socket = TcpStream::connect(addr).await.ok()?;
                    socket.set_nodelay(true).ok()?;
                    socket
                }
            };
            socket.write_all(&request).await.ok()?;
            let times = read_response(&mut socket, &mut buffer).await?;
            Some((socket, times))
        };
        tally.requests += 1;
        match tokio::time::timeout_at((end + DRAIN).into(), exchange).await {
            Ok(Some((socket, times))) if !times.is_empty() => {
                connection = Some(socket);
                tally.events += times.len() as u64;
                if Instant::now() < counted_from {
                    tally.warm_up += 1;
                    continue;
                }
                tally.ttft_us.push(micros32(times[0] - sent));
                for pair in times.windows(2) {
                    let gap = micros32(pair[1] - pair[0]);
                    tally.burst_gaps += u64::from(gap == 0);
                    tally.itl_us.push(gap);
                }
            }
            _ => tally.failed += 1,
        }
    }
    tally
}

/// Reads one response to its last chunk and returns when each content event arrived; `None`
/// when it is not a complete `200` chunked stream.
async fn read_response(
    socket: &mut (impl AsyncRead + Unpin),
    buffer: &mut [u8],
) -> Option<Vec<Instant>> {
    // Only a head split over reads is gathered here; one that came whole is read in place.
    let mut head = Vec::new();
    let mut body = Body::default();
    let mut times = Vec::new();
    loop {
        let n = socket.read(buffer).await.ok()?;
        let at = Instant::now();
        if n == 0 {
            return None;
        }
        let mut bytes = &buffer[..n];
        if !body.started {
            let (whole, before) = if head.is_empty() {
                (bytes, 0)
            } else {
                head.extend_from_slice(bytes);
                (&head[..], head.len() - n)
            };
            // The end of the head may straddle the two reads: look from three bytes back.
            let from = before.saturating_sub(3);
            let Some(end) = memmem::find(&whole[from..], b"\r\n\r\n") else {
                if head.is_empty() {
                    head.extend_from_slice(bytes);
                }
                continue;
            };
            let end = from + end + 4;
            if !head_is_a_chunked_200(&whole[..end]) {
                return None;
            }
            body.started = true;
            bytes = &buffer[end - before..n];
        }
        let done = body.feed(bytes, &mut |event| {
            if is_content(event) {
                times.push(at);
            }
        })?;
        if done {
            return Some(times);
        }
    }
}

/// Whether a response head says `200` and a chunked body.
fn head_is_a_chunked_200(head: &[u8]) -> bool {
    const NAME: &[u8] = b"transfer-encoding:";
    head.starts_with(b"HTTP/1.1 200 ")
        && head.split(|b| *b == b'\n').any(|line| {
            line.get(..NAME.len())
                .is_some_and(|name| name.eq_ignore_ascii_case(NAME))
                && line[NAME.len()..]
                    .windows(b"chunked".len())
                    .any(|w| w.eq_ignore_ascii_case(b"chunked"))
        })
}

/// Whether an OpenAI chunk's payload carries text: a `"content":"` not followed by its closing
/// quote.
fn is_content(payload: &[u8]) -> bool {
    static KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"content\":\""));
    KEY.find(payload).is_some_and(|at| {
        payload
            .get(at + KEY.needle().len())
            .is_some_and(|b| *b != b'"')
    })
}

/// Chunked transfer decoding, then SSE lines.
#[derive(Default)]
struct Body {
    started: bool,
    chunk: Chunk,
    /// The SSE line being assembled.
    line: Vec<u8>,
}

/// Where the chunked decoder is.
#[derive(Default)]
enum Chunk {
    /// At the start of a size line.
    #[default]
    Size,
    /// In a size line: the size so far; `true` once past the hex digits (an extension).
    SizeDigits(usize, bool),
    /// Inside a chunk's data, this many bytes left.
    Data(usize),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last (empty) chunk: trailer lines; `true` when the current line is empty.
    Trailer(bool),
}

impl Body {
    /// Decodes `bytes`, calling `event` with the payload of every complete `data:` line; `true`
    /// once the last chunk has ended, `None` on bytes that are not chunked encoding.
    fn feed(&mut self, mut bytes: &[u8], event: &mut impl FnMut(&[u8])) -> Option<bool> {
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.chunk {
                Chunk::Size => {
                    self.chunk = Chunk::SizeDigits(hex(byte)?, false);
                    bytes = rest;
                }
                Chunk::SizeDigits(size, extension) => {
                    bytes = rest;
                    self.chunk = match (byte, hex(byte)) {
                        (b'\n', _) if size == 0 => Chunk::Trailer(true),
                        (b'\n', _) => Chunk::Data(size),
                        (_, Some(digit)) if !extension => {
                            Chunk::SizeDigits(size.checked_mul(16)? + digit, false)
                        }
                        _ => Chunk::SizeDigits(size, true),
                    };
                }
                Chunk::Data(left) => {
                    let take = left.min(bytes.len());
                    self.lines(&bytes[..take], event);
                    bytes = &bytes[take..];
                    self.chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    bytes = rest;
                    if byte == b'\n' {
                        self.chunk = Chunk::Size;
                    }
                }
                Chunk::Trailer(empty) => {
                    bytes = rest;
                    match byte {
                        b'\n' if empty => return Some(true),
                        b'\n' => self.chunk = Chunk::Trailer(true),
                        b'\r' => {}
                        _ => self.chunk = Chunk::Trailer(false),
                    }
                }
            }
        }
        Some(false)
    }

    /// Splits chunk data into lines and passes on the payload of each `data:` line; only a
    /// line split over reads is copied.
    fn lines(&mut self, mut data: &[u8], event: &mut impl FnMut(&[u8])) {
        while let Some(end) = memchr::memchr(b'\n', data) {
            let line = if self.line.is_empty() {
                &data[..end]
            } else {
                self.line.extend_from_slice(&data[..end]);
                &self.line[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(payload) = line.strip_prefix(b"data:") {
                event(payload.strip_prefix(b" ").unwrap_or(payload));
            }
            self.line.clear();
            data = &data[end + 1..];
        }
        self.line.extend_from_slice(data);
    }
}

fn hex(byte: u8) -> Option<usize> {
    (byte as char).to_digit(16).map(|d| d as usize)
}

/// The streamed chat request every stream sends, whole.
fn request(addr: SocketAddr, tokens: u32) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Tell me a long story about a lighthouse keeper."}}],"max_tokens":{tokens},"stream":true,"stream_options":{{"include_usage":true}}}}"#
    );
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn micros32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `events` as SSE, each event one chunk, then the last chunk.
    fn chunked(events: &[&str]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let sse = format!("data: {event}\n\n");
            // An extension on one size line, which a decoder must skip.
            let extension = if i == 1 { ";x=1" } else { "" };
            wire.extend(format!("{:x}{extension}\r\n{sse}\r\n", sse.len()).bytes());
        }
        wire.extend(b"0\r\n\r\n");
        wire
    }

    #[test]
    fn chunked_sse_is_decoded_across_any_split() {
        let wire = chunked(&[
            r#"{"delta":{"role":"assistant","content":""}}"#,
            r#"{"delta":{"content":"a"}}"#,
            r#"{"delta":{"content":"b"}}"#,
            r#"{"choices":[],"usage":{"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        for split in 1..wire.len() {
            let mut body = Body::default();
            let mut contents = 0;
            let mut count = |e: &[u8]| contents += usize::from(is_content(e));
            assert_eq!(body.feed(&wire[..split], &mut count), Some(false));
            assert_eq!(body.feed(&wire[split..], &mut count), Some(true));
            assert_eq!(contents, 2, "split at {split}");
        }
        assert_eq!(Body::default().feed(b"zz\r\n", &mut |_| {}), None);
    }

    /// A socket whose every read returns the next of `reads`, then end of stream.
    struct Reads(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Reads {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(read) = self.0.pop_front() {
                buf.put_slice(&read);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_head_is_found_wherever_the_reads_split_it() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                    Transfer-Encoding: Chunked\r\n\r\n";
        let mut wire = head.as_bytes().to_vec();
        wire.extend(chunked(&[
            r#"{"delta":{"content":"a"}}"#,
            r#"{"delta":{"content":"b"}}"#,
        ]));
        let mut buffer = vec![0u8; 1024];
        for first in 1..head.len() + 8 {
            for second in [1, 2, 3, 4, 5, wire.len()] {
                let (a, rest) = wire.split_at(first);
                let (b, c) = rest.split_at(second.min(rest.len()));
                let mut socket = Reads([a, b, c].map(<[u8]>::to_vec).into());
                let times = read_response(&mut socket, &mut buffer).await;
                assert_eq!(
                    times.map(|t| t.len()),
                    Some(2),
                    "reads of {first}, {second}"
                );
            }
        }
        let refused = head.replace("200 OK", "503 Service Unavailable");
        let mut socket = Reads([refused.into_bytes(), wire[head.len()..].to_vec()].into());
        assert_eq!(read_response(&mut socket, &mut buffer).await, None);
        let unchunked = head.replace("Transfer-Encoding: Chunked", "content-length: 9");
        let mut socket = Reads([unchunked.into_bytes()].into());
        assert_eq!(read_response(&mut socket, &mut buffer).await, None);
    }
}
