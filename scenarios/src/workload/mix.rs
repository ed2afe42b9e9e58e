//! The kinds of request a scenario sends, and how often each.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Non-streaming chat completion.
    Chat,
    /// Streaming chat completion (SSE): TTFT, ITL and TPOT come from these.
    Stream,
    /// Embeddings of a corpus sentence.
    Embeddings,
    /// The models list.
    Models,
}

/// Weighted request kinds; each request picks one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mix(Vec<(RequestKind, u32)>);

impl Mix {
    /// Only `kind`.
    pub fn only(kind: RequestKind) -> Mix {
        Mix(vec![(kind, 1)])
    }

    /// The given kinds and weights.
    pub fn weighted(entries: &[(RequestKind, u32)]) -> Mix {
        Mix(entries.to_vec())
    }

    /// Picks a kind by weight; a mix with no weight sends streams.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> RequestKind {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return RequestKind::Stream;
        }
        let mut ticket = rng.random_range(0..total);
        for (kind, weight) in &self.0 {
            if ticket < *weight {
                return *kind;
            }
            ticket -= weight;
        }
        RequestKind::Stream
    }

    /// The kinds and weights.
    pub fn entries(&self) -> &[(RequestKind, u32)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn picks_follow_weights() {
        let mix = Mix::weighted(&[(RequestKind::Chat, 3), (RequestKind::Models, 1)]);
        let mut rng = StdRng::seed_from_u64(1);
        let chats = (0..4000)
            .filter(|_| mix.pick(&mut rng) == RequestKind::Chat)
            .count();
        assert!((2800..=3200).contains(&chats), "{chats}");
    }
}
