//! The inputs both bench harnesses feed the mock's hot paths: one realistic chat request per
//! provider, and the three steps the server takes for each request (parse, build the
//! completion, encode the SSE stream).

use bytes::Bytes;
use mock_providers::{ChatRequest, Completion, Provider, StreamEnd};

/// A streaming chat request with a system prompt and a short conversation (about 1 KB).
pub fn request_body(provider: Provider) -> Vec<u8> {
    let turns = r#"{"role":"user","content":"Summarise the incident report below in three bullet points, naming the service, the cause and the fix. The gateway returned 503 for twelve minutes after a deploy because the connection pool to the upstream provider was sized for the old replica count."},{"role":"assistant","content":"- Service: the LLM gateway.\n- Cause: an undersized upstream connection pool after a deploy.\n- Fix: size the pool from the replica count at start-up."},{"role":"user","content":"Now write the same as one sentence for the status page."}"#;
    let system = "You are a concise assistant for an operations team.";
    match provider {
        Provider::OpenAi => format!(
            r#"{{"model":"gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}},"max_tokens":512,"temperature":0.2,"messages":[{{"role":"system","content":"{system}"}},{turns}]}}"#
        ),
        Provider::Anthropic => format!(
            r#"{{"model":"claude-3-5-haiku-latest","stream":true,"max_tokens":512,"system":"{system}","messages":[{turns}]}}"#
        ),
    }
    .into_bytes()
}

/// The parsed request, ready for the later steps.
pub fn request(provider: Provider) -> ChatRequest {
    ChatRequest::parse(provider, &request_body(provider)).expect("the bench request is valid")
}

/// The completion of `request` with `tokens` output tokens.
pub fn completion(request: &ChatRequest, tokens: usize) -> Completion {
    Completion::new(request, tokens, 1_767_225_600)
}

/// The SSE body and its piece boundaries, as the server streams them.
pub fn encode(request: &ChatRequest, completion: &Completion) -> (Bytes, Vec<usize>) {
    request
        .provider
        .stream_script(completion, request.include_usage, StreamEnd::Complete)
        .into_parts()
}

/// Everything the server does for one streaming request before the first byte goes out.
pub fn answer(provider: Provider, body: &[u8], tokens: usize) -> (Bytes, Vec<usize>) {
    let request = ChatRequest::parse(provider, body).expect("the bench request is valid");
    let completion = completion(&request, tokens);
    encode(&request, &completion)
}
