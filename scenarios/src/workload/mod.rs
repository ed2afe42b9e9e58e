//! What the load sends: prompts from a seeded generator over the shipped corpus, and the
//! weighted mix of request kinds a scenario uses.

mod corpus;
mod mix;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use mix::{Mix, RequestKind};

/// One chat prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub system: &'static str,
    pub user: String,
    /// Upper bound on output tokens, sent as `max_tokens`.
    pub max_tokens: u32,
    /// Sent when set. Repeated prompts ask for deterministic answers (0), as applications that
    /// want cached answers do; fresh prompts leave the provider default.
    pub temperature: Option<f64>,
}

/// How long prompts and answers are: one entry is picked per request by weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub weight: u32,
    /// Corpus sentences in the user message (about 15 tokens each).
    pub sentences: u32,
    pub max_tokens: u32,
}

/// The prompt side of a workload.
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

/// Generates one user's prompts. Seeded by the run seed and the user index, so a run with the
/// same seed sends the same prompts; hot prompts depend on the run seed only, so every user
/// repeats the same ones.
#[derive(Clone)]
pub struct PromptGenerator {
    rng: StdRng,
    seed: u64,
    mix: PromptMix,
    total_weight: u32,
    nonce: u64,
}

impl PromptGenerator {
    pub fn new(mix: PromptMix, seed: u64, user: usize) -> PromptGenerator {
        let total_weight = mix.shapes.iter().map(|s| s.weight).sum();
        PromptGenerator {
            rng: StdRng::seed_from_u64(seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            seed,
            mix,
            total_weight,
            nonce: 0,
        }
    }

    /// The next prompt.
    pub fn next_prompt(&mut self) -> Prompt {
        if self.mix.hot_prompts > 0 && self.rng.random_bool(self.mix.repeat_ratio.clamp(0.0, 1.0)) {
            let hot = self.rng.random_range(0..self.mix.hot_prompts);
            return self.hot_prompt(hot);
        }
        self.nonce += 1;
        let shape = self.pick_shape();
        let mut prompt = build(&mut self.rng, &shape);
        // A unique suffix so no two fresh prompts collide in a cache by chance.
        prompt.user.push_str(&format!(
            " (request {:x}-{})",
            self.rng.random::<u32>(),
            self.nonce
        ));
        prompt
    }

    /// Hot prompt number `index`: the same text for every user of a run.
    fn hot_prompt(&self, index: u32) -> Prompt {
        let mut rng =
            StdRng::seed_from_u64(self.seed.wrapping_add(u64::from(index)).rotate_left(17));
        let shape = self.mix.shapes.first().cloned().unwrap_or(Shape {
            weight: 1,
            sentences: 2,
            max_tokens: 128,
        });
        Prompt {
            temperature: Some(0.0),
            ..build(&mut rng, &shape)
        }
    }

    fn pick_shape(&mut self) -> Shape {
        let fallback = Shape {
            weight: 1,
            sentences: 2,
            max_tokens: 128,
        };
        if self.total_weight == 0 {
            return fallback;
        }
        let mut ticket = self.rng.random_range(0..self.total_weight);
        for shape in &self.mix.shapes {
            if ticket < shape.weight {
                return shape.clone();
            }
            ticket -= shape.weight;
        }
        fallback
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
    Prompt {
        system: corpus::SYSTEM_PROMPTS[rng.random_range(0..corpus::SYSTEM_PROMPTS.len())],
        user,
        max_tokens: shape.max_tokens,
        temperature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_prompts_and_users_differ() {
        let mix = PromptMix::conversational();
        let a: Vec<Prompt> = {
            let mut g = PromptGenerator::new(mix.clone(), 7, 0);
            (0..20).map(|_| g.next_prompt()).collect()
        };
        let b: Vec<Prompt> = {
            let mut g = PromptGenerator::new(mix.clone(), 7, 0);
            (0..20).map(|_| g.next_prompt()).collect()
        };
        assert_eq!(a, b);
        let mut other = PromptGenerator::new(mix, 7, 1);
        assert_ne!(a[0], other.next_prompt());
        let shapes: std::collections::BTreeSet<u32> = a.iter().map(|p| p.max_tokens).collect();
        assert!(
            shapes.len() >= 2,
            "the mix picks several shapes: {shapes:?}"
        );
    }

    #[test]
    fn hot_prompts_repeat_across_users_at_the_configured_ratio() {
        let mix = PromptMix::conversational().with_repeats(0.5, 4);
        let mut seen = std::collections::HashMap::new();
        for user in 0..4 {
            let mut g = PromptGenerator::new(mix.clone(), 11, user);
            for _ in 0..500 {
                *seen.entry(g.next_prompt().user).or_insert(0u32) += 1;
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
