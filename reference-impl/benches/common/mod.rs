//! Inputs shared by the wall-clock benches and their instruction-count twins, so both measure
//! the same bytes.

/// A non-streamed chat completion, as the mock answers and the cache stores it.
pub const COMPLETION: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"A short cached answer of a few words."},"finish_reason":"stop"}],"usage":{"prompt_tokens":230,"completion_tokens":9,"total_tokens":239}}"#;

/// A realistic chat request of about 1 KiB, distinct per `n`, from `user` (not part of the
/// cache key: another user sends other bytes that key the same).
pub fn request_body(n: u64, user: u64, stream: bool) -> Vec<u8> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "max_tokens": 256,
        "top_p": 1,
        "user": format!("bench-user-{user:08}"),
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a concise assistant that answers questions about distributed systems, networking and databases. Prefer short, precise answers and cite the relevant concept by name. Keep answers under two hundred words unless asked for more detail, and use plain text without any markdown formatting."},
            {"role": "user", "content": "Explain the difference between a token bucket and a leaky bucket rate limiter, and when GCRA is preferable to either of them in a gateway."},
            {"role": "assistant", "content": "Both shape traffic. A token bucket allows bursts up to its capacity and refills at a fixed rate; a leaky bucket smooths output to a constant rate. GCRA is a token bucket expressed as one timestamp."},
            {"role": "user", "content": format!("Question {n}: and how would you share such a limit between several gateway replicas without read-then-write races, keeping the hot path fast and the failure mode safe?")}
        ]
    });
    serde_json::to_vec(&body).expect("serialize")
}
