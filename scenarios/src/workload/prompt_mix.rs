//! The scenarios' own prompts: corpus sentences in weighted shapes, with an optional share of
//! hot prompts that every user repeats (cache scenarios).

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Message, Prompt, Role, corpus};

/// How long prompts and answers are: one entry is picked per request by weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub weight: u32,
    /// Corpus sentences in the user message (about 15 tokens each).
    pub sentences: u32,
    pub max_tokens: u32,
}

/// The shape used when a mix has no weight: a short question and a short answer.
const FALLBACK: Shape = Shape {
    weight: 1,
    sentences: 2,
    max_tokens: 128,
};

/// The prompt side of a scenario's workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptMix {
    pub shapes: Vec<Shape>,
    /// Share of requests (0..=1) that repeat one of `hot_prompts` prompts shared by every
    /// user, so a gateway cache can answer them.
    pub repeat_ratio: f64,
    pub hot_prompts: u32,
}

impl PromptMix {
    /// Short questions, medium answers, and now and then a long context: chat traffic.
    pub fn conversational() -> PromptMix {
        PromptMix {
            shapes: vec![
                Shape {
                    weight: 6,
                    sentences: 2,
                    max_tokens: 128,
                },
                Shape {
                    weight: 3,
                    sentences: 8,
                    max_tokens: 256,
                },
                Shape {
                    weight: 1,
                    sentences: 40,
                    max_tokens: 512,
                },
            ],
            repeat_ratio: 0.0,
            hot_prompts: 0,
        }
    }

    /// The same mix where `ratio` of requests repeat one of `hot` popular prompts.
    pub fn with_repeats(mut self, ratio: f64, hot: u32) -> PromptMix {
        self.repeat_ratio = ratio;
        self.hot_prompts = hot;
        self
    }
}

/// One user's walk through a [`PromptMix`]; hot prompts depend on the run seed only, so every
/// user repeats the same ones.
#[derive(Clone, Debug)]
pub(super) struct MixPrompts {
    mix: PromptMix,
    seed: u64,
    total_weight: u32,
    nonce: u64,
}

impl MixPrompts {
    pub(super) fn new(mix: PromptMix, seed: u64) -> MixPrompts {
        let total_weight = mix.shapes.iter().map(|s| s.weight).sum();
        MixPrompts {
            mix,
            seed,
            total_weight,
            nonce: 0,
        }
    }

    pub(super) fn next(&mut self, rng: &mut StdRng) -> Prompt {
        if self.mix.hot_prompts > 0 && rng.random_bool(self.mix.repeat_ratio.clamp(0.0, 1.0)) {
            let hot = rng.random_range(0..self.mix.hot_prompts);
            return self.hot_prompt(hot);
        }
        self.nonce += 1;
        let shape = self.pick_shape(rng);
        let mut prompt = build(rng, shape);
        // A unique suffix so no two fresh prompts collide in a cache by chance.
        let suffix = format!(" (request {:x}-{})", rng.random::<u32>(), self.nonce);
        if let Some(user) = prompt.messages.last_mut() {
            user.content.push_str(&suffix);
        }
        prompt
    }

    /// Hot prompt number `index`: the same text for every user of a run.
    fn hot_prompt(&self, index: u32) -> Prompt {
        let mut rng =
            StdRng::seed_from_u64(self.seed.wrapping_add(u64::from(index)).rotate_left(17));
        let shape = self.mix.shapes.first().unwrap_or(&FALLBACK);
        Prompt {
            temperature: Some(0.0),
            ..build(&mut rng, shape)
        }
    }

    fn pick_shape(&self, rng: &mut StdRng) -> &Shape {
        if self.total_weight == 0 {
            return &FALLBACK;
        }
        let mut ticket = rng.random_range(0..self.total_weight);
        for shape in &self.mix.shapes {
            if ticket < shape.weight {
                return shape;
            }
            ticket -= shape.weight;
        }
        &FALLBACK
    }
}

fn build(rng: &mut StdRng, shape: &Shape) -> Prompt {
    let sentences = corpus::sentences();
    let mut user = String::new();
    for i in 0..shape.sentences.max(1) {
        if i > 0 {
            user.push(' ');
        }
        user.push_str(sentences[rng.random_range(0..sentences.len())]);
    }
    let system = corpus::SYSTEM_PROMPTS[rng.random_range(0..corpus::SYSTEM_PROMPTS.len())];
    Prompt {
        messages: vec![
            Message::new(Role::System, system),
            Message::new(Role::User, user),
        ],
        max_tokens: shape.max_tokens,
        temperature: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::workload::{PromptGenerator, Prompts};

    #[test]
    fn same_seed_same_prompts_and_users_differ() {
        let prompts = Prompts::Mix(PromptMix::conversational());
        let take = |seed, user| -> Vec<Prompt> {
            let mut g = PromptGenerator::new(&prompts, seed, user);
            (0..20).map(|_| g.next_prompt()).collect()
        };
        let a = take(7, 0);
        assert_eq!(a, take(7, 0));
        assert_ne!(a[0], take(7, 1)[0]);
        let shapes: BTreeSet<u32> = a.iter().map(|p| p.max_tokens).collect();
        assert!(
            shapes.len() >= 2,
            "the mix picks several shapes: {shapes:?}"
        );
    }

    #[test]
    fn hot_prompts_repeat_across_users_at_the_configured_ratio() {
        let prompts = Prompts::Mix(PromptMix::conversational().with_repeats(0.5, 4));
        let mut seen = HashMap::new();
        for user in 0..4 {
            let mut g = PromptGenerator::new(&prompts, 11, user);
            for _ in 0..500 {
                *seen
                    .entry(g.next_prompt().user().to_owned())
                    .or_insert(0u32) += 1;
            }
        }
        let repeated: u32 = seen.values().filter(|n| **n > 1).sum();
        let hot_texts = seen.values().filter(|n| **n > 1).count();
        assert!(hot_texts <= 4, "{hot_texts}");
        assert!(
            (800..=1200).contains(&repeated),
            "about half of 2000 repeat: {repeated}"
        );
    }
}
