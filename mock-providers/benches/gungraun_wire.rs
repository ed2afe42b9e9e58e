//! Instruction counts (callgrind) of the mock's per-request hot paths: the numbers the CI gate
//! compares with the merge-base (`--callgrind-limits='ir=5%'`). Counts, unlike wall time, do not
//! move with the machine's load, so a 5% limit catches real extra work and nothing else.
//! Needs valgrind and `gungraun-runner` of the same version as the library.

mod common;

use std::hint::black_box;

use bytes::Bytes;
use gungraun::{library_benchmark, library_benchmark_group, main};
use mock_providers::{ChatRequest, Completion, Provider};

fn body(provider: Provider) -> (Provider, Vec<u8>) {
    (provider, common::request_body(provider))
}

fn request_and_completion(provider: Provider, tokens: usize) -> (ChatRequest, Completion) {
    let request = common::request(provider);
    let completion = common::completion(&request, tokens);
    (request, completion)
}

fn request_and_tokens(provider: Provider, tokens: usize) -> (ChatRequest, usize) {
    (common::request(provider), tokens)
}

fn body_and_tokens(provider: Provider, tokens: usize) -> (Provider, Vec<u8>, usize) {
    (provider, common::request_body(provider), tokens)
}

// `ChatRequest::parse` of a ~1 KB streaming request.
#[library_benchmark]
#[bench::openai(args = (Provider::OpenAi), setup = body)]
#[bench::anthropic(args = (Provider::Anthropic), setup = body)]
fn parse((provider, body): (Provider, Vec<u8>)) -> ChatRequest {
    black_box(ChatRequest::parse(provider, black_box(&body)).expect("valid request"))
}

// `Completion::new`: the answer's id and tokens.
#[library_benchmark]
#[bench::openai_16(args = (Provider::OpenAi, 16), setup = request_and_tokens)]
#[bench::openai_256(args = (Provider::OpenAi, 256), setup = request_and_tokens)]
#[bench::anthropic_256(args = (Provider::Anthropic, 256), setup = request_and_tokens)]
fn completion((request, tokens): (ChatRequest, usize)) -> Completion {
    black_box(common::completion(black_box(&request), tokens))
}

// `Provider::stream_script` + `Script::into_parts`: the whole SSE body, cut into pieces.
#[library_benchmark]
#[bench::openai_16(args = (Provider::OpenAi, 16), setup = request_and_completion)]
#[bench::openai_256(args = (Provider::OpenAi, 256), setup = request_and_completion)]
#[bench::anthropic_16(args = (Provider::Anthropic, 16), setup = request_and_completion)]
#[bench::anthropic_256(args = (Provider::Anthropic, 256), setup = request_and_completion)]
fn sse_encode((request, completion): (ChatRequest, Completion)) -> (Bytes, Vec<usize>) {
    black_box(common::encode(&request, black_box(&completion)))
}

// All three in a row, as the server answers one streaming request.
#[library_benchmark]
#[bench::openai_256(args = (Provider::OpenAi, 256), setup = body_and_tokens)]
#[bench::anthropic_256(args = (Provider::Anthropic, 256), setup = body_and_tokens)]
fn answer((provider, body, tokens): (Provider, Vec<u8>, usize)) -> (Bytes, Vec<usize>) {
    black_box(common::answer(provider, black_box(&body), tokens))
}

library_benchmark_group!(name = request, benchmarks = [parse, completion]);
library_benchmark_group!(name = stream, benchmarks = [sse_encode, answer]);

main!(library_benchmark_groups = request, stream);
