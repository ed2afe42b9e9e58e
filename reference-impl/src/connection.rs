//! One client connection: HTTP/1.1, or HTTP/2 with prior knowledge (h2c), told apart by its
//! first bytes, each held to the same header deadline.
//!
//! hyper-util's `auto` builder also tells the two apart, but it waits for the first bytes with
//! no deadline, so a client that connects and sends nothing would hold its connection (and its
//! slot of `server.max_connections`) forever. Here the sniff runs under the header deadline,
//! and an HTTP/2 connection with no request open for that long is closed as an idle HTTP/1
//! keep-alive connection is.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Pause between looks at a connection whose first bytes are a strict prefix of the HTTP/2
/// preface: the rest usually follows in the same segment, so this is rare and short.
const SNIFF_POLL: Duration = Duration::from_millis(5);

/// How connections of one kind are served.
pub struct ConnectionSettings {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// Deadline for the first bytes, for an HTTP/1 header block, and for an HTTP/2 connection
    /// with no request open; `None` for none.
    header_timeout: Option<Duration>,
    /// Serve one request, then close (the reserved probe connections).
    one_request: bool,
}

impl ConnectionSettings {
    pub fn new(header_timeout: Option<Duration>, one_request: bool) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(!one_request);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        if one_request {
            h2.max_concurrent_streams(1);
        }
        Self {
            http1: h1,
            http2: h2,
            header_timeout,
            one_request,
        }
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Peeks (without consuming) until the bytes seen are the HTTP/2 preface or cannot be; `None`
/// when the client closed first.
async fn sniff(tcp: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        tokio::time::sleep(SNIFF_POLL).await;
    }
}

/// Serves one accepted connection until it closes, its header deadline passes, or `draining`
/// is cancelled (then the request being served finishes and the connection closes).
pub async fn serve<S>(
    tcp: TcpStream,
    settings: &ConnectionSettings,
    service: S,
    draining: &CancellationToken,
) -> Result<(), ConnectionError>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let sniffed = match settings.header_timeout {
        Some(deadline) => tokio::time::timeout(deadline, sniff(&tcp))
            .await
            .map_err(|_| ConnectionError::HeaderTimeout)?,
        None => sniff(&tcp).await,
    };
    match sniffed? {
        None => Ok(()),
        Some(Protocol::Http1) => serve_http1(tcp, settings, service, draining).await,
        Some(Protocol::Http2) => serve_http2(tcp, settings, service, draining).await,
    }
}

async fn serve_http1<S>(
    tcp: TcpStream,
    settings: &ConnectionSettings,
    service: S,
    draining: &CancellationToken,
) -> Result<(), ConnectionError>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    // With upgrades: a WebSocket takes the connection over once its 101 is sent.
    let conn = settings
        .http1
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        () = draining.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
    .map_err(ConnectionError::Http)
}

/// Requests of one HTTP/2 connection: open now (received, response body not yet finished or
/// dropped) and received in all.
#[derive(Debug, Default, Clone, Copy)]
struct Exchanges {
    open: usize,
    received: u64,
}

/// An HTTP/2 connection. hyper has no header deadline for HTTP/2, so the connection's task
/// keeps one: with no request open for `header_timeout` (a client that sent only the preface,
/// or a half header block, or nothing since its last response) it sends GOAWAY and closes.
async fn serve_http2<S>(
    tcp: TcpStream,
    settings: &ConnectionSettings,
    service: S,
    draining: &CancellationToken,
) -> Result<(), ConnectionError>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let (exchanges, mut seen) = watch::channel(Exchanges::default());
    let counted = service_fn(move |request: Request<Incoming>| {
        exchanges.send_modify(|e| {
            e.open += 1;
            e.received += 1;
        });
        let open = OpenExchange(exchanges.clone());
        let response = service.call(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _open: open })))
        }
    });
    let conn = settings.http2.serve_connection(TokioIo::new(tcp), counted);
    let mut conn = std::pin::pin!(conn);
    loop {
        let now = *seen.borrow_and_update();
        let idle = settings.header_timeout.filter(|_| now.open == 0);
        let done_with_one = settings.one_request && now.received > 0;
        if done_with_one {
            break;
        }
        tokio::select! {
            result = conn.as_mut() => return result.map_err(ConnectionError::Http),
            () = draining.cancelled() => {
                conn.as_mut().graceful_shutdown();
                return conn.await.map_err(ConnectionError::Http);
            }
            Ok(()) = seen.changed() => {}
            () = sleep_or_never(idle) => break,
        }
    }
    // GOAWAY; the open request (if any) finishes. The client may never answer the GOAWAY's
    // ping, so the close is bounded too.
    conn.as_mut().graceful_shutdown();
    let grace = settings.header_timeout.unwrap_or(Duration::from_secs(1));
    match tokio::time::timeout(grace, conn.as_mut()).await {
        Ok(result) => result.map_err(ConnectionError::Http),
        Err(_) if settings.one_request => Ok(()),
        Err(_) => Err(ConnectionError::HeaderTimeout),
    }
}

async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// One open HTTP/2 request, counted off when its response body is finished or dropped.
struct OpenExchange(watch::Sender<Exchanges>);

impl Drop for OpenExchange {
    fn drop(&mut self) {
        self.0.send_modify(|e| e.open -= 1);
    }
}

/// A response body that keeps its request counted as open while it is being sent.
struct Tracked {
    body: Body,
    _open: OpenExchange,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why a connection ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("no request within the header deadline")]
    HeaderTimeout,
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(hyper::Error),
}
