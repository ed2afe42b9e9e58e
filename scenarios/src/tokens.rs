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
}
