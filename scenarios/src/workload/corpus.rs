//! The shipped prompt corpus: prompts come from here, never from the network.

use std::sync::OnceLock;

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
