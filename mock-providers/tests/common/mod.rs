//! Test client helpers: start a mock, send requests, read SSE streams with timestamps.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Instant;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use mock_providers::{MockConfig, MockServer, Profile};
use serde_json::Value;

pub const CREATED: u64 = 1_700_000_000;

pub async fn start(profile: Profile) -> MockServer {
    MockServer::start(MockConfig {
        created: Some(CREATED),
        ..MockConfig::new(profile)
    })
    .await
    .expect("mock starts")
}

/// POSTs `body` as JSON to `path` on the mock.
pub async fn post(mock: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", mock.url()))
        .json(body)
        .send()
        .await
        .expect("request sent")
}

pub fn openai_request(stream: bool, include_usage: bool) -> Value {
    let mut body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise the gateway design in one line."}],
        "stream": stream,
    });
    if include_usage {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    body
}

pub fn anthropic_request(stream: bool) -> Value {
    serde_json::json!({
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Summarise the gateway design in one line."}],
        "stream": stream,
    })
}

/// One SSE event as a client saw it.
#[derive(Debug)]
pub struct Seen {
    pub event: String,
    pub data: String,
    pub at: Instant,
}

/// Reads a whole SSE response; `Err` carries the events before a transport or parse failure.
pub async fn read_events(response: reqwest::Response) -> Result<Vec<Seen>, (Vec<Seen>, String)> {
    let mut events = Vec::new();
    let mut stream = response.bytes_stream().eventsource();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(Seen {
                event: e.event,
                data: e.data,
                at: Instant::now(),
            }),
            Err(e) => return Err((events, e.to_string())),
        }
    }
    Ok(events)
}

/// Nearest-rank percentile of unsorted samples.
pub fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}
