//! The shipped prompt corpus: prompts come from here, never from the network.

use std::sync::OnceLock;

use rand::Rng;

use crate::tokens;

/// One sentence per line.
const SENTENCES: &str = include_str!("../../corpus/sentences.txt");

/// System prompts, picked per request like a fleet of different applications would send.
pub(crate) const SYSTEM_PROMPTS: [&str; 4] = [
    "You are a helpful assistant. Answer clearly and concisely.",
    "You are a senior engineer reviewing designs. Be precise and point out risks.",
    "You are a friendly tutor. Explain step by step with simple examples.",
    "You are a creative writer. Use vivid but economical language.",
];

/// The corpus sentences, split once.
pub(crate) fn sentences() -> &'static [&'static str] {
    static LINES: OnceLock<Vec<&'static str>> = OnceLock::new();
    LINES.get_or_init(|| {
        SENTENCES
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// One corpus word and what it costs in tokens.
///
/// The tokenizer splits text into pieces before it merges bytes, and a space followed by a
/// non-space always starts a new piece; so words joined by single spaces count exactly the sum
/// of their costs. That lets a prompt of an exact token length be assembled from costs taken
/// once per process, without tokenizing each prompt.
#[derive(Debug)]
struct Word {
    text: &'static str,
    /// Tokens of ` text`, as the word costs after another.
    tokens: u32,
    /// Tokens of `text` alone, as the word costs first in a text.
    bare_tokens: u32,
}

impl Word {
    fn new(text: &'static str) -> Word {
        Word {
            text,
            tokens: cost(&format!(" {text}")),
            bare_tokens: cost(text),
        }
    }

    /// What appending the word to `out` costs.
    fn cost(&self, out: &str) -> u32 {
        if out.is_empty() {
            self.bare_tokens
        } else {
            self.tokens
        }
    }

    fn push(&self, out: &mut String) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(self.text);
    }
}

/// The corpus as words, sentence by sentence, and the words that cost one token either way
/// (they top a text up to its exact length).
struct Words {
    sentences: Vec<Vec<Word>>,
    fillers: Vec<Word>,
}

fn words() -> &'static Words {
    static WORDS: OnceLock<Words> = OnceLock::new();
    WORDS.get_or_init(|| {
        let sentences: Vec<Vec<Word>> = sentences()
            .iter()
            .map(|line| {
                line.split(' ')
                    .filter(|word| !word.is_empty())
                    .map(Word::new)
                    .collect()
            })
            .collect();
        let fillers = sentences
            .iter()
            .flatten()
            .filter(|word| word.tokens == 1 && word.bare_tokens == 1)
            .map(|word| Word::new(word.text))
            .collect();
        Words { sentences, fillers }
    })
}

/// Tokens in `text`, for the short texts whose costs are taken as `u32`.
pub(crate) fn cost(text: &str) -> u32 {
    u32::try_from(tokens::count(text)).unwrap_or(u32::MAX)
}

/// Builds the word costs now (and with them the tokenizer), so the first prompt does not pay.
pub(crate) fn warm() {
    words();
}

/// Appends corpus text that costs exactly `tokens` tokens to `out`, which must be empty or
/// end in a non-space: random whole sentences in order, then, where the next word would run
/// over, one-token words to the exact length. Returns the tokens appended (always `tokens`
/// with the shipped corpus, which has one-token words; a test holds it to that).
pub(crate) fn append_tokens<R: Rng + ?Sized>(rng: &mut R, tokens: u32, out: &mut String) -> u32 {
    let words = words();
    let mut left = tokens;
    'sentences: while left > 0 && !words.sentences.is_empty() {
        let sentence = &words.sentences[rng.random_range(0..words.sentences.len())];
        for word in sentence {
            let cost = word.cost(out);
            if cost > left {
                break 'sentences;
            }
            word.push(out);
            left -= cost;
        }
    }
    while left > 0 && !words.fillers.is_empty() {
        words.fillers[rng.random_range(0..words.fillers.len())].push(out);
        left -= 1;
    }
    tokens - left
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn appended_text_counts_exactly_what_was_asked() {
        assert!(
            !words().fillers.is_empty(),
            "the corpus has one-token words"
        );
        let mut rng = StdRng::seed_from_u64(9);
        for tokens in [1, 2, 3, 7, 15, 64, 100, 511, 512, 2048] {
            for lead in ["", "Request 3-14:"] {
                let mut out = lead.to_owned();
                assert_eq!(append_tokens(&mut rng, tokens, &mut out), tokens);
                let counted = tokens::count(&out) - tokens::count(lead);
                assert_eq!(
                    counted,
                    u64::from(tokens),
                    "{tokens} after {lead:?}: {out:?}"
                );
                assert!(!out.starts_with(' ') && !out.ends_with(' '), "{out:?}");
            }
        }
    }
}
