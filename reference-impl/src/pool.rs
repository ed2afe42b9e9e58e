//! One pooled HTTP client per provider, and the counters that show how well the pool works.
//!
//! The client is hyper-util's pooling client straight over hyper, with nothing between the
//! request path and the connection: no URL parsing per request (the endpoint is a parsed
//! [`Uri`] built at startup), no redirect or retry layers (the router decides retries). A
//! counting connector sees every new connection, so `connections_opened / requests` shows
//! whether the pool is reusing connections (near 0) or churning them (near 1).
//!
//! `https://` upstreams are reached over rustls (aws-lc-rs), trusting the bundled web PKI roots
//! and the provider's `pool.ca_file`; HTTP/2 is negotiated by ALPN there, and spoken with prior
//! knowledge over `http://`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;

use crate::config::PoolConfig;
use crate::limits;
use crate::metrics::{Gauge, GaugeGuard};

/// Counters of one provider's connection pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// TCP connections established (each one a pool miss).
    pub connections_opened: AtomicU64,
    /// Connection attempts that failed.
    pub connect_errors: AtomicU64,
    /// Requests sent upstream.
    pub requests: AtomicU64,
    /// Upstream responses not yet fully read or dropped.
    pub in_flight: Gauge,
}

/// A point-in-time copy of [`PoolStats`] plus the pool's settings, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    pub connections_opened: u64,
    pub connect_errors: u64,
    pub requests: u64,
    pub in_flight: i64,
    /// Share of requests that needed a new connection.
    pub new_connection_ratio: f64,
    pub max_idle_per_host: usize,
    pub idle_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub http2: bool,
}

impl PoolStats {
    /// Counts a request sent upstream; the returned guard marks it finished when dropped.
    pub fn send(&self) -> GaugeGuard {
        self.requests.fetch_add(1, Relaxed);
        self.in_flight.hold()
    }

    pub fn snapshot(&self, config: &PoolConfig) -> PoolSnapshot {
        let requests = self.requests.load(Relaxed);
        let opened = self.connections_opened.load(Relaxed);
        PoolSnapshot {
            connections_opened: opened,
            connect_errors: self.connect_errors.load(Relaxed),
            requests,
            in_flight: self.in_flight.get(),
            new_connection_ratio: if requests == 0 {
                0.0
            } else {
                opened as f64 / requests as f64
            },
            max_idle_per_host: config.max_idle_per_host,
            idle_timeout_ms: config.idle_timeout_ms,
            connect_timeout_ms: config.connect_timeout_ms,
            http2: config.http2,
        }
    }
}

/// Why an upstream request failed before its response arrived.
pub type UpstreamError = hyper_util::client::legacy::Error;

/// A provider's response body as a stream of chunks.
pub type BodyStream = BodyDataStream<Incoming>;

/// A provider's pooled client: keep-alive connections, `TCP_NODELAY`, bounded connect time,
/// plain or TLS, HTTP/1.1 or (with `http2`) HTTP/2.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpsConnector<Counted>, Full<Bytes>>,
}

impl Upstream {
    /// Fails only when `config.ca_file` cannot be read or holds no certificate it can use.
    pub fn new(config: &PoolConfig, stats: Arc<PoolStats>) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        // The TLS layer above decides the scheme: https:// gets a handshake, http:// passes.
        http.enforce_http(false);
        let counted = Counted { inner: http, stats };
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(config.ca_file.as_deref())?)
            .https_or_http();
        // One protocol, as the client speaks only that one: ALPN offers what it will speak.
        let connector = if config.http2 {
            tls.enable_http2().wrap_connector(counted)
        } else {
            tls.enable_http1().wrap_connector(counted)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(Duration::from_millis(config.idle_timeout_ms))
            .pool_timer(TokioTimer::new())
            .http2_only(config.http2)
            .build(connector);
        Ok(Self { client })
    }

    /// `POST uri` with `headers` and `body`; resolves when the response head has arrived.
    pub fn post(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<Incoming>, UpstreamError>> + Send + 'static {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        self.client.request(request)
    }
}

/// The rustls client configuration: the bundled web PKI roots, plus every certificate of
/// `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no PEM certificate in {}", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Why a response body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body declared or sent more than the limit; reading stopped there.
    #[error("response body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Transport(#[from] hyper::Error),
}

/// Reads a whole response body of at most `limit` bytes (see [`crate::limits`]). A declared
/// `content-length` over the limit fails before anything is read, so a hostile upstream cannot
/// make the gateway wait for, or buffer, more than the limit.
pub async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, BodyError> {
    if !limits::declared_within(response.body(), limit) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(response.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(transport) => Err(BodyError::Transport(*transport)),
            Err(_) => Err(BodyError::TooLarge { limit }),
        },
    }
}

/// The connector: hyper-util's TCP connector, counting established and failed connections.
#[derive(Clone, Debug)]
struct Counted {
    inner: HttpConnector,
    stats: Arc<PoolStats>,
}

impl tower::Service<Uri> for Counted {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    /// Boxed: connects are rare (the pool exists to avoid them), so the allocation is off the hot path.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let stats = self.stats.clone();
        Box::pin(async move {
            let result = connecting.await;
            match &result {
                Ok(_) => stats.connections_opened.fetch_add(1, Relaxed),
                Err(_) => stats.connect_errors.fetch_add(1, Relaxed),
            };
            result
        })
    }
}
