//! Server-sent events framing: cut an upstream byte stream at event boundaries.
//!
//! TCP delivers bytes, not events; an upstream chunk may end inside an event. The framer
//! hands out only whole events, so the gateway never forwards half an event and can always
//! end a stream cleanly with an error event. When a chunk holds whole events only (the usual
//! case), it is passed on as the same `Bytes` without copying.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use crate::limits::MAX_SSE_EVENT_BYTES;

/// Buffers the tail of an upstream stream until its event is complete.
#[derive(Debug, Default)]
pub struct SseFramer {
    partial: BytesMut,
}

/// An upstream sent more than `MAX_SSE_EVENT_BYTES` (4 MiB) without ending an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event exceeds {MAX_SSE_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseFramer {
    /// Adds an upstream chunk; returns the whole events it completes (ending in `\n\n`), if
    /// any. The unfinished tail is kept for the next chunk, up to `MAX_SSE_EVENT_BYTES`: an
    /// upstream that never ends an event cannot make the gateway buffer without bound.
    pub fn push(&mut self, chunk: Bytes) -> Result<Option<Bytes>, EventTooLarge> {
        let events = if self.partial.is_empty() {
            match end_of_last_event(&chunk) {
                Some(end) if end == chunk.len() => return Ok(Some(chunk)),
                Some(end) => {
                    self.partial.extend_from_slice(&chunk[end..]);
                    Some(chunk.slice(..end))
                }
                None => {
                    self.partial.extend_from_slice(&chunk);
                    None
                }
            }
        } else {
            // The boundary may straddle the old tail and the new chunk ("\n" | "\n").
            let from = self.partial.len() - 1;
            self.partial.extend_from_slice(&chunk);
            end_of_last_event(&self.partial[from..])
                .map(|end| self.partial.split_to(from + end).freeze())
        };
        if self.partial.len() > MAX_SSE_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }

    /// Bytes of an unfinished event are buffered. Blank lines left after the last event
    /// (`\n\n\n` split as `\n\n` | `\n`) end nothing and are not an unfinished event.
    pub fn has_partial(&self) -> bool {
        self.partial.iter().any(|b| !matches!(b, b'\n' | b'\r'))
    }
}

/// Index just past the last `\n\n` in `bytes`.
fn end_of_last_event(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(bytes, b"\n\n").map(|i| i + 2)
}

/// One parsed event: its `event:` name and its `data:` payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub name: Option<&'a str>,
    /// Data lines joined by `\n`; borrowed when there is one line (the usual case).
    pub data: Cow<'a, [u8]>,
}

/// Iterates the events of a block of whole events, skipping comments and empty events.
pub fn events(block: &[u8]) -> impl Iterator<Item = Event<'_>> {
    EventIter {
        lines: Lines { rest: Some(block) },
    }
}

/// The lines of a block, split at each `\n` (found with `memchr`: this runs over every byte
/// of every event a stream relays), the last one being what follows the last `\n`.
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                self.rest = Some(&rest[end + 1..]);
                Some(&rest[..end])
            }
            None => self.rest.take(),
        }
    }
}

struct EventIter<I> {
    lines: I,
}

impl<'a, I: Iterator<Item = &'a [u8]>> Iterator for EventIter<I> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let mut name = None;
        let mut data: Option<Cow<'a, [u8]>> = None;
        for line in self.lines.by_ref() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if let Some(data) = data.take() {
                    return Some(Event { name, data });
                }
                name = None;
                continue;
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match field {
                b"event" => name = std::str::from_utf8(value).ok(),
                b"data" => {
                    data = Some(match data {
                        None => Cow::Borrowed(value),
                        Some(previous) => {
                            let mut joined = previous.into_owned();
                            joined.push(b'\n');
                            joined.extend_from_slice(value);
                            Cow::Owned(joined)
                        }
                    });
                }
                _ => {} // comments (`: ping`), `id`, `retry`
            }
        }
        data.map(|data| Event { name, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_chunks_pass_without_copying() {
        let mut framer = SseFramer::default();
        let chunk = Bytes::from_static(b"data: 1\n\ndata: 2\n\n");
        let out = framer.push(chunk.clone()).unwrap().unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert!(!framer.has_partial());
    }

    #[test]
    fn split_events_are_joined_including_a_split_boundary() {
        let mut framer = SseFramer::default();
        let mut push = |bytes: &'static [u8]| framer.push(Bytes::from_static(bytes)).unwrap();
        assert_eq!(push(b"data: 1\n\ndata: ").unwrap(), "data: 1\n\n");
        assert!(push(b"2\n").is_none());
        assert_eq!(push(b"\ndata").unwrap(), "data: 2\n\n");
        assert!(framer.has_partial());
    }

    #[test]
    fn a_chunk_without_a_boundary_is_kept_for_the_next() {
        let mut framer = SseFramer::default();
        assert!(
            framer
                .push(Bytes::from_static(b"data: 1"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            framer.push(Bytes::from_static(b"\n\n")).unwrap().unwrap(),
            "data: 1\n\n"
        );
        assert!(!framer.has_partial());
    }

    #[test]
    fn an_endless_event_is_refused_at_the_ceiling() {
        let mut framer = SseFramer::default();
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        let pieces = MAX_SSE_EVENT_BYTES / piece.len();
        for _ in 0..pieces {
            assert_eq!(framer.push(piece.clone()), Ok(None));
        }
        assert_eq!(framer.push(piece), Err(EventTooLarge));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// However the bytes are split into chunks, the events that come out are the same.
        #[test]
        fn framing_does_not_depend_on_chunk_boundaries(
            events in proptest::collection::vec("[a-z\n]{0,12}", 0..8),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let stream: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            let bytes = stream.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut framer = SseFramer::default();
            let mut out = Vec::new();
            let mut from = 0;
            for to in cuts.into_iter().chain([bytes.len()]) {
                let chunk = Bytes::copy_from_slice(&bytes[from..to]);
                from = to;
                if let Some(block) = framer.push(chunk).unwrap() {
                    out.extend_from_slice(&block);
                }
            }
            out.extend_from_slice(&framer.partial);
            proptest::prop_assert_eq!(out, bytes);
            proptest::prop_assert!(!framer.has_partial());
        }
    }

    #[test]
    fn parses_names_data_and_skips_comments() {
        let block = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\ndata: y\n\n";
        let parsed: Vec<_> = events(block).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, Some("message_start"));
        assert_eq!(&*parsed[0].data, b"{\"a\":1}");
        assert_eq!(&*parsed[1].data, b"x\ny");
    }
}
