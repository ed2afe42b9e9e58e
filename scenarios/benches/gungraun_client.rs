//! Instruction counts (callgrind) of the load generator's per-event path: one whole stream of
//! 200 content events read by `read_stream` (SSE split, each event's JSON, content and gap
//! bookkeeping), as the mock sends it, one read per piece the mock writes.
//!
//! At 1,000 concurrent streams and a 10 ms ITL this path runs 100,000 times a second on the
//! machine that also runs the target, so what it costs per event is what the harness takes
//! from the target. The stream's bytes are built by the setup (not counted) and handed over
//! already cut, as a socket would deliver them; the count is the reader's alone.
//! Needs valgrind and `gungraun-runner` of the same version as the library.

use std::hint::black_box;

use bytes::Bytes;
use futures::executor::block_on;
use gungraun::{library_benchmark, library_benchmark_group, main};
use mock_providers::{ChatRequest, Completion, Provider, StreamEnd};
use scenarios::client::stream::{StreamRead, read_stream};
use scenarios::client::{Api, Scratch};

/// Content events per stream.
const TOKENS: usize = 200;

/// The mock's stream for a short streaming request of `provider`, cut where the mock cuts it,
/// and a reader's buffers, warmed by one read of the same stream (a user's later requests find
/// their buffers grown).
fn stream(provider: Provider) -> (Api, Vec<Bytes>, Scratch) {
    let body = match provider {
        Provider::OpenAi => {
            r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story."}]}"#
        }
        Provider::Anthropic => {
            r#"{"model":"claude-3-5-haiku-latest","stream":true,"max_tokens":512,"messages":[{"role":"user","content":"Tell me a story."}]}"#
        }
    };
    let request =
        ChatRequest::parse(provider, body.as_bytes()).expect("the bench request is valid");
    let completion = Completion::new(&request, TOKENS, 1_767_225_600);
    let (bytes, cuts) = provider
        .stream_script(&completion, request.include_usage, StreamEnd::Complete)
        .into_parts();
    let mut start = 0;
    let reads: Vec<Bytes> = cuts
        .into_iter()
        .map(|end| {
            let piece = bytes.slice(start..end);
            start = end;
            piece
        })
        .collect();
    let api = match provider {
        Provider::OpenAi => Api::OpenAi,
        Provider::Anthropic => Api::Anthropic,
    };
    let mut scratch = Scratch::new();
    let warm = read(api, &reads, &mut scratch);
    assert_eq!(
        warm.content_events, TOKENS as u64,
        "the bench stream is read whole"
    );
    (api, reads, scratch)
}

fn read(api: Api, reads: &[Bytes], scratch: &mut Scratch) -> StreamRead {
    block_on(read_stream(api, &mut reads.iter(), scratch)).expect("the bench stream is complete")
}

// `read_stream` over one stream of 200 content events, one read per piece.
#[library_benchmark]
#[bench::openai(stream(Provider::OpenAi))]
#[bench::anthropic(stream(Provider::Anthropic))]
fn whole_stream((api, reads, mut scratch): (Api, Vec<Bytes>, Scratch)) -> (StreamRead, Scratch) {
    let read = read(api, black_box(&reads), &mut scratch);
    (black_box(read), scratch)
}

library_benchmark_group!(name = stream, benchmarks = [whole_stream]);

main!(library_benchmark_groups = stream);
