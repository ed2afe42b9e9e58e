//! The canonical digest of a JSON request body, computed in one pass over its bytes.
//!
//! Every JSON value reduces to a 128-bit XXH3 digest seeded by its type, so values of different
//! types never share a digest: strings hash their decoded text (so `"\u0068i"` is `"hi"`),
//! numbers hash as an integer when they have an integral value (so `1`, `1.0` and `1e0` agree).
//! A container's digest is the wrapping sum of its entries' digests, each entry mixing its key
//! with its value: an object keys a value by its name's digest, so field order is irrelevant
//! without sorting anything; an array keys an item by its index, so order counts. Whitespace
//! never reaches a digest.
//!
//! This is a small JSON reader of its own rather than a serde visitor because keying is on the
//! cache-hit path: it scans strings sixteen bytes at a time, checks UTF-8 only in strings that
//! are not plain ASCII (no other part of a JSON text may hold a non-ASCII byte), and keeps a
//! container's running sum in a local, so it allocates only the model name it returns, and a
//! string's decoded text when the string has escapes. It accepts exactly RFC 8259 JSON, nested
//! at most [`MAX_DEPTH`] deep.

use std::borrow::Cow;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Deepest nesting accepted, as in `serde_json`.
pub(super) const MAX_DEPTH: usize = 128;

/// Top-level request fields that do not change the completion.
fn is_delivery_field(name: &[u8]) -> bool {
    matches!(
        name,
        b"metadata" | b"store" | b"stream" | b"stream_options" | b"user"
    )
}

// Type tags, used as hash seeds. Strings take the zero seed: with any other, XXH3 derives a
// fresh secret on every call for inputs over 240 bytes, and message text is mostly that long.
const STRING: u64 = 0;
const NULL: u64 = 1;
const FALSE: u64 = 2;
const TRUE: u64 = 3;
const INTEGER: u64 = 4;
const FLOAT: u64 = 5;
const ENTRY: u64 = 6;
const ARRAY: u64 = 7;
const OBJECT: u64 = 8;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("invalid JSON at byte {0}")]
    At(usize),
    #[error("request body is not valid UTF-8")]
    Utf8,
    #[error("request body nests deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("request body is not a JSON object")]
    NotAnObject,
    #[error("`{0}` has the wrong type")]
    FieldType(&'static str),
}

/// What one pass over a request body learns: its digest and the fields the rules look at.
#[derive(Debug, Clone)]
pub(super) struct Fingerprint {
    pub hash: u128,
    pub model: Option<Arc<str>>,
    pub temperature: Option<f64>,
}

impl Fingerprint {
    /// Reads a request body: an object whose delivery-only fields are left out of the digest.
    pub fn of(body: &[u8]) -> Result<Self, SyntaxError> {
        let mut reader = Reader {
            bytes: body,
            pos: 0,
        };
        reader.skip_whitespace();
        if reader.peek() != Some(b'{') {
            return Err(SyntaxError::NotAnObject);
        }
        let fingerprint = reader.request()?;
        reader.skip_whitespace();
        if reader.pos != body.len() {
            return Err(SyntaxError::At(reader.pos));
        }
        Ok(fingerprint)
    }
}

fn integer(value: i128) -> u128 {
    xxh3_128_with_seed(&value.to_le_bytes(), INTEGER)
}

/// Floats with an integral value hash as that integer, so `1.0` keys like `1`.
fn float(value: f64) -> u128 {
    if value.fract() == 0.0 && value.abs() < 1e18 {
        integer(value as i128)
    } else {
        xxh3_128_with_seed(&value.to_bits().to_le_bytes(), FLOAT)
    }
}

fn string(text: &[u8]) -> u128 {
    xxh3_128_with_seed(text, STRING)
}

/// The digest of a container, built one entry at a time.
#[derive(Default)]
struct Container {
    /// Wrapping sum of the entries' digests: the same whatever order they are added in.
    sum: u128,
    len: u64,
}

impl Container {
    /// Adds the entry `key` (a field name's digest, or an item's index) holding `value`.
    fn add(&mut self, key: u128, value: u128) {
        let mut entry = [0u8; 32];
        entry[..16].copy_from_slice(&key.to_le_bytes());
        entry[16..].copy_from_slice(&value.to_le_bytes());
        self.sum = self.sum.wrapping_add(xxh3_128_with_seed(&entry, ENTRY));
        self.len += 1;
    }

    fn finish(self, tag: u64) -> u128 {
        let mut total = [0u8; 24];
        total[..16].copy_from_slice(&self.sum.to_le_bytes());
        total[16..].copy_from_slice(&self.len.to_le_bytes());
        xxh3_128_with_seed(&total, tag)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn request(&mut self) -> Result<Fingerprint, SyntaxError> {
        let (mut model, mut temperature) = (None, None);
        let mut fields = Container::default();
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                let name = self.string()?;
                self.skip_whitespace();
                self.expect(b':')?;
                self.skip_whitespace();
                let value = match (&*name, self.peek()) {
                    (b"model", Some(b'"')) => {
                        let text = self.string()?;
                        let utf8 = std::str::from_utf8(&text).map_err(|_| SyntaxError::Utf8)?;
                        model = Some(utf8.into());
                        string(&text)
                    }
                    (b"model", _) => return Err(SyntaxError::FieldType("model")),
                    (b"temperature", Some(b'-' | b'0'..=b'9')) => {
                        let (digest, number) = self.number()?;
                        temperature = Some(number);
                        digest
                    }
                    (b"temperature", Some(b'n')) => {
                        temperature = None;
                        self.literal("null", NULL)?
                    }
                    (b"temperature", _) => return Err(SyntaxError::FieldType("temperature")),
                    _ => self.value(1)?,
                };
                if !is_delivery_field(&name) {
                    fields.add(string(&name), value);
                }
                if self.end_of_container(b'}')? {
                    break;
                }
            }
        }
        Ok(Fingerprint {
            hash: fields.finish(OBJECT),
            model,
            temperature,
        })
    }

    fn value(&mut self, depth: usize) -> Result<u128, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError::TooDeep);
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.map(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(string(&self.string()?)),
            Some(b't') => self.literal("true", TRUE),
            Some(b'f') => self.literal("false", FALSE),
            Some(b'n') => self.literal("null", NULL),
            Some(b'-' | b'0'..=b'9') => Ok(self.number()?.0),
            _ => Err(SyntaxError::At(self.pos)),
        }
    }

    fn map(&mut self, depth: usize) -> Result<u128, SyntaxError> {
        let mut fields = Container::default();
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(fields.finish(OBJECT));
        }
        loop {
            self.skip_whitespace();
            let name = string(&self.string()?);
            self.skip_whitespace();
            self.expect(b':')?;
            fields.add(name, self.value(depth + 1)?);
            if self.end_of_container(b'}')? {
                return Ok(fields.finish(OBJECT));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<u128, SyntaxError> {
        let mut items = Container::default();
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items.finish(ARRAY));
        }
        loop {
            let index = u128::from(items.len);
            items.add(index, self.value(depth + 1)?);
            if self.end_of_container(b']')? {
                return Ok(items.finish(ARRAY));
            }
        }
    }

    /// After an item: `true` at the closing `close`, `false` after a comma.
    fn end_of_container(&mut self, close: u8) -> Result<bool, SyntaxError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(byte) if byte == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(SyntaxError::At(self.pos)),
        }
    }

    /// Reads a string at `pos` (which must be at its opening quote): its text, escapes
    /// decoded, checked to be UTF-8.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, SyntaxError> {
        self.expect(b'"')?;
        let start = self.pos;
        let special = self.plain_run()?;
        if self.bytes[special] == b'"' {
            self.pos += 1;
            return Ok(Cow::Borrowed(&self.bytes[start..special]));
        }
        // Escapes are rare in requests: only then is the text copied.
        let mut decoded = self.bytes[start..special].to_vec();
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(decoded));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let unescaped = self.escape()?;
                    decoded.extend_from_slice(unescaped.encode_utf8(&mut [0; 4]).as_bytes());
                }
                Some(byte) if *byte >= 0x20 => {
                    let from = self.pos;
                    let to = self.plain_run()?;
                    decoded.extend_from_slice(&self.bytes[from..to]);
                }
                _ => return Err(SyntaxError::At(self.pos)),
            }
        }
    }

    /// Moves past the text at `pos` up to the next `"`, `\` or control byte and returns that
    /// byte's position, checking the text passed over to be UTF-8.
    fn plain_run(&mut self) -> Result<usize, SyntaxError> {
        let from = self.pos;
        let scan = find_special(&self.bytes[from..]);
        let end = from + scan.end.ok_or(SyntaxError::At(from))?;
        if !scan.ascii && std::str::from_utf8(&self.bytes[from..end]).is_err() {
            return Err(SyntaxError::Utf8);
        }
        self.pos = end;
        Ok(end)
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let at = self.pos;
        let byte = self.peek().ok_or(SyntaxError::At(at))?;
        self.pos += 1;
        let unescaped = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(SyntaxError::At(self.pos));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(SyntaxError::At(self.pos));
                        }
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(SyntaxError::At(at)),
                    _ => u32::from(unit),
                };
                char::from_u32(code).ok_or(SyntaxError::At(at))?
            }
            _ => return Err(SyntaxError::At(at)),
        };
        Ok(unescaped)
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or(SyntaxError::At(self.pos))?;
        let mut unit = 0u16;
        for &digit in digits {
            let value = char::from(digit)
                .to_digit(16)
                .ok_or(SyntaxError::At(self.pos))?;
            unit = unit << 4 | value as u16;
        }
        self.pos += 4;
        Ok(unit)
    }

    /// Reads a number per the JSON grammar; integers that fit 64 bits stay exact.
    fn number(&mut self) -> Result<(u128, f64), SyntaxError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(SyntaxError::At(self.pos)),
        }
        let mut integral = true;
        if self.eat(b'.') {
            integral = false;
            self.require_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            integral = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.require_digits()?;
        }
        // The grammar above admitted only ASCII digits, signs, `.` and `e`.
        let token = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| SyntaxError::At(start))?;
        if integral && let Ok(int) = token.parse::<i64>() {
            return Ok((integer(int.into()), int as f64));
        }
        if integral && let Ok(int) = token.parse::<u64>() {
            return Ok((integer(int.into()), int as f64));
        }
        let value: f64 = token.parse().map_err(|_| SyntaxError::At(start))?;
        Ok((float(value), value))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn require_digits(&mut self) -> Result<(), SyntaxError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(SyntaxError::At(self.pos));
        }
        self.digits();
        Ok(())
    }

    fn literal(&mut self, word: &str, tag: u64) -> Result<u128, SyntaxError> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(SyntaxError::At(self.pos));
        }
        self.pos += word.len();
        Ok(xxh3_128_with_seed(&[], tag))
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    fn expect(&mut self, byte: u8) -> Result<(), SyntaxError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(SyntaxError::At(self.pos))
        }
    }
}

/// What [`find_special`] found.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    /// Position of the first `"`, `\` or control byte, if any.
    end: Option<usize>,
    /// No byte up to `end` is above 0x7f (when `false`, some may be: the caller checks UTF-8).
    ascii: bool,
}

/// Finds the end of a run of plain string text: the scan that dominates keying, since message
/// text is most of a request. Sixteen bytes a step with SSE2 on x86_64, then eight at a time
/// for the rest (and on other targets).
fn find_special(bytes: &[u8]) -> Scan {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 processor has it.
        #[allow(unsafe_code)]
        let (scanned, blocks) = unsafe { find_special_sse2(bytes) };
        if blocks.end.is_some() {
            return blocks;
        }
        let rest = find_special_swar(&bytes[scanned..]);
        Scan {
            end: rest.end.map(|p| scanned + p),
            ascii: blocks.ascii && rest.ascii,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    find_special_swar(bytes)
}

/// [`find_special`] over the whole 16-byte blocks of `bytes`, and how many bytes that is.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn find_special_sse2(bytes: &[u8]) -> (usize, Scan) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let control = _mm_set1_epi8(0x1f);
    let mut high = 0;
    let (blocks, _) = bytes.as_chunks::<16>();
    for (index, block) in blocks.iter().enumerate() {
        let (low, high_half) = block.split_at(8);
        let half = |h: &[u8]| i64::from_le_bytes(h.try_into().unwrap_or_default());
        let v = _mm_set_epi64x(half(high_half), half(low));
        // Bytes above 0x7f have their top bit set; a whole block is ORed in, which may count
        // bytes past the end: that only costs a UTF-8 check.
        high |= _mm_movemask_epi8(v);
        // A byte is a control character when min(byte, 0x1f) == byte (unsigned).
        let hits = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
        );
        let mask = _mm_movemask_epi8(hits);
        if mask != 0 {
            let end = Some(index * 16 + mask.trailing_zeros() as usize);
            return (
                index * 16,
                Scan {
                    end,
                    ascii: high == 0,
                },
            );
        }
    }
    let scanned = blocks.len() * 16;
    (
        scanned,
        Scan {
            end: None,
            ascii: high == 0,
        },
    )
}

/// [`find_special`] eight bytes at a time, in plain integer arithmetic.
fn find_special_swar(bytes: &[u8]) -> Scan {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // Flags bytes below `n` (and, above a true flag, possibly others: only the lowest is used).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut high = 0;
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        high |= word & HIGHS;
        let flags = below(word ^ QUOTES, 1) | below(word ^ BACKSLASHES, 1) | below(word, 0x20);
        if flags != 0 {
            let end = Some(index * 8 + (flags.trailing_zeros() / 8) as usize);
            return Scan {
                end,
                ascii: high == 0,
            };
        }
    }
    let end = tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|position| words.len() * 8 + position);
    Scan {
        end,
        ascii: high == 0 && tail.is_ascii(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_special_byte_in_any_lane() {
        for len in 0..40 {
            for special in [b'"', b'\\', b'\n', 0x00] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    let found = Scan {
                        end: Some(at),
                        ascii: true,
                    };
                    assert_eq!(find_special(&bytes), found, "len {len} at {at}");
                    assert_eq!(find_special_swar(&bytes), found, "len {len} at {at}");
                }
            }
            let none = |ascii| Scan { end: None, ascii };
            assert_eq!(find_special(&vec![0xC3; len]), none(len == 0));
            assert_eq!(find_special_swar(&vec![0xC3; len]), none(len == 0));
            assert_eq!(find_special(&vec![0x7f; len]), none(true));
            assert_eq!(find_special_swar(&vec![0x7f; len]), none(true));
        }
    }

    #[test]
    fn any_non_ascii_byte_before_the_end_is_reported() {
        for len in 1..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len + 1];
                bytes[at] = 0xC3;
                bytes[len] = b'"';
                let scan = find_special(&bytes);
                assert_eq!(scan.end, Some(len));
                assert!(!scan.ascii, "len {len} at {at}");
                assert!(!find_special_swar(&bytes).ascii, "len {len} at {at}");
            }
        }
    }

    #[test]
    fn rejects_what_json_rejects() {
        let bad: [&[u8]; 20] = [
            b"",
            b"[]",
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":-}",
            b"{\"a\":tru}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"unterminated}",
            b"{} {}",
            b"{\"a\":\"\xff\"}",
            b"{\"\xc3\":1}",
            b"{\"a\":\"x\\n\xc3\"}",
            b"{\"a\":\xc3}",
            b"{\"a\":\"\xed\xa0\x80\"}",
        ];
        for body in bad {
            assert!(
                Fingerprint::of(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            Fingerprint::of(deep.as_bytes()).err(),
            Some(SyntaxError::TooDeep)
        );
    }

    #[test]
    fn raw_and_escaped_text_are_one_string() {
        let raw = Fingerprint::of("{\"m\":\"h\u{e9}llo \u{1f600}\"}".as_bytes()).expect("raw");
        let escaped = Fingerprint::of(br#"{"m":"h\u00e9llo \ud83d\ude00"}"#).expect("escaped");
        assert_eq!(raw.hash, escaped.hash);
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_valid() {
        let good = [
            r#"{"model":"m","n":-0,"f":1.5e-3,"big":18446744073709551615,"bigger":1e30}"#,
            r#"{"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","e":{},"a":[],"t":true,"z":null}"#,
        ];
        for body in good {
            serde_json::from_str::<serde_json::Value>(body).expect("serde accepts");
            assert!(Fingerprint::of(body.as_bytes()).is_ok(), "{body}");
        }
    }
}
