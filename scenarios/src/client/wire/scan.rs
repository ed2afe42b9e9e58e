//! One pass over a `chat.completion.chunk` of the usual shape, ahead of serde_json.
//!
//! At 1,000 concurrent streams and a 10 ms ITL the harness reads 100,000 events a second on the
//! machine that runs the target, and reading each chunk's JSON was the largest single share of
//! its own work per event: serde_json parses and matches every key it then ignores, and scans
//! every string on its own. This reader walks the bytes once, checks the JSON grammar as it
//! goes, and keeps only what [`Chunk`] holds; `benches/gungraun_client.rs` counts the whole
//! per-event path 16% shorter with it.
//!
//! Within one stream, chunks nearly always differ only in their text: the same id, creation
//! time, model and fingerprint around a different `delta.content`. So the last chunk read whole
//! whose only text is one string without escapes is kept as a [`Shape`], and a chunk that is that
//! one with another such string in place of its text is read by comparing the bytes around it,
//! which costs a fraction of a pass over them. That is exact, not a guess: the pass is a function
//! of the bytes it reads, the bytes before the text are the same, so it stands in the same place
//! of the same object when the text starts; a string without escapes is read the same whatever
//! it holds; and the bytes after it are the same again.
//!
//! It declines (`None`) whatever it is not sure to read exactly as serde_json reads it into
//! [`Chunk`]: a backslash anywhere, a field of `Chunk` given twice, an array or a number where
//! `Chunk` expects an object, a token count that is not plain digits, nesting past
//! [`MAX_DEPTH`]. serde_json then reads the event, so an event means the same, and is rejected
//! for the same reasons, whichever of the two reads it.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::IgnoredAny;

use super::{ChoicesText, Chunk, Usage};

/// The bytes a string without escapes cannot hold as they are: its closing quote, a backslash,
/// a control character.
const ENDS_PLAIN_STRING: [bool; 256] = {
    let mut ends = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        ends[byte] = true;
        byte += 1;
    }
    ends[b'"' as usize] = true;
    ends[b'\\' as usize] = true;
    ends
};

/// How many bytes at the start of `bytes` a string without escapes holds as they are: the
/// offset of the first byte [`ENDS_PLAIN_STRING`], or the length.
///
/// Chunk strings are mostly ids, names and fingerprints tens of bytes long, so they are read
/// eight bytes at a time: a word holds a stopping byte exactly when one of three classic tests
/// flags a byte in it (a byte below `0x20`, a byte equal to `"`, a byte equal to `\`), and
/// the lowest flagged byte is the first stopping one (a borrow only runs upward, from a byte
/// that is flagged itself). The bytes after the last whole word go one at a time.
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = ONES * 0x80;
    /// Flags (in its high bit) each byte of `word` that is zero, and maybe bytes above one.
    fn zeros(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGH
    }
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, &word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let stops = control
            | zeros(word ^ (ONES * u64::from(b'"')))
            | zeros(word ^ (ONES * u64::from(b'\\')));
        if stops != 0 {
            return index * 8 + stops.trailing_zeros() as usize / 8;
        }
    }
    words.len() * 8
        + tail
            .iter()
            .position(|&byte| ENDS_PLAIN_STRING[usize::from(byte)])
            .unwrap_or(tail.len())
}

/// Deeper nesting is left to serde_json (whose own limit is 128).
const MAX_DEPTH: u8 = 32;

/// The chunk `text` holds, or `None` when serde_json must decide.
pub(super) fn chunk(text: &str) -> Option<Chunk<'_>> {
    let mut scan = Scan {
        text,
        at: 0,
        depth: 0,
    };
    let mut chunk = Chunk {
        choices: ChoicesText(None),
        usage: None,
        error: None,
    };
    let (mut choices, mut usage, mut error) = (false, false, false);
    scan.object(|scan, key| match key {
        "choices" => {
            once(&mut choices)?;
            chunk.choices = ChoicesText(scan.choices()?);
            Some(())
        }
        "usage" => {
            once(&mut usage)?;
            chunk.usage = scan.nullable(Scan::usage)?;
            Some(())
        }
        "error" => {
            once(&mut error)?;
            chunk.error = scan.nullable(|scan| scan.value().map(|()| IgnoredAny))?;
            Some(())
        }
        _ => scan.value(),
    })?;
    scan.space();
    (scan.at == text.len()).then_some(chunk)
}

/// The chunk `text` holds, or `None` when serde_json must decide: by comparison with `shape`
/// when it has the same bytes around another text, else in one pass, which then becomes the
/// shape when its only text is one string without escapes.
pub(super) fn chunk_like<'a>(text: &'a str, shape: &mut Shape) -> Option<Chunk<'a>> {
    if let Some(content) = shape.text_of(text) {
        return Some(Chunk {
            choices: ChoicesText(Some(Cow::Borrowed(content))),
            usage: None,
            error: None,
        });
    }
    let read = chunk(text)?;
    shape.remember(text, &read);
    Some(read)
}

/// A chunk read in one pass with no usage, no error and one string without escapes as its
/// only text; empty until there was one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shape {
    bytes: Vec<u8>,
    /// Where the text is in `bytes`, between its quotes.
    text: Range<usize>,
}

impl Shape {
    /// The text of `text` if it is this chunk with another string without escapes in place of
    /// its text.
    fn text_of<'a>(&self, text: &'a str) -> Option<&'a str> {
        if self.bytes.is_empty() {
            return None;
        }
        // `before` ends with the text's opening quote, `after` starts with its closing one.
        let (before, after) = (&self.bytes[..self.text.start], &self.bytes[self.text.end..]);
        let rest = text.as_bytes().strip_prefix(before)?;
        let length = plain_len(rest);
        if rest.get(length..)? != after {
            return None;
        }
        text.get(before.len()..before.len() + length)
    }

    /// Keeps `text`, read as `chunk`, if its only text is one string without escapes (the
    /// pass borrows a text only when it is one string, and declines escapes).
    fn remember(&mut self, text: &str, chunk: &Chunk<'_>) {
        let (ChoicesText(Some(Cow::Borrowed(content))), None, None) =
            (&chunk.choices, chunk.usage, &chunk.error)
        else {
            return;
        };
        let start = (content.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        if start
            .checked_add(content.len())
            .is_none_or(|end| end > text.len())
        {
            return;
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(text.as_bytes());
        self.text = start..start + content.len();
    }
}

/// Marks a field seen; `None` the second time (serde_json rejects a duplicated field).
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// A cursor over JSON text. Every method returns `None` for what it declines, valid JSON or not.
struct Scan<'a> {
    text: &'a str,
    at: usize,
    /// Objects and arrays open around `at`.
    depth: u8,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed when it is `byte`.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// `null` (consumed) or not (nothing consumed).
    fn null(&mut self) -> Option<bool> {
        self.space();
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal("null").map(|()| true)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `null` as `None`, anything else as `read` reads it.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null()? {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A string with no escape in it: its contents, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        let end = start + plain_len(&bytes[start..]);
        if *bytes.get(end)? != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// An object, each member's value read by `member` given its key.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.list(b'{', b'}', |scan| {
            let key = scan.string()?;
            scan.eat(b':')?;
            member(scan, key)
        })
    }

    /// An array, each element read by `element`.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.list(b'[', b']', element)
    }

    /// `open`, items read by `item` and separated by commas, `close`. A list that fails leaves
    /// `depth` as it is: the whole scan has failed with it.
    fn list(
        &mut self,
        open: u8,
        close: u8,
        item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        self.items(open, close, item)?;
        self.depth -= 1;
        Some(())
    }

    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any value, checked and passed over.
    fn value(&mut self) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|scan, _| scan.value()),
            b'[' => self.array(Scan::value),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A number as JSON writes one: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        self.peek()?.is_ascii_digit().then(|| self.digits())
    }

    /// A token count: plain digits that fit a `u64` (a sign, a fraction or an exponent would
    /// be serde_json's error to give).
    fn count(&mut self) -> Option<u64> {
        self.space();
        let start = self.at;
        self.digits();
        let digits = self.text.get(start..self.at)?;
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        digits.parse().ok()
    }

    /// `usage`: an object whose `prompt_tokens` and `completion_tokens` default to 0.
    fn usage(&mut self) -> Option<Usage> {
        let mut usage = Usage::default();
        let (mut prompt, mut completion) = (false, false);
        self.object(|scan, key| match key {
            "prompt_tokens" => {
                once(&mut prompt)?;
                usage.prompt_tokens = scan.count()?;
                Some(())
            }
            "completion_tokens" => {
                once(&mut completion)?;
                usage.completion_tokens = scan.count()?;
                Some(())
            }
            _ => scan.value(),
        })?;
        Some(usage)
    }

    /// `choices`: an array of objects, the texts of their `delta.content` joined in order.
    fn choices(&mut self) -> Option<Option<Cow<'a, str>>> {
        let mut text: Option<Cow<'a, str>> = None;
        self.array(|scan| {
            let delta = scan.only("delta", |scan| scan.only("content", Scan::string))?;
            let Some(content) = delta.flatten() else {
                return Some(());
            };
            text = Some(match text.take() {
                None => Cow::Borrowed(content),
                Some(before) => Cow::Owned(before.into_owned() + content),
            });
            Some(())
        })?;
        Some(text)
    }

    /// An object of which one member matters: that member's value read by `read` (`null` as
    /// `None`), or `None` when the object lacks it. Given twice, it is declined.
    fn only<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        let mut read = Some(read);
        let mut found = None;
        self.object(|scan, key| {
            if key != name {
                return scan.value();
            }
            found = scan.nullable(read.take()?)?;
            Some(())
        })?;
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// What a chunk means to the measurements: its text, its usage, whether it is an error.
    type Meaning = (Option<String>, Option<Usage>, bool);

    fn meaning(chunk: &Chunk<'_>) -> Meaning {
        (
            chunk.choices.0.as_deref().map(str::to_owned),
            chunk.usage,
            chunk.error.is_some(),
        )
    }

    fn by_serde(text: &str) -> Option<Meaning> {
        serde_json::from_str::<Chunk<'_>>(text)
            .ok()
            .map(|c| meaning(&c))
    }

    const CONTENT: &str = r#"{"id":"chatcmpl-mock78f1d447524aa38c","object":"chat.completion.chunk","created":1796484011,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":" latency"},"logprobs":null,"finish_reason":null}]}"#;

    /// Chunks as OpenAI-style servers send them, and a few they might.
    const USUAL: [&str; 9] = [
        CONTENT,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":null},{"delta":{"content":"b"}},{"x":[1,-2.5e+3,true,false,null]}]}"#,
        r#"{"error":{"message":"boom","type":"server_error","code":null}}"#,
        r#"{"error":null,"usage":null,"choices":[{"delta":{"content":null}}]}"#,
        " {\"choices\" : [ { \"delta\" : { \"content\" : \"é 字\" } } ] }\n",
        r#"{"usage":{"completion_tokens":0}}"#,
    ];

    #[test]
    fn usual_chunks_are_read_as_serde_json_reads_them() {
        for text in USUAL {
            let scanned = chunk(text).unwrap_or_else(|| panic!("declined {text}"));
            assert_eq!(Some(meaning(&scanned)), by_serde(text), "{text}");
        }
        let joined = chunk(USUAL[4]).expect("two texts");
        assert_eq!(joined.choices.0.as_deref(), Some("ab"));
        let borrowed = chunk(CONTENT).expect("one text");
        assert!(matches!(
            borrowed.choices.0,
            Some(Cow::Borrowed(" latency"))
        ));
    }

    #[test]
    fn what_it_is_not_sure_of_is_left_to_serde_json() {
        for text in [
            // Escapes: serde_json unescapes (and checks) them.
            r#"{"choices":[{"delta":{"content":"line\n"}}]}"#,
            r#"{"id":"a\"b","choices":[]}"#,
            // Fields given twice, which serde_json rejects.
            r#"{"choices":[],"choices":[]}"#,
            r#"{"usage":null,"usage":null}"#,
            r#"{"error":null,"error":null}"#,
            r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
            r#"{"usage":{"completion_tokens":1,"completion_tokens":2}}"#,
            r#"{"choices":[{"delta":null,"delta":null}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            // Shapes serde_json reads another way or refuses.
            r#"{"choices":null}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[[{"content":"a"}]]}"#,
            r#"{"usage":[1,2]}"#,
            r#"{"usage":{"prompt_tokens":1.0}}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens":01}}"#,
            r#"{"usage":{"prompt_tokens":18446744073709551616}}"#,
            r#"[{"choices":[]}]"#,
            // Not JSON at all.
            r#"{"choices":[],}"#,
            r#"{"choices":[1,]}"#,
            r#"{"choices":[]} x"#,
            r#"{"id":01}"#,
            r#"{"id":1.}"#,
            r#"{"id":tru}"#,
            "{\"id\":\"a\u{1}\"}",
            r#"{"choices":[]"#,
            "",
        ] {
            assert!(chunk(text).is_none(), "should decline {text}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(chunk(&deep).is_none());
        assert!(by_serde(&deep).is_some(), "serde_json reads it");
    }

    #[test]
    fn strings_stop_at_every_byte_that_ends_them_wherever_it_falls() {
        let slow = |bytes: &[u8]| {
            let stop = bytes
                .iter()
                .position(|&b| ENDS_PLAIN_STRING[usize::from(b)]);
            stop.unwrap_or(bytes.len())
        };
        for byte in 0..=u8::MAX {
            for len in 0..=19 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    // Bytes that end a string after it must not move where it ends.
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(
                        plain_len(&bytes),
                        slow(&bytes),
                        "{byte:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert_eq!(plain_len("é 字 \u{7f}~".as_bytes()), "é 字 \u{7f}~".len());
    }

    #[test]
    fn a_chunk_like_the_last_is_read_by_comparison_as_the_pass_reads_it() {
        let mut shape = Shape::default();
        // Nothing to compare with yet: a bare string is not a chunk.
        assert!(shape.text_of("abc").is_none());
        assert!(chunk_like(CONTENT, &mut shape).is_some());
        let with = |text: &str| CONTENT.replace(" latency", text);
        for content in ["", "x", " gateway", "é 字", &"long ".repeat(40)] {
            let text = with(content);
            assert_eq!(shape.text_of(&text), Some(content), "{text}");
            let read = chunk_like(&text, &mut shape).expect("read");
            assert_eq!(Some(meaning(&read)), by_serde(&text));
        }
        // A text with an escape, a control character or a quote is left to serde_json.
        for content in ["a\\\"b", "a\\nb", "a\u{1}b", "a\"b"] {
            let text = with(content);
            assert!(shape.text_of(&text).is_none(), "{text}");
            assert!(chunk_like(&text, &mut shape).is_none(), "{text}");
        }
        // Other bytes around the text: another chunk, read in one pass.
        let other = CONTENT.replace("mock78f1", "mock0000");
        assert!(shape.text_of(&other).is_none());
        assert!(chunk_like(&other, &mut shape).is_some());
        assert_eq!(
            shape.text_of(&other),
            Some(" latency"),
            "the shape follows the stream"
        );
        // Chunks with usage, an error or two texts are never kept as a shape.
        for text in [USUAL[3], USUAL[4], USUAL[5]] {
            let mut shape = Shape::default();
            assert!(chunk_like(text, &mut shape).is_some());
            assert!(shape.bytes.is_empty(), "{text}");
        }
    }

    /// Random edits of usual chunks: whatever the reader accepts, serde_json reads the same.
    #[test]
    fn the_reader_never_disagrees_with_serde_json() {
        const PIECES: [&str; 16] = [
            "\"",
            "\\",
            ",",
            ":",
            "{",
            "}",
            "[",
            "]",
            "null",
            "0",
            "-",
            "1e5",
            " ",
            "\"content\"",
            "\"usage\"",
            "\"choices\"",
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let (mut accepted, mut compared) = (0, 0);
        for round in 0..40_000 {
            let mut text = USUAL[round % USUAL.len()].to_owned();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=text.len());
                if !text.is_char_boundary(at) {
                    continue;
                }
                match rng.random_range(0..4) {
                    0 => text.insert_str(at, PIECES[rng.random_range(0..PIECES.len())]),
                    // A piece of the chunk again elsewhere: fields given twice, nesting.
                    1 => {
                        let from = rng.random_range(0..=text.len());
                        let (from, to) = (from.min(at), from.max(at));
                        let into = rng.random_range(0..=text.len());
                        if [from, to, into].iter().all(|&i| text.is_char_boundary(i)) {
                            let piece = text[from..to].to_owned();
                            text.insert_str(into, &piece);
                        }
                    }
                    2 => {
                        let end = (at + rng.random_range(1..8)).min(text.len());
                        if text.is_char_boundary(end) {
                            text.replace_range(at..end, "");
                        }
                    }
                    _ => text.truncate(at),
                }
            }
            if let Some(scanned) = chunk(&text) {
                accepted += 1;
                assert_eq!(Some(meaning(&scanned)), by_serde(&text), "{text}");
            }
            // The same edit read by comparison with the chunk it was made from.
            let mut shape = Shape::default();
            chunk_like(USUAL[round % USUAL.len()], &mut shape);
            compared += usize::from(shape.text_of(&text).is_some());
            if let Some(read) = chunk_like(&text, &mut shape) {
                assert_eq!(Some(meaning(&read)), by_serde(&text), "{text}");
            }
        }
        assert!(compared > 100, "{compared} read by comparison");
        // Both outcomes were exercised.
        assert!((1_000..39_000).contains(&accepted), "{accepted} accepted");
    }
}
