//! Reading an SSE body as it arrives: when content came, how many tokens, whether it ended well.

use std::time::Instant;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reports::model::ErrorClass;

use super::wire::Chunk;

/// What a stream delivered.
#[derive(Debug, Default)]
pub struct StreamRead {
    pub first_content: Option<Instant>,
    /// Content events seen; the token count when the stream reports no usage.
    pub content_events: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// Reads an OpenAI chat stream to its end, pushing the gap before every content event after the
/// first into `itl_us`.
///
/// A stream is complete only with `data: [DONE]`; ending without it, an error object or a
/// transport error mid-body is [`ErrorClass::StreamBroken`], a chunk that is not JSON is
/// [`ErrorClass::BadPayload`].
pub async fn read_stream<S, B, E>(
    body: S,
    itl_us: &mut Vec<u32>,
) -> Result<StreamRead, (ErrorClass, StreamRead)>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: IsTimeout,
{
    let mut read = StreamRead::default();
    let mut last_content: Option<Instant> = None;
    let mut events = std::pin::pin!(body.eventsource());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(eventsource_stream::EventStreamError::Transport(e)) if e.is_timeout() => {
                return Err((ErrorClass::Timeout, read));
            }
            Err(eventsource_stream::EventStreamError::Utf8(_))
            | Err(eventsource_stream::EventStreamError::Parser(_)) => {
                return Err((ErrorClass::BadPayload, read));
            }
            Err(eventsource_stream::EventStreamError::Transport(_)) => {
                return Err((ErrorClass::StreamBroken, read));
            }
        };
        if event.data == "[DONE]" {
            return Ok(read);
        }
        let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) else {
            return Err((ErrorClass::BadPayload, read));
        };
        if chunk.error.is_some() {
            return Err((ErrorClass::StreamBroken, read));
        }
        if let Some(usage) = chunk.usage {
            read.prompt_tokens = Some(usage.prompt_tokens);
            read.completion_tokens = Some(usage.completion_tokens);
        }
        if chunk.has_content() {
            let now = Instant::now();
            match last_content {
                None => read.first_content = Some(now),
                Some(previous) => itl_us.push(
                    u32::try_from(now.duration_since(previous).as_micros()).unwrap_or(u32::MAX),
                ),
            }
            last_content = Some(now);
            read.content_events += 1;
        }
    }
    Err((ErrorClass::StreamBroken, read))
}

/// Whether a transport error is a timeout; lets the parser run over any byte stream in tests.
pub trait IsTimeout {
    fn is_timeout(&self) -> bool;
}

impl IsTimeout for hyper::Error {
    fn is_timeout(&self) -> bool {
        hyper::Error::is_timeout(self)
    }
}

impl IsTimeout for std::io::Error {
    fn is_timeout(&self) -> bool {
        self.kind() == std::io::ErrorKind::TimedOut
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn body(parts: &[&'static str]) -> impl Stream<Item = Result<&'static [u8], std::io::Error>> {
        stream::iter(parts.iter().map(|p| Ok(p.as_bytes())).collect::<Vec<_>>())
    }

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const TOKEN: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"}}]}\n\n";

    #[tokio::test]
    async fn complete_stream_counts_content_and_gaps() {
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n";
        // Events split across chunk boundaries must still parse.
        let mut itl = Vec::new();
        let read = read_stream(
            body(&[
                ROLE,
                TOKEN,
                &TOKEN[..20],
                &TOKEN[20..],
                TOKEN,
                usage,
                "data: [DONE]\n\n",
            ]),
            &mut itl,
        )
        .await
        .expect("complete");
        assert_eq!(read.content_events, 3);
        assert_eq!(itl.len(), 2);
        assert!(read.first_content.is_some());
        assert_eq!(read.completion_tokens, Some(3));
        assert_eq!(read.prompt_tokens, Some(7));
    }

    #[tokio::test]
    async fn broken_and_malformed_streams_are_classified() {
        let mut itl = Vec::new();
        let cut = read_stream(body(&[ROLE, TOKEN]), &mut itl).await;
        assert!(matches!(cut, Err((ErrorClass::StreamBroken, ref r)) if r.content_events == 1));
        let error =
            "data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\"}}\n\n";
        let errored = read_stream(body(&[TOKEN, error]), &mut itl).await;
        assert!(matches!(errored, Err((ErrorClass::StreamBroken, _))));
        let garbage = read_stream(body(&[TOKEN, "data: {not json\n\n"]), &mut itl).await;
        assert!(matches!(garbage, Err((ErrorClass::BadPayload, _))));
    }
}
