//! What the load sends: prompts, and the weighted mix of request kinds a scenario uses.
//!
//! Prompts come from one of three sources ([`Prompts`]): a scenario's own [`PromptMix`] over
//! the shipped corpus, [`Synthetic`] prompts of exact token lengths (optionally behind shared
//! prefixes), or a [`Dataset`] of recorded requests loaded from a file. Whatever the source, a
//! [`PromptGenerator`] makes one user's prompts, the same for the same run seed and user.

mod corpus;
mod dataset;
mod mix;
mod prompt_mix;
mod synthetic;
mod token_count;

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

pub use dataset::{DEFAULT_MAX_TOKENS, Dataset, DatasetError, MAX_DATASET_BYTES};
pub use mix::{Mix, RequestKind};
pub use prompt_mix::{PromptMix, Shape};
pub use synthetic::{SharedPrefix, SharedPrefixError, Synthetic};
pub use token_count::{MAX_TOKENS, TokenCount, TokenCountError};

use dataset::DatasetPrompts;
use prompt_mix::MixPrompts;
use synthetic::SyntheticPrompts;

/// Who wrote a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a chat prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// One chat prompt, in the API-neutral form the client turns into an OpenAI or Anthropic body.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// The conversation so far, oldest first; system messages may come first.
    pub messages: Vec<Message>,
    /// Upper bound on output tokens, sent as `max_tokens`.
    pub max_tokens: u32,
    /// Sent when set. Repeated prompts ask for deterministic answers (0), as applications that
    /// want cached answers do; fresh prompts leave the provider default.
    pub temperature: Option<f64>,
}

impl Prompt {
    /// The text of the last user message (what an embeddings request embeds).
    pub fn user(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str())
    }
}

/// Where a run's prompts come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompts {
    /// The scenario's own corpus prompts (what a scenario runs with by default).
    Mix(PromptMix),
    /// Prompts of exact token lengths (`--prompt-tokens`, `--output-tokens`, `--prefix-tokens`).
    Synthetic(Synthetic),
    /// Recorded requests from a file (`--dataset`), shared by every user without copies.
    Dataset(Arc<Dataset>),
}

/// Generates one user's prompts. Seeded by the run seed and the user index, so a run with the
/// same seed sends the same prompts in the same order for each user.
#[derive(Clone, Debug)]
pub struct PromptGenerator {
    rng: StdRng,
    source: Source,
}

/// One user's position in its source.
#[derive(Clone, Debug)]
enum Source {
    Mix(MixPrompts),
    Synthetic(SyntheticPrompts),
    Dataset(DatasetPrompts),
}

impl PromptGenerator {
    pub fn new(prompts: &Prompts, seed: u64, user: usize) -> PromptGenerator {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let source = match prompts {
            Prompts::Mix(mix) => Source::Mix(MixPrompts::new(mix.clone(), seed)),
            Prompts::Synthetic(synthetic) => {
                Source::Synthetic(SyntheticPrompts::new(synthetic.clone(), seed, user))
            }
            Prompts::Dataset(dataset) => {
                Source::Dataset(DatasetPrompts::new(Arc::clone(dataset), &mut rng))
            }
        };
        PromptGenerator { rng, source }
    }

    /// The next prompt.
    pub fn next_prompt(&mut self) -> Prompt {
        match &mut self.source {
            Source::Mix(mix) => mix.next(&mut self.rng),
            Source::Synthetic(synthetic) => synthetic.next(&mut self.rng),
            Source::Dataset(dataset) => dataset.next(),
        }
    }
}
