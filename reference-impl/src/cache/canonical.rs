//! The canonical digest of a JSON request body, computed in one pass over its bytes.
//!
//! Every JSON value reduces to a 128-bit XXH3 digest seeded by its type, so values of different
//! types never share a digest: strings hash their decoded text (so `"\u0068i"` is `"hi"`),
//! numbers hash as an integer when they have an integral value (so `1`, `1.0` and `1e0` agree),
//! arrays hash their items' digests in order, and objects hash their (name, value) digest pairs
//! sorted, which makes key order irrelevant without sorting any strings. Whitespace never
//! reaches a digest.
//!
//! This is a small JSON reader of its own rather than a serde visitor because keying is on the
//! cache-hit path: it scans strings eight bytes at a time, validates UTF-8 once for the whole
//! body, and keeps the item digests of every open container on one stack, so it allocates
//! nothing per value. It accepts exactly RFC 8259 JSON, nested at most [`MAX_DEPTH`] deep.

use std::borrow::Cow;

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Deepest nesting accepted, as in `serde_json`.
pub(super) const MAX_DEPTH: usize = 128;

/// Top-level request fields that do not change the completion.
fn is_delivery_field(name: &str) -> bool {
    matches!(
        name,
        "metadata" | "store" | "stream" | "stream_options" | "user"
    )
}

// Type tags, used as hash seeds.
const NULL: u64 = 1;
const FALSE: u64 = 2;
const TRUE: u64 = 3;
const INTEGER: u64 = 4;
const FLOAT: u64 = 5;
const STRING: u64 = 6;
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
#[derive(Debug)]
pub(super) struct Fingerprint {
    pub hash: u128,
    pub model: Option<Box<str>>,
    pub temperature: Option<f64>,
}

impl Fingerprint {
    /// Reads a request body: an object whose delivery-only fields are left out of the digest.
    pub fn of(body: &[u8]) -> Result<Self, SyntaxError> {
        let text = std::str::from_utf8(body).map_err(|_| SyntaxError::Utf8)?;
        let mut reader = Reader {
            text,
            bytes: body,
            pos: 0,
            stack: Vec::with_capacity(512),
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

fn string(value: &str) -> u128 {
    xxh3_128_with_seed(value.as_bytes(), STRING)
}

fn field(name: u128, value: u128) -> [u8; 32] {
    let mut pair = [0u8; 32];
    pair[..16].copy_from_slice(&name.to_le_bytes());
    pair[16..].copy_from_slice(&value.to_le_bytes());
    pair
}

/// A JSON value that was read: its digest, plus what the top level wants to keep of it.
struct Read<'a> {
    digest: u128,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Text(Cow<'a, str>),
    Number(f64),
    Null,
    Other,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Digests of the items of the containers being read, innermost last: containers push their
    /// items above their parents' ones, hash them and truncate back.
    stack: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn request(&mut self) -> Result<Fingerprint, SyntaxError> {
        let (mut model, mut temperature) = (None, None);
        let start = self.stack.len();
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                let name = self.string()?;
                let name_digest = string(&name);
                self.skip_whitespace();
                self.expect(b':')?;
                let value = self.value(1)?;
                if !is_delivery_field(&name) {
                    match (&*name, value.kind) {
                        ("model", Kind::Text(text)) => model = Some(text.into()),
                        ("model", _) => return Err(SyntaxError::FieldType("model")),
                        ("temperature", Kind::Number(number)) => temperature = Some(number),
                        ("temperature", Kind::Null) => temperature = None,
                        ("temperature", _) => return Err(SyntaxError::FieldType("temperature")),
                        _ => {}
                    }
                    self.stack
                        .extend_from_slice(&field(name_digest, value.digest));
                }
                if self.end_of_container(b'}')? {
                    break;
                }
            }
        }
        Ok(Fingerprint {
            hash: self.object(start),
            model,
            temperature,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Read<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError::TooDeep);
        }
        self.skip_whitespace();
        let (digest, kind) = match self.peek() {
            Some(b'{') => (self.map(depth)?, Kind::Other),
            Some(b'[') => (self.array(depth)?, Kind::Other),
            Some(b'"') => {
                let text = self.string()?;
                (string(&text), Kind::Text(text))
            }
            Some(b't') => (self.literal("true", TRUE)?, Kind::Other),
            Some(b'f') => (self.literal("false", FALSE)?, Kind::Other),
            Some(b'n') => (self.literal("null", NULL)?, Kind::Null),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(SyntaxError::At(self.pos)),
        };
        Ok(Read { digest, kind })
    }

    fn map(&mut self, depth: usize) -> Result<u128, SyntaxError> {
        let start = self.stack.len();
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(self.object(start));
        }
        loop {
            self.skip_whitespace();
            let name = string(&self.string()?);
            self.skip_whitespace();
            self.expect(b':')?;
            let value = self.value(depth + 1)?.digest;
            self.stack.extend_from_slice(&field(name, value));
            if self.end_of_container(b'}')? {
                return Ok(self.object(start));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<u128, SyntaxError> {
        let start = self.stack.len();
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(self.container(start, ARRAY));
        }
        loop {
            let item = self.value(depth + 1)?.digest;
            self.stack.extend_from_slice(&item.to_le_bytes());
            if self.end_of_container(b']')? {
                return Ok(self.container(start, ARRAY));
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

    /// Hashes the items `start..` of the stack as one container and pops them.
    fn container(&mut self, start: usize, tag: u64) -> u128 {
        let digest = xxh3_128_with_seed(&self.stack[start..], tag);
        self.stack.truncate(start);
        digest
    }

    /// Hashes the fields `start..` (32-byte pairs) in sorted order and pops them.
    fn object(&mut self, start: usize) -> u128 {
        let (pairs, _) = self.stack[start..].as_chunks_mut::<32>();
        // Ordered as two integers (name digest, value digest): cheaper than comparing bytes.
        pairs.sort_unstable_by_key(|pair| {
            let (name, value) = pair.split_at(16);
            let digest = |d: &[u8]| u128::from_le_bytes(d.try_into().unwrap_or_default());
            (digest(name), digest(value))
        });
        self.container(start, OBJECT)
    }

    /// Reads a string at `pos` (which must be at its opening quote) and decodes its escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        self.expect(b'"')?;
        let start = self.pos;
        let special = start + find_special(&self.bytes[start..]).ok_or(SyntaxError::At(start))?;
        self.pos = special;
        if self.bytes[special] == b'"' {
            self.pos += 1;
            return Ok(Cow::Borrowed(&self.text[start..special]));
        }
        // Escapes are rare in requests: only then is the text copied.
        let mut decoded = self.text[start..special].to_owned();
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(decoded));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut decoded)?;
                }
                Some(byte) if *byte >= 0x20 => {
                    let from = self.pos;
                    let to =
                        from + find_special(&self.bytes[from..]).ok_or(SyntaxError::At(from))?;
                    decoded.push_str(&self.text[from..to]);
                    self.pos = to;
                }
                _ => return Err(SyntaxError::At(self.pos)),
            }
        }
    }

    fn escape(&mut self, decoded: &mut String) -> Result<(), SyntaxError> {
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
        decoded.push(unescaped);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(SyntaxError::At(self.pos))?;
        self.pos += 4;
        u16::from_str_radix(digits, 16).map_err(|_| SyntaxError::At(self.pos))
    }

    /// Reads a number per the JSON grammar; integers that fit 64 bits stay exact.
    fn number(&mut self) -> Result<(u128, Kind<'a>), SyntaxError> {
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
        let token = &self.text[start..self.pos];
        if integral && let Ok(int) = token.parse::<i64>() {
            return Ok((integer(int.into()), Kind::Number(int as f64)));
        }
        if integral && let Ok(int) = token.parse::<u64>() {
            return Ok((integer(int.into()), Kind::Number(int as f64)));
        }
        let value: f64 = token.parse().map_err(|_| SyntaxError::At(start))?;
        Ok((float(value), Kind::Number(value)))
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

/// Position of the first `"`, `\` or control character: the scan that dominates keying, since
/// message text is most of a request. Sixteen bytes a step with SSE2 on x86_64, then eight at a
/// time for the rest (and on other targets).
fn find_special(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 processor has it.
        let (scanned, found) = unsafe { find_special_sse2(bytes) };
        found.or_else(|| find_special_swar(&bytes[scanned..]).map(|p| scanned + p))
    }
    #[cfg(not(target_arch = "x86_64"))]
    find_special_swar(bytes)
}

/// [`find_special`] over the whole 16-byte blocks of `bytes`: the position found, or how many
/// bytes were scanned without finding one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn find_special_sse2(bytes: &[u8]) -> (usize, Option<usize>) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let control = _mm_set1_epi8(0x1f);
    let (blocks, _) = bytes.as_chunks::<16>();
    for (index, block) in blocks.iter().enumerate() {
        let (low, high) = block.split_at(8);
        let half = |h: &[u8]| i64::from_le_bytes(h.try_into().unwrap_or_default());
        let v = _mm_set_epi64x(half(high), half(low));
        // A byte is a control character when min(byte, 0x1f) == byte (unsigned).
        let hits = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
        );
        let mask = _mm_movemask_epi8(hits);
        if mask != 0 {
            return (
                index * 16,
                Some(index * 16 + mask.trailing_zeros() as usize),
            );
        }
    }
    (blocks.len() * 16, None)
}

/// [`find_special`] eight bytes at a time, in plain integer arithmetic.
fn find_special_swar(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // Flags bytes below `n` (and, above a true flag, possibly others: only the lowest is used).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let flags = below(word ^ QUOTES, 1) | below(word ^ BACKSLASHES, 1) | below(word, 0x20);
        if flags != 0 {
            return Some(index * 8 + (flags.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|position| words.len() * 8 + position)
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
                    assert_eq!(find_special(&bytes), Some(at), "len {len} at {at}");
                    assert_eq!(find_special_swar(&bytes), Some(at), "len {len} at {at}");
                }
            }
            assert_eq!(find_special(&vec![0xC3; len]), None);
            assert_eq!(find_special_swar(&vec![0x7f; len]), None);
        }
    }

    #[test]
    fn rejects_what_json_rejects() {
        let bad: [&[u8]; 16] = [
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
