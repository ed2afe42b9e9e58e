//! OpenAI wire format: the request bodies the load sends and the parts of responses it reads.
//!
//! Responses are parsed only as far as the measurements need (content presence, usage), with
//! borrowed strings, so parsing a chunk allocates nothing in the common case. A streamed chunk,
//! read 100,000 times a second at scale, goes through a one-pass reader first ([`scan`]), which
//! reads a chunk like the stream's last one by comparing the two.

mod scan;

pub(crate) use scan::Shape;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::workload::Message;

/// `POST /v1/chat/completions` body.
#[derive(Serialize)]
pub(crate) struct ChatBody<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// Asks for a final chunk with `usage`, so output tokens are counted as the provider counts them.
#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

/// `POST /v1/embeddings` body.
#[derive(Serialize)]
pub(crate) struct EmbeddingsBody<'a> {
    pub model: &'a str,
    pub input: &'a str,
}

/// Token usage as OpenAI reports it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// One `chat.completion.chunk`, or an error object sent in the stream.
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: ChoicesText<'a>,
    pub usage: Option<Usage>,
    pub error: Option<IgnoredAny>,
}

impl<'a> Chunk<'a> {
    /// Reads one event's JSON: by comparison with `shape`, the stream's last chunk of the usual
    /// shape, or in one pass when it has that shape, else with serde_json, which gives the same
    /// chunk or the error.
    pub(crate) fn read(text: &'a str, shape: &mut Shape) -> Result<Chunk<'a>, serde_json::Error> {
        scan::chunk_like(text, shape).map_or_else(|| serde_json::from_str(text), Ok)
    }

    /// Appends the generated text the chunk carries (none for role, usage and empty chunks).
    pub(crate) fn push_content(&self, text: &mut String) {
        if let Some(content) = &self.choices.0 {
            text.push_str(content);
        }
    }
}

/// The generated text of a chunk's choices, joined, read without collecting the choices: a
/// chunk nearly always has one, and a `Vec` of them would cost an allocation per event.
#[derive(Default)]
struct ChoicesText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for ChoicesText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choices<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for Choices<'a> {
            type Value = ChoicesText<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut text: Option<Cow<'a, str>> = None;
                while let Some(choice) = seq.next_element::<ChunkChoice<'de>>()? {
                    let Some(content) = choice.delta.and_then(|d| d.content) else {
                        continue;
                    };
                    text = Some(match text {
                        None => content,
                        Some(before) => Cow::Owned(before.into_owned() + &content),
                    });
                }
                Ok(ChoicesText(text))
            }
        }

        deserializer.deserialize_seq(Choices(PhantomData))
    }
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
}

/// A non-streaming completion, embeddings response or models list: valid when the field the
/// route must have is present.
#[derive(Deserialize)]
pub(crate) struct Body<'a> {
    #[serde(borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    pub data: Option<Vec<IgnoredAny>>,
    pub usage: Option<Usage>,
}

/// A completion choice, read for its text only.
#[derive(Deserialize)]
pub(crate) struct Choice<'a> {
    #[serde(default, borrow)]
    pub message: Option<Delta<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Role;

    #[test]
    fn chunks_with_text_carry_content() {
        let role: Chunk<'_> = serde_json::from_str(
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        )
        .expect("role chunk");
        let mut text = String::new();
        role.push_content(&mut text);
        assert!(text.is_empty());
        let text: Chunk<'_> =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":"hi \"there\""}}]}"#)
                .expect("text chunk");
        let mut pushed = String::new();
        text.push_content(&mut pushed);
        assert_eq!(pushed, "hi \"there\"");
        let usage: Chunk<'_> = serde_json::from_str(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}"#,
        )
        .expect("usage chunk");
        let mut none = String::new();
        usage.push_content(&mut none);
        assert!(none.is_empty());
        assert_eq!(usage.usage.map(|u| u.completion_tokens), Some(34));
        let error: Chunk<'_> =
            serde_json::from_str(r#"{"error":{"message":"boom","type":"server_error"}}"#)
                .expect("error chunk");
        assert!(error.error.is_some());
    }

    #[test]
    fn the_text_of_every_choice_is_kept_in_order() {
        let chunk: Chunk<'_> = serde_json::from_str(
            r#"{"choices":[{"delta":{"content":"a\u00e9"}},{"delta":{}},{"delta":{"content":"b"}}]}"#,
        )
        .expect("two choices with text");
        let mut text = String::from(">");
        chunk.push_content(&mut text);
        assert_eq!(text, ">a\u{e9}b");
        for bad in [r#"{"choices":null}"#, r#"{"choices":{"delta":{}}}"#] {
            let error = serde_json::from_str::<Chunk<'_>>(bad)
                .err()
                .expect("choices must be an array");
            assert!(
                error.to_string().contains("array of choices"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn chat_body_serializes_as_openai_expects() {
        let body = ChatBody {
            model: "gpt-4o-mini",
            messages: &[
                Message::new(Role::System, "be brief"),
                Message::new(Role::User, "hello"),
            ],
            max_tokens: 64,
            temperature: None,
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
        };
        let json: serde_json::Value = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["messages"][1]["content"], "hello");
        assert_eq!(json["stream_options"]["include_usage"], true);
    }
}
