//! Token counts by a real BPE tokenizer, so prompt lengths and output tokens mean what a
//! provider bills and a model sees, not a guess from characters or words.
//!
//! The vocabulary is OpenAI's `o200k_base` (the GPT-4o family and later), shipped inside the
//! `tiktoken-rs` crate: nothing is downloaded. Other providers' tokenizers differ by a few
//! percent on English text; one fixed tokenizer keeps runs comparable with each other.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// The name of the encoding, for reports that say how tokens were counted.
pub const ENCODING: &str = "o200k_base";

/// The vocabulary, built once per process on first use.
fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| {
        // The vocabulary is compiled into the binary, so building it can only fail if the
        // shipped file is corrupt: a broken build, not bad input.
        tiktoken_rs::o200k_base().expect("the shipped o200k_base vocabulary parses")
    })
}

/// The number of tokens in `number` written in decimal between non-digits, without running
/// the tokenizer: it splits a run of digits into pieces of three from the left, and every
/// string of one to three digits is a single token of the vocabulary (a test holds it to
/// that). Prompts that number themselves count their numbers this way, per request.
pub(crate) fn count_number(number: u64) -> u32 {
    number.checked_ilog10().unwrap_or(0) / 3 + 1
}

/// Builds the vocabulary now: parsing its 200,000 entries takes far longer than a request, so
/// call this before a run's clock starts rather than let the first counted response pay it.
pub fn warm() {
    bpe();
}

/// The number of tokens in `text`. Special-token markup such as `<|endoftext|>` counts as
/// ordinary text, as it does in a user's message.
pub fn count(text: &str) -> u64 {
    bpe().encode_ordinary(text).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_not_characters() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello"), 1);
        assert_eq!(count(" world"), 1);
        let sentence = "The quick brown fox jumps over the lazy dog.";
        assert_eq!(count(sentence), 10);
        assert_eq!(count(&[sentence; 3].join(" ")), 30);
        // Special-token markup is ordinary text, several tokens long.
        assert!(count("<|endoftext|>") > 1);
    }

    #[test]
    fn numbers_count_a_token_for_each_three_digits() {
        // Every piece a digit run can split into is one token, leading zeros included.
        for width in 1..=3 {
            for n in 0..10u32.pow(width) {
                let piece = format!("{n:0width$}", width = width as usize);
                assert_eq!(count(&piece), 1, "{piece}");
            }
        }
        let mut numbers = vec![0, 9, 10, 999, 1_000, 1_001, 999_999, 1_000_000, u64::MAX];
        numbers.extend((0..64).map(|shift| 0x9E37_79B9_7F4A_7C15u64 >> shift));
        for n in numbers {
            assert_eq!(u64::from(count_number(n)), count(&n.to_string()), "{n}");
            assert_eq!(
                count(&format!("Request 7-{n}:")),
                count("Request 7-") + u64::from(count_number(n)) + count(":"),
                "{n} between other pieces"
            );
        }
    }
}
