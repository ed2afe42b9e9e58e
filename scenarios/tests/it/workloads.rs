//! Workloads from data: synthetic prompts measure their requested token length, shared
//! prefixes are exactly the configured ones, and dataset files load into the prompts they
//! hold or are refused with the line that is wrong.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scenarios::tokens;
use scenarios::workload::{
    DEFAULT_MAX_TOKENS, Dataset, DatasetError, MAX_DATASET_BYTES, Message, Prompt, PromptGenerator,
    Prompts, Role, SharedPrefix, SharedPrefixError, Synthetic, TokenCount, TokenCountError,
};

use crate::common::MACHINE;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn count(text: &str) -> TokenCount {
    text.parse().expect(text)
}

fn prompts(source: &Prompts, seed: u64, user: usize, n: usize) -> Vec<Prompt> {
    let mut generator = PromptGenerator::new(source, seed, user);
    (0..n).map(|_| generator.next_prompt()).collect()
}

/// The only message of a synthetic prompt.
fn text(prompt: &Prompt) -> &str {
    assert_eq!(prompt.messages.len(), 1, "{prompt:?}");
    assert_eq!(prompt.messages[0].role, Role::User);
    &prompt.messages[0].content
}

#[test]
fn synthetic_prompts_measure_their_length_by_the_tokenizer() {
    let _machine = MACHINE.blocking_read();
    let source = Prompts::Synthetic(Synthetic::new(count("512"), count("200:50")));
    let mut seen = BTreeSet::new();
    let mut exact = 0;
    let mut answers = Vec::new();
    for seed in 0..8 {
        for user in 0..8 {
            for prompt in prompts(&source, seed, user, 10) {
                let measured = tokens::count(text(&prompt));
                assert!(
                    measured.abs_diff(512) <= 5,
                    "512 tokens +- 1%, measured {measured}: {prompt:?}"
                );
                exact += usize::from(measured == 512);
                answers.push(prompt.max_tokens);
                assert_eq!(prompt.temperature, None);
                assert!(
                    seen.insert(text(&prompt).to_owned()),
                    "fresh prompts never repeat"
                );
            }
        }
    }
    assert_eq!(exact, 640, "every prompt is exactly 512 tokens");
    let mean = answers.iter().map(|t| f64::from(*t)).sum::<f64>() / answers.len() as f64;
    assert!(
        (190.0..=210.0).contains(&mean),
        "max_tokens around 200: {mean}"
    );
    assert!(
        answers.iter().collect::<BTreeSet<_>>().len() > 20,
        "max_tokens vary"
    );
}

#[test]
fn synthetic_prompts_repeat_per_seed_and_user_and_differ_between_them() {
    let source = Prompts::Synthetic(Synthetic::new(count("64:16"), count("32")));
    assert_eq!(prompts(&source, 3, 1, 20), prompts(&source, 3, 1, 20));
    assert_ne!(prompts(&source, 3, 1, 5), prompts(&source, 3, 2, 5));
    assert_ne!(prompts(&source, 3, 1, 5), prompts(&source, 4, 1, 5));
}

#[test]
fn prefix_workloads_share_exactly_k_prefixes() {
    let _machine = MACHINE.blocking_read();
    const PREFIX: u32 = 200;
    const K: u32 = 5;
    let prefix = SharedPrefix::new(PREFIX, K).expect("valid");
    let source = Prompts::Synthetic(Synthetic::new(count("1000"), count("64")).with_prefix(prefix));
    let mut prefixes = BTreeSet::new();
    for user in 0..6 {
        for prompt in prompts(&source, 21, user, 25) {
            let text = text(&prompt);
            assert_eq!(tokens::count(text), 1000, "{text}");
            let (shared, own) = text.split_once(" Request ").expect("prefix, then own part");
            assert_eq!(tokens::count(shared), u64::from(PREFIX), "{shared}");
            assert!(own.starts_with(&format!("{user}-")), "{own}");
            prefixes.insert(shared.to_owned());
        }
    }
    assert_eq!(prefixes.len(), K as usize, "{prefixes:#?}");
    // Another seed, other prefixes.
    let other: BTreeSet<String> = prompts(&source, 22, 0, 30)
        .iter()
        .filter_map(|p| text(p).split_once(" Request ").map(|(s, _)| s.to_owned()))
        .collect();
    assert!(other.is_disjoint(&prefixes));
}

#[test]
fn a_prefix_as_long_as_the_prompt_leaves_only_the_own_part() {
    let prefix = SharedPrefix::new(300, 2).expect("valid");
    let source = Prompts::Synthetic(Synthetic::new(count("300"), count("8")).with_prefix(prefix));
    for prompt in prompts(&source, 1, 0, 10) {
        let text = text(&prompt);
        let (shared, own) = text.split_once(" Request ").expect("prefix, then own part");
        assert_eq!(tokens::count(shared), 300);
        assert!(
            own.ends_with(':') && own.len() < 12,
            "only the own part: {own:?}"
        );
    }
}

#[test]
fn shared_prefix_and_token_count_refuse_unusable_values() {
    assert_eq!(SharedPrefix::new(0, 4), Err(SharedPrefixError::Tokens(0)));
    assert_eq!(
        SharedPrefix::new(200_000, 4),
        Err(SharedPrefixError::Tokens(200_000))
    );
    assert_eq!(SharedPrefix::new(10, 0), Err(SharedPrefixError::Count));
    assert_eq!(
        "12x".parse::<TokenCount>(),
        Err(TokenCountError::Syntax("12x".into()))
    );
    assert_eq!(
        "0:3".parse::<TokenCount>(),
        Err(TokenCountError::Mean("0".into()))
    );
    assert_eq!(
        "512:999999"
            .parse::<TokenCount>()
            .map_err(|e| e.to_string()),
        Err("standard deviation 999999 tokens is more than 131072".into())
    );
}

#[test]
fn a_jsonl_file_loads_into_its_requests() {
    let dataset = Dataset::load(data("chat.jsonl")).expect("loads");
    assert_eq!(
        dataset.prompts(),
        [
            Prompt {
                messages: vec![
                    Message::new(Role::System, "You are terse."),
                    Message::new(Role::User, "What is a token bucket?"),
                ],
                max_tokens: 64,
                temperature: Some(0.3),
            },
            Prompt {
                messages: vec![Message::new(
                    Role::User,
                    "Summarise this:\nGateways pool connections."
                )],
                max_tokens: 128,
                temperature: None,
            },
            Prompt {
                messages: vec![
                    Message::new(Role::User, "Hi"),
                    Message::new(Role::Assistant, "Hello! How can I help?"),
                    Message::new(Role::User, "Tell me a joke."),
                ],
                max_tokens: DEFAULT_MAX_TOKENS,
                temperature: None,
            },
        ]
    );
}

#[test]
fn a_sharegpt_file_asks_for_the_recorded_answer_lengths() {
    let dataset = Dataset::load(data("sharegpt.json")).expect("loads");
    let answer = "Use reversed(items) for an iterator, or items[::-1] for a new list.";
    assert_eq!(
        dataset.prompts(),
        [
            Prompt {
                messages: vec![Message::new(
                    Role::User,
                    "How do I reverse a list in Python?"
                )],
                max_tokens: tokens::count(answer) as u32,
                temperature: None,
            },
            Prompt {
                messages: vec![
                    Message::new(Role::System, "Answer in one word."),
                    Message::new(Role::User, "Capital of France?"),
                ],
                max_tokens: 1,
                temperature: None,
            },
            Prompt {
                messages: vec![Message::new(Role::User, "Write a haiku about load tests.")],
                max_tokens: DEFAULT_MAX_TOKENS,
                temperature: None,
            },
        ]
    );
    assert!((15..=20).contains(&tokens::count(answer)));
}

#[test]
fn a_bad_jsonl_line_is_refused_with_its_line_number() {
    let path = data("bad_line.jsonl");
    let error = Dataset::load(&path).expect_err("line 4 is cut off");
    assert!(
        matches!(error, DatasetError::Invalid { line: 4, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{}:4: EOF while parsing a list (column 48)", path.display())
    );
}

#[test]
fn a_sharegpt_entry_without_a_human_turn_is_refused_by_its_index() {
    let path = data("sharegpt_no_human.json");
    let error = Dataset::load(&path).expect_err("entry 1 has no question");
    assert_eq!(
        error.to_string(),
        format!("{}:9: entry 1: no human turn", path.display())
    );
}

#[test]
fn files_that_are_not_datasets_are_refused_clearly() {
    let missing = data("no-such-file.jsonl");
    let error = Dataset::load(&missing).expect_err("missing");
    assert!(matches!(error, DatasetError::Read { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&missing.display().to_string()),
        "{error}"
    );
    let directory = data("");
    let error = Dataset::load(&directory).expect_err("a directory");
    assert!(matches!(error, DatasetError::NotAFile { .. }), "{error:?}");
}

#[test]
fn files_over_the_cap_or_not_text_are_refused_before_parsing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let huge = dir.join("workloads-huge.jsonl");
    // Sparse: no disk is written, but the size is past the cap.
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(MAX_DATASET_BYTES + 1).expect("set_len");
    let error = Dataset::load(&huge).expect_err("too large");
    assert!(
        matches!(error, DatasetError::TooLarge { size, .. } if size == MAX_DATASET_BYTES + 1),
        "{error:?}"
    );
    std::fs::remove_file(&huge).expect("remove");

    let binary = dir.join("workloads-binary.jsonl");
    let line = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    std::fs::write(&binary, [&line[..], b"\n\xff\xfe\n"].concat()).expect("write");
    let error = Dataset::load(&binary).expect_err("not UTF-8");
    assert_eq!(
        error.to_string(),
        format!("{}:2: not UTF-8 text", binary.display())
    );
}

#[test]
fn dataset_users_walk_every_row_in_a_seeded_order() {
    let dataset = Arc::new(Dataset::load(data("chat.jsonl")).expect("loads"));
    let source = Prompts::Dataset(Arc::clone(&dataset));
    let first = prompts(&source, 5, 0, 6);
    assert_eq!(
        first,
        prompts(&source, 5, 0, 6),
        "the same for the same seed and user"
    );
    let rows: BTreeSet<String> = first[..3].iter().map(|p| p.user().to_owned()).collect();
    assert_eq!(rows.len(), 3, "every row once before any repeats");
    assert_eq!(first[..3], first[3..]);
    let starts: BTreeSet<String> = (0..12)
        .map(|user| prompts(&source, 5, user, 1)[0].user().to_owned())
        .collect();
    assert!(starts.len() > 1, "users start at different rows");
}
