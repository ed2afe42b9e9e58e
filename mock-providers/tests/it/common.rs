//! Test client helpers: start a mock, send requests, read SSE streams with timestamps.

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

/// Every request a test sends gives up after this long, so a hung server fails the test.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTPS client on hyper-util and rustls (aws-lc-rs) that trusts only `pem` (nothing when
/// `None`) and speaks only `version` (HTTP/1.1 or HTTP/2, offered by ALPN).
pub fn https_client(
    pem: Option<&str>,
    version: http::Version,
) -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots
                .add(cert.expect("PEM parses"))
                .expect("certificate accepted as a root");
        }
        assert!(!roots.is_empty(), "no certificate in the PEM");
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let mut client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    if version == http::Version::HTTP_2 {
        client.http2_only(true);
        client.build(builder.enable_http2().build())
    } else {
        client.build(builder.enable_http1().build())
    }
}

/// What a test needs of a response read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Sends `request` with `client` and reads the whole body, bounded by [`REQUEST_TIMEOUT`].
pub async fn exchange<C>(
    client: &hyper_util::client::legacy::Client<C, http_body_util::Full<bytes::Bytes>>,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<Answer, hyper_util::client::legacy::Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    use http_body_util::BodyExt;
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        })
    })
    .await
    .expect("answered in time")
}

/// A JSON `POST` to `url` with extra `headers`.
pub fn json_post(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = http::Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("valid request")
}
