//! ShareGPT: one JSON array of recorded conversations,
//! `[{"conversations": [{"from": "human", "value": ..}, {"from": "gpt", "value": ..}]}, ..]`,
//! the format of the public ShareGPT dumps that serving benchmarks replay.
//!
//! Each entry becomes one prompt: its first `human` (or `user`) turn, after any `system` turn
//! before it, asks for as many tokens as the recorded answer has (the first `gpt`,
//! `assistant` or `chatgpt` turn after the question, counted by [`crate::tokens`]), or
//! [`DEFAULT_MAX_TOKENS`] when no answer was recorded. Later turns and other fields are
//! ignored. An entry without a human turn is an error: some public dumps hold such entries,
//! and dropping them silently would change the workload under the user's feet.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

use super::{Bad, DEFAULT_MAX_TOKENS, serde_why};
use crate::tokens;
use crate::workload::{Message, Prompt, Role};

#[derive(Deserialize)]
struct Entry {
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    from: String,
    value: String,
}

/// Entries are counted from 0, as `jq '.[N]'` finds them.
pub(super) fn parse(text: &str) -> Result<Vec<Prompt>, Bad> {
    let mut rows = Vec::new();
    let mut entry = None;
    let mut refused = None;
    let mut reader = serde_json::Deserializer::from_str(text);
    Entries {
        rows: &mut rows,
        entry: &mut entry,
        refused: &mut refused,
    }
    .deserialize(&mut reader)
    .and_then(|()| reader.end())
    .map_err(|error| match (entry, refused) {
        // Read well but unusable: serde is past the entry by now, so name where it starts.
        (Some(index), Some(why)) => Bad {
            line: entry_line(text, index),
            why: format!("entry {index}: {why}"),
        },
        (Some(index), None) => Bad {
            line: error.line(),
            why: format!("entry {index}: {}", serde_why(&error)),
        },
        (None, _) => Bad {
            line: error.line(),
            why: serde_why(&error),
        },
    })?;
    Ok(rows)
}

/// The line on which entry `index` of the array `text` starts; `text` is well-formed JSON at
/// least that far, as the parser got past the entry.
fn entry_line(text: &str, index: usize) -> usize {
    let (mut line, mut depth, mut entry) = (1, 0usize, 0);
    let (mut in_string, mut escaped, mut expecting_entry) = (false, false, false);
    for byte in text.bytes() {
        if byte == b'\n' {
            line += 1;
        } else if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if expecting_entry && !byte.is_ascii_whitespace() {
            if entry == index {
                return line;
            }
            expecting_entry = false;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                expecting_entry = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => {
                entry += 1;
                expecting_entry = true;
            }
            _ => {}
        }
    }
    line
}

/// Reads the array entry by entry, noting which one it is in so an error can name it, and
/// why an entry that parsed was refused.
struct Entries<'a> {
    rows: &'a mut Vec<Prompt>,
    entry: &'a mut Option<usize>,
    refused: &'a mut Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of ShareGPT entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        *self.entry = Some(self.rows.len());
        while let Some(entry) = seq.next_element::<Entry>()? {
            match prompt(entry) {
                Ok(prompt) => self.rows.push(prompt),
                Err(why) => {
                    *self.refused = Some(why);
                    return Err(A::Error::custom(why));
                }
            }
            *self.entry = Some(self.rows.len());
        }
        *self.entry = None;
        Ok(())
    }
}

fn prompt(entry: Entry) -> Result<Prompt, &'static str> {
    let turns = entry.conversations;
    let question = turns
        .iter()
        .position(|turn| matches!(turn.from.as_str(), "human" | "user"))
        .ok_or("no human turn")?;
    let answer = turns[question + 1..]
        .iter()
        .find(|turn| matches!(turn.from.as_str(), "gpt" | "assistant" | "chatgpt"));
    let max_tokens = answer.map_or(DEFAULT_MAX_TOKENS, |answer| {
        u32::try_from(tokens::count(&answer.value))
            .unwrap_or(u32::MAX)
            .max(1)
    });
    let mut messages: Vec<Message> = turns[..question]
        .iter()
        .filter(|turn| turn.from == "system")
        .map(|turn| Message::new(Role::System, turn.value.as_str()))
        .collect();
    messages.push(Message::new(Role::User, turns[question].value.as_str()));
    Ok(Prompt {
        messages,
        max_tokens,
        temperature: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_question_asks_for_the_recorded_answer_length() {
        let rows = parse(
            r#"[{"id":"a","conversations":[
                {"from":"system","value":"Be kind."},
                {"from":"gpt","value":"Hello there, how can I help"},
                {"from":"human","value":"Name a colour."},
                {"from":"human","value":"Please?"},
                {"from":"gpt","value":"Blue is a colour."},
                {"from":"human","value":"Another?"}]}]"#,
        )
        .expect("valid");
        assert_eq!(
            rows,
            vec![Prompt {
                messages: vec![
                    Message::new(Role::System, "Be kind."),
                    Message::new(Role::User, "Name a colour."),
                ],
                max_tokens: 5,
                temperature: None,
            }]
        );
    }

    #[test]
    fn a_bad_entry_is_named_with_its_line() {
        let text = "[\n{\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"}]},\n{\"conversations\":\n[{\"from\":\"gpt\",\"value\":\"hi\"}]}\n]";
        let bad = parse(text).expect_err("no human turn in entry 1");
        assert_eq!((bad.line, bad.why.as_str()), (3, "entry 1: no human turn"));
        let bad = parse("[{\"conversations\":[]},\n{\"turns\":[]}]").expect_err("empty");
        assert_eq!((bad.line, bad.why.as_str()), (1, "entry 0: no human turn"));
        let bad =
            parse("[{\"conversations\":[{\"from\":\"human\",\"value\":\"x\"}]},\n{\"turns\":[]}]")
                .expect_err("missing field");
        assert_eq!(bad.line, 2);
        assert!(
            bad.why
                .starts_with("entry 1: missing field `conversations`"),
            "{}",
            bad.why
        );
        let bad = parse("[] x").expect_err("trailing text");
        assert!(bad.why.starts_with("trailing characters"), "{}", bad.why);
    }

    #[test]
    fn entry_lines_skip_brackets_and_commas_inside_strings() {
        let text = "[\n {\"a\": \"[,{\\\"]\"},\n\n  [1, 2],\n \"x\"\n]";
        let lines: Vec<usize> = (0..3).map(|i| entry_line(text, i)).collect();
        assert_eq!(lines, [2, 4, 5]);
    }
}
