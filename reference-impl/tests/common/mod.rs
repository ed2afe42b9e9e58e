//! Shared helpers: start a gateway in front of given upstreams, and build requests.

#![allow(dead_code)] // each test file uses a different subset

pub mod redis;

use std::time::Duration;

use reference_impl::config::RoutingConfig;
use reference_impl::{Gateway, GatewayConfig, GatewayHandle, ProviderConfig, ProviderKind};
use serde_json::{Value, json};

pub fn openai(name: &str, url: &str) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::OpenAi, url)
}

pub fn anthropic(name: &str, url: &str) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::Anthropic, url)
}

/// A gateway on an ephemeral loopback port with short timeouts, so failing tests end quickly.
pub async fn start(
    providers: Vec<ProviderConfig>,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> GatewayHandle {
    let mut config = GatewayConfig::with_providers(providers);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.routing = RoutingConfig {
        attempt_timeout_ms: 5_000,
        deadline_ms: 10_000,
        backoff_ms: 10,
        ..RoutingConfig::default()
    };
    tweak(&mut config);
    Gateway::start(config).await.expect("gateway starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "stream": stream,
    })
}

pub async fn post(gateway: &GatewayHandle, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// Joined `delta.content` of OpenAI chunks.
pub fn stream_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A plain connection to the Redis at `url`, for looking at what the gateway stored.
pub async fn redis_connection(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

/// The gateway's `/metrics` text, over a connection of its own so no idle pooled connection is
/// left behind to count as an open connection or a live task.
pub async fn metrics_text(gateway: &GatewayHandle) -> String {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/metrics", gateway.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the unlabelled series `name` in the gateway's `/metrics`.
pub async fn metric(gateway: &GatewayHandle, name: &str) -> f64 {
    metrics_text(gateway)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}
