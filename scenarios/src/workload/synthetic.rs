//! Synthetic prompts of exact token lengths, optionally behind shared prefixes: the workload
//! for questions like "what does a 4k-token prompt cost" or "how much does prefix caching
//! save", where the text does not matter but its length does.

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::token_count::{MAX_TOKENS, TokenCount};
use super::{Message, Prompt, Role, corpus};

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
    user: usize,
    nonce: u64,
}

impl SyntheticPrompts {
    pub(super) fn new(synthetic: Synthetic, seed: u64, user: usize) -> SyntheticPrompts {
        SyntheticPrompts {
            synthetic,
            seed,
            user,
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
        // After a prefix, the joining space is tokenized with the request's own part.
        let space = if text.is_empty() { "" } else { " " };
        let own = format!("{space}Request {}-{}:", self.user, self.nonce);
        used += corpus::cost(&own);
        text.push_str(&own);
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
