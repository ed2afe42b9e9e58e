//! Reading an SSE body as it arrives: when content came, how many tokens, whether it ended well.

use std::time::Instant;

use reports::model::ErrorClass;

use super::Scratch;
use super::anthropic;
use super::options::Api;
use super::wire::{Chunk, Shape};

/// What a stream delivered.
#[derive(Debug, Default)]
pub struct StreamRead {
    pub first_content: Option<Instant>,
    /// Content events seen.
    pub content_events: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Gaps between content events that came in the same read: recorded as 0, since their
    /// bytes arrived together (a target or a network that batches, or a reader that fell
    /// behind).
    pub burst_gaps: u64,
}

/// What one event meant.
enum Step {
    /// It carried generated text (TTFT and ITL count only these).
    Content,
    /// The stream's terminating event.
    Done,
    /// Anything else: role, usage, ping, block boundaries.
    Other,
}

/// Reads a chat stream of `api`'s format to its end, pushing the gap before every content event
/// after the first into `scratch.itl_us` and the generated text into `scratch.text` (for the
/// tokenizer, when the target reports no usage).
///
/// An event's arrival is the moment the read that brought its last bytes returned, taken before
/// those bytes are parsed: every event split out of that read arrived then, however long
/// parsing the ones before it took. Each read is lent by `body` and splitting events reuses
/// `scratch`'s buffers, so a stream costs no allocation per event.
///
/// A stream is complete only with its terminating event (`data: [DONE]`, `message_stop`);
/// ending without it, an error event or a transport error mid-body is
/// [`ErrorClass::StreamBroken`], an event that is not JSON is [`ErrorClass::BadPayload`].
pub async fn read_stream(
    api: Api,
    body: &mut impl Pieces,
    scratch: &mut Scratch,
) -> Result<StreamRead, (ErrorClass, StreamRead)> {
    let Scratch {
        itl_us,
        text,
        sse,
        shape,
        ..
    } = scratch;
    sse.reset();
    let mut read = StreamRead::default();
    let mut last_content: Option<Instant> = None;
    loop {
        let now = match body.next_piece().await {
            Some(Ok(bytes)) => {
                let now = Instant::now();
                sse.push(bytes);
                now
            }
            Some(Err(e)) if e.is_timeout() => return Err((ErrorClass::Timeout, read)),
            Some(Err(_)) | None => return Err((ErrorClass::StreamBroken, read)),
        };
        while let Some(data) = sse.next_event() {
            let step = match api {
                Api::OpenAi => openai_event(data, &mut read, text, shape),
                Api::Anthropic => anthropic_event(data, &mut read, text),
            };
            match step {
                Ok(Step::Done) => return Ok(read),
                Ok(Step::Other) => {}
                Ok(Step::Content) => {
                    match last_content {
                        None => read.first_content = Some(now),
                        Some(previous) => {
                            let gap = now.duration_since(previous).as_micros();
                            read.burst_gaps += u64::from(gap == 0);
                            itl_us.push(u32::try_from(gap).unwrap_or(u32::MAX));
                        }
                    }
                    last_content = Some(now);
                    read.content_events += 1;
                }
                Err(class) => return Err((class, read)),
            }
        }
    }
}

fn openai_event(
    data: &[u8],
    read: &mut StreamRead,
    text: &mut String,
    shape: &mut Shape,
) -> Result<Step, ErrorClass> {
    if data == b"[DONE]" {
        return Ok(Step::Done);
    }
    let chunk = Chunk::read(utf8(data)?, shape).map_err(|_| ErrorClass::BadPayload)?;
    if chunk.error.is_some() {
        return Err(ErrorClass::StreamBroken);
    }
    if let Some(usage) = chunk.usage {
        read.prompt_tokens = Some(usage.prompt_tokens);
        read.completion_tokens = Some(usage.completion_tokens);
    }
    let before = text.len();
    chunk.push_content(text);
    Ok(if text.len() > before {
        Step::Content
    } else {
        Step::Other
    })
}

fn anthropic_event(
    data: &[u8],
    read: &mut StreamRead,
    text: &mut String,
) -> Result<Step, ErrorClass> {
    let event: anthropic::Event<'_> = json(data)?;
    match &*event.kind {
        "message_start" => {
            let usage = event.message.and_then(|m| m.usage).unwrap_or_default();
            read.prompt_tokens = usage.input_tokens.or(read.prompt_tokens);
            Ok(Step::Other)
        }
        "content_block_delta" => match event.delta.and_then(|d| d.text) {
            Some(delta) if !delta.is_empty() => {
                text.push_str(&delta);
                Ok(Step::Content)
            }
            _ => Ok(Step::Other),
        },
        "message_delta" => {
            let usage = event.usage.unwrap_or_default();
            read.completion_tokens = usage.output_tokens.or(read.completion_tokens);
            read.prompt_tokens = usage.input_tokens.or(read.prompt_tokens);
            Ok(Step::Other)
        }
        "message_stop" => Ok(Step::Done),
        "error" => Err(ErrorClass::StreamBroken),
        _ => Ok(Step::Other),
    }
}

/// An event's JSON. The whole event is checked as UTF-8 once and then parsed as text, which
/// costs less than parsing bytes, where every key and string is checked on its own.
fn json<'a, T: serde::Deserialize<'a>>(data: &'a [u8]) -> Result<T, ErrorClass> {
    serde_json::from_str(utf8(data)?).map_err(|_| ErrorClass::BadPayload)
}

fn utf8(data: &[u8]) -> Result<&str, ErrorClass> {
    std::str::from_utf8(data).map_err(|_| ErrorClass::BadPayload)
}

/// A response body read piece by piece as its connection reads it. Each piece is lent until
/// the next is asked for, so it reaches the SSE splitter as a borrow of the connection's read
/// buffer, not split off it with a reference count of its own.
pub trait Pieces {
    type Error: IsTimeout;

    /// The next piece, `None` at the body's end.
    fn next_piece(&mut self) -> impl Future<Output = Option<Result<&[u8], Self::Error>>>;
}

/// A body already in memory, in the pieces of a slice (tests, benchmarks, the fuzzer).
impl<B: AsRef<[u8]>> Pieces for std::slice::Iter<'_, B> {
    type Error = std::io::Error;

    async fn next_piece(&mut self) -> Option<Result<&[u8], std::io::Error>> {
        self.next().map(|piece| Ok(piece.as_ref()))
    }
}

/// Whether a transport error is a timeout; lets the parser run over any byte stream in tests.
pub trait IsTimeout {
    fn is_timeout(&self) -> bool;
}

impl IsTimeout for super::conn::LinkError {
    fn is_timeout(&self) -> bool {
        match self {
            Self::Io(error) => error.is_timeout(),
            Self::Malformed(_) => false,
            Self::Http2(error) => error.is_timeout(),
        }
    }
}

impl IsTimeout for std::io::Error {
    fn is_timeout(&self) -> bool {
        self.kind() == std::io::ErrorKind::TimedOut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(parts: &'a [&'static str]) -> impl Pieces + 'a {
        parts.iter()
    }

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const TOKEN: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"}}]}\n\n";

    #[tokio::test]
    async fn complete_stream_counts_content_and_gaps() {
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n";
        // Events split across chunk boundaries must still parse.
        let mut scratch = Scratch::default();
        let read = read_stream(
            Api::OpenAi,
            &mut body(&[
                ROLE,
                TOKEN,
                &TOKEN[..20],
                &TOKEN[20..],
                TOKEN,
                usage,
                "data: [DONE]\n\n",
            ]),
            &mut scratch,
        )
        .await
        .expect("complete");
        assert_eq!(read.content_events, 3);
        assert_eq!(scratch.itl_us.len(), 2);
        assert_eq!(scratch.text, "toktoktok");
        assert!(read.first_content.is_some());
        assert_eq!(read.completion_tokens, Some(3));
        assert_eq!(read.prompt_tokens, Some(7));
    }

    #[tokio::test]
    async fn events_of_one_read_share_its_arrival_time() {
        let two = [TOKEN, TOKEN].concat().leak();
        let mut scratch = Scratch::default();
        let read = read_stream(
            Api::OpenAi,
            &mut body(&[ROLE, TOKEN, two, "data: [DONE]\n\n"]),
            &mut scratch,
        )
        .await
        .expect("complete");
        assert_eq!(read.content_events, 3);
        assert_eq!(read.burst_gaps, 1, "{:?}", scratch.itl_us);
        assert_eq!(scratch.itl_us[1], 0, "{:?}", scratch.itl_us);
    }

    #[tokio::test]
    async fn broken_and_malformed_streams_are_classified() {
        let mut scratch = Scratch::default();
        let cut = read_stream(Api::OpenAi, &mut body(&[ROLE, TOKEN]), &mut scratch).await;
        assert!(matches!(cut, Err((ErrorClass::StreamBroken, ref r)) if r.content_events == 1));
        let error =
            "data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\"}}\n\n";
        let errored = read_stream(Api::OpenAi, &mut body(&[TOKEN, error]), &mut scratch).await;
        assert!(matches!(errored, Err((ErrorClass::StreamBroken, _))));
        let garbage = read_stream(
            Api::OpenAi,
            &mut body(&[TOKEN, "data: {not json\n\n"]),
            &mut scratch,
        )
        .await;
        assert!(matches!(garbage, Err((ErrorClass::BadPayload, _))));
    }

    #[tokio::test]
    async fn anthropic_streams_count_text_deltas_and_usage() {
        let events = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        ];
        let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut scratch = Scratch::default();
        let mut whole = events.to_vec();
        whole.push(stop);
        let read = read_stream(Api::Anthropic, &mut body(&whole), &mut scratch)
            .await
            .expect("complete");
        assert_eq!(read.content_events, 2);
        assert_eq!(scratch.itl_us.len(), 1);
        assert_eq!(scratch.text, "Hello");
        assert_eq!(
            (read.prompt_tokens, read.completion_tokens),
            (Some(9), Some(2))
        );

        let mut scratch = Scratch::default();
        let cut = read_stream(Api::Anthropic, &mut body(&events), &mut scratch).await;
        assert!(matches!(cut, Err((ErrorClass::StreamBroken, ref r)) if r.content_events == 2));
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let errored =
            read_stream(Api::Anthropic, &mut body(&[events[0], error]), &mut scratch).await;
        assert!(matches!(errored, Err((ErrorClass::StreamBroken, _))));
        // An OpenAI stream read as Anthropic is not the wire format it claims.
        let wrong = read_stream(
            Api::Anthropic,
            &mut body(&["data: [DONE]\n\n"]),
            &mut scratch,
        )
        .await;
        assert!(matches!(wrong, Err((ErrorClass::BadPayload, _))));
    }
}
