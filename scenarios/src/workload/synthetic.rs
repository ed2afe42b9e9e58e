//! Synthetic prompts of exact token lengths, optionally behind shared prefixes: the workload
//! for questions like "what does a 4k-token prompt cost" or "how much does prefix caching
//! save", where the text does not matter but its length does.

use std::fmt::Write as _;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::token_count::{MAX_TOKENS, TokenCount};
use super::{Message, Prompt, Role, corpus};
use crate::tokens;

/// Prompts of `prompt_tokens` tokens asking for `output_tokens` (sent as `max_tokens`), each a
/// single user message of corpus text.
///
/// Every prompt holds a part of its own, `Request USER-N:` (about 5 tokens), so no two
/// prompts of a run are the same and a cache cannot answer them; with a [`SharedPrefix`] that
/// part follows the prefix. The message then measures exactly the sampled length by
/// [`crate::tokens::count`] (the chat template a provider wraps around it adds a few more), except
/// that it is never shorter than its prefix and its own part: when the prefix alone reaches
/// the sampled length, the prompt is the prefix and the part, and so a few tokens longer.
#[derive(Clone, Debug, PartialEq)]
pub struct Synthetic {
    prompt_tokens: TokenCount,
    output_tokens: TokenCount,
    prefix: Option<SharedPrefix>,
}

impl Synthetic {
    /// Building one pays the tokenizer's one-time setup now, before a run's clock starts.
    pub fn new(prompt_tokens: TokenCount, output_tokens: TokenCount) -> Synthetic {
        corpus::warm();
        Synthetic {
            prompt_tokens,
            output_tokens,
            prefix: None,
        }
    }

    /// Every prompt starts with one of the prefixes of `prefix`.
    pub fn with_prefix(self, prefix: SharedPrefix) -> Synthetic {
        Synthetic {
            prefix: Some(prefix),
            ..self
        }
    }

    pub fn prompt_tokens(&self) -> TokenCount {
        self.prompt_tokens
    }

    pub fn output_tokens(&self) -> TokenCount {
        self.output_tokens
    }

    pub fn prefix(&self) -> Option<SharedPrefix> {
        self.prefix
    }
}

/// `count` different prefixes of `tokens` tokens each, one picked at random per request: the
/// long shared system prompt or document of an application, which provider and gateway
/// prefix caches exist for. A prefix depends only on the run seed and its number, so every
/// user of a run (and every run with the same seed) sends the same `count` prefixes.
///
/// Each prefix starts with `Shared context I:` so no two are the same; a prefix of fewer
/// tokens than that label is the label alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedPrefix {
    tokens: u32,
    count: u32,
}

/// Shared prefixes that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedPrefixError {
    #[error("prefix tokens {0} is outside 1..={MAX_TOKENS}")]
    Tokens(u32),
    #[error("prefix count must be at least 1")]
    Count,
}

impl SharedPrefix {
    pub fn new(tokens: u32, count: u32) -> Result<SharedPrefix, SharedPrefixError> {
        if !(1..=MAX_TOKENS).contains(&tokens) {
            return Err(SharedPrefixError::Tokens(tokens));
        }
        if count == 0 {
            return Err(SharedPrefixError::Count);
        }
        Ok(SharedPrefix { tokens, count })
    }

    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    pub fn count(&self) -> u32 {
        self.count
    }
}

/// One user's synthetic prompts.
#[derive(Clone, Debug)]
pub(super) struct SyntheticPrompts {
    synthetic: Synthetic,
    seed: u64,
    /// What the request's own part starts with, up to its number: `Request USER-`, after a
    /// space when it follows a prefix.
    own: String,
    /// Tokens of `own` and of the `:` after the number. The number is its own piece of the
    /// text, so the part costs these and the number's tokens, counted without the tokenizer:
    /// running it on every request would cost more than the rest of the prompt together.
    own_tokens: u32,
    nonce: u64,
}

impl SyntheticPrompts {
    pub(super) fn new(synthetic: Synthetic, seed: u64, user: usize) -> SyntheticPrompts {
        // After a prefix, the joining space is tokenized with the request's own part.
        let space = if synthetic.prefix.is_some() { " " } else { "" };
        let own = format!("{space}Request {user}-");
        let own_tokens = corpus::cost(&own) + corpus::cost(":");
        SyntheticPrompts {
            synthetic,
            seed,
            own,
            own_tokens,
            nonce: 0,
        }
    }

    pub(super) fn next(&mut self, rng: &mut StdRng) -> Prompt {
        self.nonce += 1;
        let length = self.synthetic.prompt_tokens.sample(rng);
        let max_tokens = self.synthetic.output_tokens.sample(rng);
        // English corpus text runs about 4.5 bytes a token.
        let mut text = String::with_capacity(length as usize * 5);
        let mut used = 0;
        if let Some(prefix) = self.synthetic.prefix {
            used += self.append_prefix(prefix, rng.random_range(0..prefix.count), &mut text);
        }
        text.push_str(&self.own);
        // Writing to a `String` cannot fail.
        let _ = write!(text, "{}:", self.nonce);
        used += self.own_tokens + tokens::count_number(self.nonce);
        corpus::append_tokens(rng, length.saturating_sub(used), &mut text);
        Prompt {
            messages: vec![Message::new(Role::User, text)],
            max_tokens,
            temperature: None,
        }
    }

    /// Appends shared prefix number `index` and returns its length in tokens.
    fn append_prefix(&self, prefix: SharedPrefix, index: u32, out: &mut String) -> u32 {
        let mut rng = StdRng::seed_from_u64(
            self.seed
                .rotate_left(29)
                .wrapping_add(u64::from(index).wrapping_mul(0xD6E8_FEB8_6659_FD93)),
        );
        let label = format!("Shared context {index}:");
        let label_tokens = corpus::cost(&label);
        out.push_str(&label);
        label_tokens
            + corpus::append_tokens(&mut rng, prefix.tokens.saturating_sub(label_tokens), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request's own part is counted without the tokenizer; the prompt still measures
    /// exactly its length as the request numbers grow past each new digit, with and without a
    /// prefix before them.
    #[test]
    fn prompts_stay_exact_as_their_numbers_grow() {
        let length = TokenCount::fixed(40).expect("a length");
        let prefix = SharedPrefix::new(12, 2).expect("a prefix");
        for synthetic in [
            Synthetic::new(length, length),
            Synthetic::new(length, length).with_prefix(prefix),
        ] {
            for user in [0, 7, 12_345] {
                let mut prompts = SyntheticPrompts::new(synthetic.clone(), 5, user);
                let mut rng = StdRng::seed_from_u64(1);
                for start in [0, 8, 98, 998, 9_998, 999_998, u64::MAX / 2 - 1] {
                    prompts.nonce = start;
                    for _ in 0..3 {
                        let prompt = prompts.next(&mut rng);
                        let text = prompt.user();
                        assert_eq!(tokens::count(text), 40, "{text:?}");
                        assert!(text.contains(&format!("Request {user}-{}:", prompts.nonce)));
                    }
                }
            }
        }
    }
}
