//! The HTTP side of a transaction: send one request, read the whole response, classify it.

pub mod stream;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reports::model::ErrorClass;
use serde::Serialize;

use crate::recorder::CacheOutcome;
use crate::workload::Prompt;
use stream::read_stream;
use wire::{Body, ChatBody, EmbeddingsBody, Message, StreamOptions};

/// One request a transaction sends.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// `POST /v1/chat/completions`, streamed or not.
    Chat {
        model: &'a str,
        prompt: &'a Prompt,
        stream: bool,
    },
    /// `POST /v1/embeddings`.
    Embeddings { model: &'a str, input: &'a str },
    /// `GET /v1/models`.
    Models,
}

/// What came back, with the times the recorder needs.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub sent: Instant,
    pub first_content: Option<Instant>,
    pub finished: Instant,
    pub result: Result<(), ErrorClass>,
    pub status: Option<u16>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub overhead_us: Option<u64>,
    pub cache: Option<CacheOutcome>,
}

/// An HTTP client for one target or several (gateway replicas taken round-robin), shared by
/// every user of a run (one connection pool).
///
/// Straight hyper, the endpoints parsed once: the load generator shares the machine with what
/// it measures, so each request should cost it as little as possible.
#[derive(Clone, Debug)]
pub struct Client {
    http: Pool<HttpConnector, Full<Bytes>>,
    /// Never empty.
    targets: Arc<[Endpoints]>,
    /// Requests sent so far: the next one goes to `targets[turn % len]`.
    turn: Arc<AtomicUsize>,
    timeout: Duration,
}

/// The endpoints of one target, parsed once rather than per request.
#[derive(Debug)]
struct Endpoints {
    base: String,
    chat: Uri,
    embeddings: Uri,
    models: Uri,
}

impl Endpoints {
    fn new(base: &str) -> Result<Endpoints, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        let invalid = |why: &str| ClientError::Url {
            url: base.clone(),
            why: why.to_owned(),
        };
        let endpoint = |path: &str| {
            let uri = Uri::try_from(format!("{base}{path}"))
                .map_err(|_| invalid("expected http://HOST:PORT"))?;
            match (uri.scheme_str(), uri.host()) {
                (Some("http"), Some(_)) => Ok(uri),
                (Some("https"), _) => Err(invalid("https is not supported (no TLS): use http://")),
                _ => Err(invalid("expected http://HOST:PORT")),
            }
        };
        Ok(Endpoints {
            chat: endpoint("/v1/chat/completions")?,
            embeddings: endpoint("/v1/embeddings")?,
            models: endpoint("/v1/models")?,
            base,
        })
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid target URL `{url}`: {why}")]
    Url { url: String, why: String },
    #[error("no target URL given")]
    NoTarget,
}

impl Client {
    /// A client for `base` (scheme, host and port, no trailing path) where every request must
    /// complete within `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::round_robin(&[base], timeout)
    }

    /// A client that sends each request to the next of `bases` in turn (replicas of one
    /// gateway), every request completing within `timeout`.
    pub fn round_robin(
        bases: &[impl AsRef<str>],
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        if bases.is_empty() {
            return Err(ClientError::NoTarget);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let http = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let targets = bases
            .iter()
            .map(|base| Endpoints::new(base.as_ref()))
            .collect::<Result<Arc<[Endpoints]>, ClientError>>()?;
        Ok(Client {
            http,
            targets,
            turn: Arc::new(AtomicUsize::new(0)),
            timeout,
        })
    }

    /// The first target this client sends to.
    pub fn base(&self) -> &str {
        &self.targets[0].base
    }

    /// The target of the next request.
    fn next_target(&self) -> &Endpoints {
        match &*self.targets {
            [only] => only,
            targets => &targets[self.turn.fetch_add(1, Ordering::Relaxed) % targets.len()],
        }
    }

    /// Sends `call` and reads the response to its end. Never fails: every failure is a
    /// classified [`Reply`]. The request is abandoned (as a timeout) at the client timeout or at
    /// `deadline`, whichever comes first, so no run outlives its plan by more than that.
    pub async fn send(&self, call: Call<'_>, deadline: Instant, itl_us: &mut Vec<u32>) -> Reply {
        itl_us.clear();
        // The body is serialized before the clock starts: TTFT is the target's time, not ours.
        let request = self.request(call);
        let sent = Instant::now();
        let limit = deadline.min(sent + self.timeout);
        let mut reply = Reply {
            sent,
            first_content: None,
            finished: sent,
            result: Ok(()),
            status: None,
            input_tokens: 0,
            output_tokens: 0,
            overhead_us: None,
            cache: None,
        };
        let exchange = self.exchange(request, call, &mut reply, itl_us);
        let outcome = tokio::time::timeout_at(limit.into(), exchange).await;
        reply.finished = Instant::now();
        reply.result = match outcome {
            Ok(result) => result,
            Err(_) => Err(ErrorClass::Timeout),
        };
        reply
    }

    fn request(&self, call: Call<'_>) -> Request<Full<Bytes>> {
        let target = self.next_target();
        let (uri, body) = match call {
            Call::Chat {
                model,
                prompt,
                stream,
            } => {
                let body = ChatBody {
                    model,
                    messages: [
                        Message {
                            role: "system",
                            content: prompt.system,
                        },
                        Message {
                            role: "user",
                            content: &prompt.user,
                        },
                    ],
                    max_tokens: prompt.max_tokens,
                    temperature: prompt.temperature,
                    stream,
                    stream_options: stream.then_some(StreamOptions {
                        include_usage: true,
                    }),
                };
                (&target.chat, Some(json(&body)))
            }
            Call::Embeddings { model, input } => (
                &target.embeddings,
                Some(json(&EmbeddingsBody { model, input })),
            ),
            Call::Models => (&target.models, None),
        };
        let post = body.is_some();
        let mut request = Request::new(Full::new(body.unwrap_or_default()));
        *request.uri_mut() = uri.clone();
        if post {
            *request.method_mut() = Method::POST;
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        call: Call<'_>,
        reply: &mut Reply,
        itl_us: &mut Vec<u32>,
    ) -> Result<(), ErrorClass> {
        let response = self.http.request(request).await.map_err(classify)?;
        let status = response.status();
        reply.status = Some(status.as_u16());
        read_headers(response.headers(), reply);
        let streaming = matches!(call, Call::Chat { stream: true, .. });
        if status.is_success() && streaming {
            let body = BodyDataStream::new(response.into_body());
            let read = read_stream(body, itl_us).await;
            let (result, read) = match read {
                Ok(read) => (Ok(()), read),
                Err((class, read)) => (Err(class), read),
            };
            reply.first_content = read.first_content;
            reply.input_tokens = read.prompt_tokens.unwrap_or_default();
            reply.output_tokens = read.completion_tokens.unwrap_or(read.content_events);
            return result;
        }
        // Read error bodies too, so the connection goes back to the pool.
        let bytes = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) if e.is_timeout() => return Err(ErrorClass::Timeout),
            Err(_) => return Err(ErrorClass::StreamBroken),
        };
        status_class(status)?;
        let body: Body = serde_json::from_slice(&bytes).map_err(|_| ErrorClass::BadPayload)?;
        let expected = match call {
            Call::Chat { .. } => body.choices.is_some(),
            Call::Embeddings { .. } | Call::Models => body.data.is_some(),
        };
        if !expected {
            return Err(ErrorClass::BadPayload);
        }
        if let Some(usage) = body.usage {
            reply.input_tokens = usage.prompt_tokens;
            reply.output_tokens = usage.completion_tokens;
        }
        Ok(())
    }
}

fn read_headers(headers: &HeaderMap, reply: &mut Reply) {
    reply.overhead_us = headers
        .get("x-gateway-overhead-us")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    reply.cache = headers
        .get("x-cache")
        .and_then(|v| CacheOutcome::from_header(v.as_bytes()));
}

fn status_class(status: StatusCode) -> Result<(), ErrorClass> {
    if status.is_client_error() {
        Err(ErrorClass::Http4xx)
    } else if status.is_server_error() {
        Err(ErrorClass::Http5xx)
    } else if status.is_success() {
        Ok(())
    } else {
        Err(ErrorClass::BadPayload)
    }
}

/// The JSON of a request body: plain structs of strings and numbers, which always serialize.
fn json(body: &impl Serialize) -> Bytes {
    serde_json::to_vec(body)
        .expect("request bodies are plain structs")
        .into()
}

/// Errors before a response: no connection (or none in time), or a connection that broke.
/// (A request that takes too long is cut by the caller's deadline.)
fn classify(error: hyper_util::client::legacy::Error) -> ErrorClass {
    if error.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::StreamBroken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_the_targets_in_turn() {
        let client = Client::round_robin(
            &[
                "http://127.0.0.1:1",
                "http://127.0.0.1:2/",
                "http://127.0.0.1:3",
            ],
            Duration::from_secs(1),
        )
        .expect("valid targets");
        let clone = client.clone();
        let bases: Vec<&str> = (0..7)
            .map(|i| {
                // Clones share the turn: the rotation is per run, not per user.
                let client = if i % 2 == 0 { &client } else { &clone };
                client.next_target().base.as_str()
            })
            .collect();
        let [a, b, c] = [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ];
        assert_eq!(bases, [a, b, c, a, b, c, a]);
        assert_eq!(client.base(), a);
        let none: [&str; 0] = [];
        assert!(matches!(
            Client::round_robin(&none, Duration::from_secs(1)),
            Err(ClientError::NoTarget)
        ));
    }

    #[test]
    fn targets_must_be_plain_http_urls() {
        let error = |base: &str| {
            Client::new(base, Duration::from_secs(1))
                .expect_err(base)
                .to_string()
        };
        assert!(error("https://gw.example:443").contains("https is not supported"));
        assert!(error("127.0.0.1:8080").contains("expected http://HOST:PORT"));
        assert_eq!(
            error("http://bad host"),
            "invalid target URL `http://bad host`: expected http://HOST:PORT"
        );
        assert!(Client::new("http://[::1]:8080/", Duration::from_secs(1)).is_ok());
    }
}
