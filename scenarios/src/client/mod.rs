//! The HTTP side of a transaction: send one request, read the whole response, classify it.
//!
//! One client serves every user of a run: OpenAI- or Anthropic-style targets over `http://` or
//! `https://` (HTTP/2 where the server offers it through ALPN), with the run's headers and key.
//! Each user sends on connections of its own, which its task drives (`conn`).

mod anthropic;
mod conn;
mod h1;
mod options;
mod sse;
pub mod stream;
pub(crate) mod tls;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use reports::model::ErrorClass;
use serde::Serialize;

use crate::recorder::Reply;
use crate::tokens;
use crate::workload::Prompt;
use conn::{ConnectError, Connector, Head, Link, LinkError, Links, SendError};
pub use options::{
    ANTHROPIC_VERSION, Api, CacheHeader, ClientOptions, HeaderError, Verify, header, parse_header,
};
use sse::Sse;
use stream::{IsTimeout, read_stream};
use wire::{Body, ChatBody, EmbeddingsBody, Shape, StreamOptions};

/// One request a transaction sends.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// A chat completion, streamed or not: `POST /v1/chat/completions` (OpenAI style) or
    /// `POST /v1/messages` (Anthropic style).
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

/// Buffers one user reuses from request to request, so reading a response allocates nothing
/// in the common case.
#[derive(Clone, Debug)]
pub struct Scratch {
    /// Gaps between consecutive content events of the last stream, in microseconds.
    pub itl_us: Vec<u32>,
    /// The generated text of the last response, counted by the tokenizer when the target sends
    /// no usage.
    text: String,
    /// The SSE splitter's buffers.
    sse: Sse,
    /// The last chunk of the usual shape, against which the next is compared.
    shape: Shape,
    /// The user's connections, one per target.
    links: Links,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            itl_us: Vec::with_capacity(1024),
            text: String::with_capacity(4096),
            sse: Sse::default(),
            shape: Shape::default(),
            links: Links::default(),
        }
    }

    fn clear(&mut self) {
        self.itl_us.clear();
        self.text.clear();
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

/// An HTTP client for one target or several (gateway replicas taken round-robin), shared by
/// every user of a run; each user's [`Scratch`] holds its connections.
///
/// Its own HTTP/1.1 and hyper's HTTP/2, the endpoints parsed once and the headers built once:
/// the load generator shares the machine with what it measures, so each request and each
/// event should cost it as little as possible.
#[derive(Clone, Debug)]
pub struct Client {
    connector: Connector,
    /// Never empty.
    targets: Arc<[Endpoints]>,
    /// Requests sent so far: the next one goes to `targets[turn % len]`.
    turn: Arc<AtomicUsize>,
    options: Arc<ClientOptions>,
    /// Sent with every request.
    headers: Arc<HeaderMap>,
}

/// The endpoints of one target, parsed once rather than per request.
#[derive(Debug)]
struct Endpoints {
    base: String,
    /// `/v1/chat/completions` or `/v1/messages`, by the API.
    chat: Endpoint,
    embeddings: Endpoint,
    models: Endpoint,
    /// The `host` header of an HTTP/1.1 request.
    host: HeaderValue,
}

/// A request ready to go, but for the form of its URL, which waits for the connection's
/// protocol ([`aim`]).
struct Outgoing<'c> {
    /// The index of its target.
    target: usize,
    endpoint: &'c Endpoint,
    request: Request<Bytes>,
}

/// One URL in both of the forms a request may name it in.
#[derive(Debug)]
struct Endpoint {
    /// `scheme://authority/path`: how an HTTP/2 request names it, and what is connected to.
    absolute: Uri,
    /// `/path`: how an HTTP/1.1 request names it.
    origin: Uri,
}

impl Endpoint {
    fn new(absolute: Uri) -> Endpoint {
        let path = absolute.path_and_query().cloned();
        let origin = Uri::from(path.unwrap_or_else(|| PathAndQuery::from_static("/")));
        Endpoint { absolute, origin }
    }

    /// Where a redirect from this endpoint points (`location` absolute or a path), when that is
    /// on the same scheme and authority: a scrape carries the run's key and headers, so it
    /// follows no redirect to another server.
    fn redirected(&self, headers: &HeaderMap) -> Option<Endpoint> {
        let location = headers.get(LOCATION)?.to_str().ok()?;
        let to = Uri::try_from(location).ok()?;
        let to = if to.authority().is_some() {
            to
        } else if location.starts_with('/') {
            let mut parts = self.absolute.clone().into_parts();
            parts.path_and_query = to.path_and_query().cloned();
            Uri::from_parts(parts).ok()?
        } else {
            return None;
        };
        let same =
            (to.scheme(), to.authority()) == (self.absolute.scheme(), self.absolute.authority());
        same.then(|| Endpoint::new(to))
    }
}

impl Endpoints {
    /// `base` is what precedes `/v1/...`: scheme, host, port and an optional path prefix
    /// (`http://host:8787/openai`).
    fn new(base: &str, api: Api) -> Result<Endpoints, ClientError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        let invalid = || ClientError::Url {
            url: base.clone(),
            why: "expected http(s)://HOST[:PORT][/PREFIX]".to_owned(),
        };
        let endpoint = |path: &str| {
            let absolute = Uri::try_from(format!("{base}{path}")).map_err(|_| invalid())?;
            match (absolute.scheme_str(), absolute.host()) {
                (Some("http" | "https"), Some(_)) => Ok(Endpoint::new(absolute)),
                _ => Err(invalid()),
            }
        };
        let models = endpoint("/v1/models")?;
        let host = models
            .absolute
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            .ok_or_else(invalid)?;
        Ok(Endpoints {
            chat: endpoint(match api {
                Api::OpenAi => "/v1/chat/completions",
                Api::Anthropic => "/v1/messages",
            })?,
            embeddings: endpoint("/v1/embeddings")?,
            models,
            host,
            base,
        })
    }
}

/// The client could not be built, or its target cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid target URL `{url}`: {why}")]
    Url { url: String, why: String },
    #[error("no target URL given")]
    NoTarget,
    #[error("ca_cert {}: {why}", path.display())]
    CaCert {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot reach target {url}: {why}")]
    Unreachable { url: String, why: String },
}

/// Longest wait for a preflight connection.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redirects a fetch follows: one, enough for a path that moved (`/metrics` to `/metrics/`).
const FETCH_REDIRECTS: usize = 1;

impl Client {
    /// A client that sends each request to the next of `bases` in turn (replicas of one
    /// gateway; one base is the usual case).
    pub fn new(bases: &[impl AsRef<str>], options: ClientOptions) -> Result<Client, ClientError> {
        if bases.is_empty() {
            return Err(ClientError::NoTarget);
        }
        let targets = bases
            .iter()
            .map(|base| Endpoints::new(base.as_ref(), options.api))
            .collect::<Result<Arc<[Endpoints]>, ClientError>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        // Plain http:// targets go through the same connector without TLS.
        connector.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::config(&options.verify)?)
            .https_or_http();
        let connector = if options.http1_only {
            tls.enable_http1().wrap_connector(connector)
        } else {
            tls.enable_http1().enable_http2().wrap_connector(connector)
        };
        Ok(Client {
            connector,
            targets,
            turn: Arc::new(AtomicUsize::new(0)),
            headers: Arc::new(options.request_headers()),
            options: Arc::new(options),
        })
    }

    /// A client for one `base` with default options and `timeout`: OpenAI style, no headers.
    pub fn plain(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::new(&[base], ClientOptions::new(timeout))
    }

    /// The first target this client sends to.
    pub fn base(&self) -> &str {
        &self.targets[0].base
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Connects to every target once (TCP and, for `https://`, the TLS handshake) and asks for
    /// its models list, so a target that cannot be reached fails the run at once with one line
    /// naming it and the reason, instead of every request failing. Any HTTP answer will do.
    pub async fn preflight(&self) -> Result<(), ClientError> {
        for (index, target) in self.targets.iter().enumerate() {
            let get = self.get(None, index, &target.models);
            let why = match tokio::time::timeout(PREFLIGHT_TIMEOUT, get).await {
                Ok(Ok(_)) => continue,
                Ok(Err(why)) => why,
                Err(_) => format!("no answer within {}s", PREFLIGHT_TIMEOUT.as_secs()),
            };
            return Err(ClientError::Unreachable {
                url: target.base.clone(),
                why,
            });
        }
        Ok(())
    }

    /// The body of `GET {base}{path}` from the first target, with the run's headers, if it
    /// answers 2xx within `timeout` (the sampler's `/metrics`), on `scratch`'s connection to it,
    /// which is kept for the next fetch. One redirect to the same target is followed, as
    /// Prometheus's scraper does: LiteLLM's `/metrics` answers 307 to `/metrics/`.
    pub async fn fetch(
        &self,
        path: &str,
        timeout: Duration,
        scratch: &mut Scratch,
    ) -> Option<Bytes> {
        let mut endpoint = Endpoint::new(Uri::try_from(format!("{}{path}", self.base())).ok()?);
        let fetch = async {
            for _ in 0..=FETCH_REDIRECTS {
                let kept = scratch.links.take(0).await;
                let (link, head, body) = self.get(kept, 0, &endpoint).await.ok()?;
                scratch.links.keep(0, link);
                if head.status.is_success() {
                    return Some(body);
                }
                if !head.status.is_redirection() {
                    return None;
                }
                endpoint = endpoint.redirected(&head.headers)?;
            }
            None
        };
        tokio::time::timeout(timeout, fetch).await.ok().flatten()
    }

    /// `GET` of `endpoint` on `kept` or a new connection to target `target`, read to its end:
    /// the connection, the response head and the body, or one line saying why there is none.
    async fn get(
        &self,
        kept: Option<Link>,
        target: usize,
        endpoint: &Endpoint,
    ) -> Result<(Link, Head, Bytes), String> {
        let outgoing = Outgoing {
            target,
            endpoint,
            request: self.bare_request(None),
        };
        let (mut link, head) = self
            .send_on(kept, outgoing)
            .await
            .map_err(|e| e.describe())?;
        let body = link.collect().await.map_err(|e| describe(&e))?;
        Ok((link, head, body))
    }

    /// The index of the target of the next request.
    fn next_target(&self) -> usize {
        match self.targets.len() {
            1 => 0,
            n => self.turn.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// Sends `call` and reads the response to its end. Never fails: every failure is a
    /// classified [`Reply`]. The request is abandoned (as a timeout) at the client timeout or at
    /// `deadline`, whichever comes first, so no run outlives its plan by more than that.
    pub async fn send(&self, call: Call<'_>, deadline: Instant, scratch: &mut Scratch) -> Reply {
        scratch.clear();
        let index = self.next_target();
        // The connection is made ready and the body serialized before the clock starts: TTFT is
        // the target's time, not ours.
        let kept = scratch.links.take(index).await;
        let outgoing = self.request(index, call);
        let sent = Instant::now();
        let limit = deadline.min(sent + self.options.timeout);
        let mut reply = Reply::sent_at(sent);
        let exchange = self.exchange(kept, outgoing, call, &mut reply, scratch);
        let outcome = tokio::time::timeout_at(limit.into(), exchange).await;
        reply.finished = Instant::now();
        reply.result = match outcome {
            Ok(result) => result,
            Err(_) => Err(ErrorClass::Timeout),
        };
        reply
    }

    /// A request with the run's headers, and `body` as JSON when there is one; [`aim`] gives it
    /// its URL once the connection is known.
    fn bare_request(&self, body: Option<Bytes>) -> Request<Bytes> {
        let Some(body) = body else {
            let mut request = Request::new(Bytes::new());
            request.headers_mut().clone_from(&self.headers);
            return request;
        };
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    fn request(&self, target: usize, call: Call<'_>) -> Outgoing<'_> {
        let endpoints = &self.targets[target];
        let (endpoint, body) = match call {
            Call::Chat {
                model,
                prompt,
                stream,
            } => (&endpoints.chat, Some(self.chat_body(model, prompt, stream))),
            Call::Embeddings { model, input } => (
                &endpoints.embeddings,
                Some(json(&EmbeddingsBody { model, input }, input.len())),
            ),
            Call::Models => (&endpoints.models, None),
        };
        Outgoing {
            target,
            endpoint,
            request: self.bare_request(body),
        }
    }

    /// The body of a chat request in the client's API.
    pub(crate) fn chat_body(&self, model: &str, prompt: &Prompt, stream: bool) -> Bytes {
        let text = prompt.messages.iter().map(|m| m.content.len()).sum();
        match self.options.api {
            Api::OpenAi => json(
                &ChatBody {
                    model,
                    messages: &prompt.messages,
                    max_tokens: prompt.max_tokens,
                    temperature: prompt.temperature,
                    stream,
                    stream_options: stream.then_some(StreamOptions {
                        include_usage: true,
                    }),
                },
                text,
            ),
            Api::Anthropic => json(
                &anthropic::MessagesBody::new(
                    model,
                    &prompt.messages,
                    prompt.max_tokens,
                    prompt.temperature,
                    stream,
                ),
                text,
            ),
        }
    }

    /// Sends `outgoing` on `kept` or a new connection and reads its answer; the connection is
    /// kept for the user's next request when the answer was read to its end.
    async fn exchange(
        &self,
        kept: Option<Link>,
        outgoing: Outgoing<'_>,
        call: Call<'_>,
        reply: &mut Reply,
        scratch: &mut Scratch,
    ) -> Result<(), ErrorClass> {
        let index = outgoing.target;
        let (mut link, head) = self.send_on(kept, outgoing).await.map_err(|e| e.class())?;
        let status = head.status;
        reply.status = Some(status.as_u16());
        self.read_headers(&head.headers, reply);
        let streaming = matches!(call, Call::Chat { stream: true, .. });
        let mut usage = (None, None);
        let result = if status.is_success() && streaming {
            let read = read_stream(self.options.api, &mut link, scratch).await;
            let (result, read) = match read {
                Ok(read) => {
                    scratch.links.keep(index, link);
                    (Ok(()), read)
                }
                Err((class, read)) => (Err(class), read),
            };
            reply.first_content = read.first_content;
            reply.burst_gaps = read.burst_gaps;
            usage = (read.prompt_tokens, read.completion_tokens);
            result
        } else {
            // Read error bodies too, so the connection can carry the next request.
            let bytes = match link.collect().await {
                Ok(body) => body,
                Err(e) if e.is_timeout() => return Err(ErrorClass::Timeout),
                Err(_) => return Err(ErrorClass::StreamBroken),
            };
            scratch.links.keep(index, link);
            status_class(status)?;
            self.read_body(&bytes, call, scratch, &mut usage)
        };
        if let Call::Chat { prompt, .. } = call {
            count_tokens(prompt, usage, scratch, reply);
        }
        result
    }

    /// Sends `outgoing` on `kept`, the user's open connection to its target, or on a new one
    /// when there is none or it closed before the request could go (an idle connection the
    /// target had just closed).
    async fn send_on(
        &self,
        kept: Option<Link>,
        outgoing: Outgoing<'_>,
    ) -> Result<(Link, Head), NoAnswer> {
        let Outgoing {
            target,
            endpoint,
            mut request,
        } = outgoing;
        let target = &self.targets[target];
        if let Some(mut link) = kept {
            aim(&mut request, target, endpoint, link.is_http2());
            match link.send(request).await {
                Ok(response) => return Ok((link, response)),
                Err(SendError::Unsent(unsent)) => request = *unsent,
                Err(SendError::Failed(error)) => return Err(NoAnswer::Broken(Some(error))),
            }
        }
        // Opening is the largest future of a request by far (a TLS and an HTTP/2 handshake),
        // and a user's connection is opened once: on the heap, it no longer sizes the future of
        // every request, which is moved into a box per request and copied whole.
        let mut link = Box::pin(Link::open(&self.connector, &endpoint.absolute))
            .await
            .map_err(NoAnswer::Connect)?;
        aim(&mut request, target, endpoint, link.is_http2());
        match link.send(request).await {
            Ok(response) => Ok((link, response)),
            Err(SendError::Unsent(_)) => Err(NoAnswer::Broken(None)),
            Err(SendError::Failed(error)) => Err(NoAnswer::Broken(Some(error))),
        }
    }

    /// Checks a non-streamed body is what the route returns, and takes its usage and text.
    fn read_body(
        &self,
        bytes: &[u8],
        call: Call<'_>,
        scratch: &mut Scratch,
        usage: &mut (Option<u64>, Option<u64>),
    ) -> Result<(), ErrorClass> {
        let bad = |_| ErrorClass::BadPayload;
        match (call, self.options.api) {
            (Call::Chat { .. }, Api::Anthropic) => {
                let body: anthropic::Response<'_> = serde_json::from_slice(bytes).map_err(bad)?;
                let content = body.content.ok_or(ErrorClass::BadPayload)?;
                for text in content.iter().filter_map(|block| block.text.as_deref()) {
                    scratch.text.push_str(text);
                }
                let counts = body.usage.unwrap_or_default();
                *usage = (counts.input_tokens, counts.output_tokens);
            }
            (call, Api::OpenAi | Api::Anthropic) => {
                let body: Body<'_> = serde_json::from_slice(bytes).map_err(bad)?;
                match (call, &body.choices) {
                    (Call::Chat { .. }, Some(choices)) => {
                        let texts = choices.iter().filter_map(|c| c.message.as_ref());
                        for text in texts.filter_map(|m| m.content.as_deref()) {
                            scratch.text.push_str(text);
                        }
                    }
                    (Call::Chat { .. }, None) => return Err(ErrorClass::BadPayload),
                    (Call::Embeddings { .. } | Call::Models, _) if body.data.is_none() => {
                        return Err(ErrorClass::BadPayload);
                    }
                    (Call::Embeddings { .. } | Call::Models, _) => {}
                }
                if let Some(counts) = body.usage {
                    *usage = (Some(counts.prompt_tokens), Some(counts.completion_tokens));
                }
            }
        }
        Ok(())
    }

    fn read_headers(&self, headers: &HeaderMap, reply: &mut Reply) {
        reply.overhead_us = headers
            .get("x-gateway-overhead-us")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        reply.cache = self.options.cache_header.read(headers);
    }
}

/// Token counts as the target reported them in `usage` (input, output), or else as the
/// tokenizer counts the prompt and the generated text.
fn count_tokens(
    prompt: &Prompt,
    usage: (Option<u64>, Option<u64>),
    scratch: &Scratch,
    reply: &mut Reply,
) {
    reply.tokens_counted = usage.1.is_none() && !scratch.text.is_empty();
    reply.output_tokens = usage.1.unwrap_or_else(|| tokens::count(&scratch.text));
    reply.input_tokens = usage.0.unwrap_or_else(|| {
        if !reply.tokens_counted {
            return 0;
        }
        prompt
            .messages
            .iter()
            .map(|m| tokens::count(&m.content))
            .sum()
    });
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
/// It is written into a buffer sized for `text` bytes of strings and the fields around them,
/// so writing it does not grow the buffer on the way.
fn json(body: &impl Serialize, text: usize) -> Bytes {
    let mut out = Vec::with_capacity(text + 256);
    serde_json::to_writer(&mut out, body).expect("request bodies are plain structs");
    out.into()
}

/// Names `endpoint` in `request` as the connection's protocol wants: the whole URL over
/// HTTP/2, the path and a `host` header (unless the run sets its own) over HTTP/1.1.
fn aim(request: &mut Request<Bytes>, target: &Endpoints, endpoint: &Endpoint, http2: bool) {
    if http2 {
        *request.uri_mut() = endpoint.absolute.clone();
        return;
    }
    *request.uri_mut() = endpoint.origin.clone();
    if !request.headers().contains_key(HOST) {
        request.headers_mut().insert(HOST, target.host.clone());
    }
}

/// Why a request got no response head.
enum NoAnswer {
    /// No connection could be opened (or none in time), or its TLS handshake failed.
    Connect(ConnectError),
    /// The connection broke with the request on it, or (`None`) a new connection closed
    /// before the request could be written.
    Broken(Option<LinkError>),
}

impl NoAnswer {
    fn class(&self) -> ErrorClass {
        match self {
            NoAnswer::Connect(error) if tls::tls_failure(&**error).is_some() => ErrorClass::Tls,
            NoAnswer::Connect(_) => ErrorClass::Connect,
            NoAnswer::Broken(_) => ErrorClass::StreamBroken,
        }
    }

    fn describe(&self) -> String {
        match self {
            NoAnswer::Connect(error) => describe(&**error),
            NoAnswer::Broken(Some(error)) => describe(error),
            NoAnswer::Broken(None) => {
                "the connection closed before the request was sent".to_owned()
            }
        }
    }
}

/// One line saying why a request got no response: the TLS failure when there is one, else the
/// innermost cause (`connection refused`, ...).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(tls) = tls::tls_failure(error) {
        return format!("TLS handshake failed: {tls}");
    }
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_follows_redirects_on_its_own_target_only() {
        let from = Endpoint::new(Uri::from_static("http://127.0.0.1:4000/metrics"));
        let to = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
            from.redirected(&headers).map(|e| e.absolute.to_string())
        };
        assert_eq!(
            to("http://127.0.0.1:4000/metrics/").as_deref(),
            Some("http://127.0.0.1:4000/metrics/")
        );
        assert_eq!(
            to("/metrics/?x=1").as_deref(),
            Some("http://127.0.0.1:4000/metrics/?x=1")
        );
        assert_eq!(to("http://127.0.0.1:4001/metrics/"), None);
        assert_eq!(to("https://127.0.0.1:4000/metrics/"), None);
        assert_eq!(to("metrics/"), None);
        assert_eq!(from.redirected(&HeaderMap::new()).map(|_| ()), None);
    }

    #[test]
    fn requests_take_the_targets_in_turn() {
        let client = Client::new(
            &[
                "http://127.0.0.1:1",
                "http://127.0.0.1:2/",
                "http://127.0.0.1:3",
            ],
            ClientOptions::new(Duration::from_secs(1)),
        )
        .expect("valid targets");
        let clone = client.clone();
        let bases: Vec<&str> = (0..7)
            .map(|i| {
                // Clones share the turn: the rotation is per run, not per user.
                let client = if i % 2 == 0 { &client } else { &clone };
                client.targets[client.next_target()].base.as_str()
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
            Client::new(&none, ClientOptions::new(Duration::from_secs(1))),
            Err(ClientError::NoTarget)
        ));
    }

    #[test]
    fn targets_are_http_or_https_with_an_optional_prefix() {
        let error = |base: &str| {
            Client::plain(base, Duration::from_secs(1))
                .expect_err(base)
                .to_string()
        };
        assert!(error("127.0.0.1:8080").contains("expected http(s)://"));
        assert!(error("ftp://host:21").contains("expected http(s)://"));
        assert_eq!(
            error("http://bad host"),
            "invalid target URL `http://bad host`: expected http(s)://HOST[:PORT][/PREFIX]"
        );
        assert!(Client::plain("http://[::1]:8080/", Duration::from_secs(1)).is_ok());
        let prefixed = Client::plain("https://gw.example/openai/", Duration::from_secs(1))
            .expect("a prefix is allowed");
        assert_eq!(
            prefixed.targets[0].chat.absolute.to_string(),
            "https://gw.example/openai/v1/chat/completions"
        );
        let anthropic = Client::new(
            &["http://127.0.0.1:9"],
            ClientOptions {
                api: Api::Anthropic,
                ..ClientOptions::new(Duration::from_secs(1))
            },
        )
        .expect("valid");
        assert_eq!(anthropic.targets[0].chat.origin, "/v1/messages");
    }
}
