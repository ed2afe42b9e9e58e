//! One user's connections to its targets, each driven by the user's own task.
//!
//! A pooled client runs every connection as a task of its own: each read of a stream wakes that
//! task, which passes the bytes through a channel and wakes the user's task, so every event
//! waits for the scheduler twice, and every request looks its connection up in a pool shared by
//! all users. Here a user owns its connections and reads the one it uses while it waits for the
//! answer, as a raw-socket client does: the read that brings an event's bytes and the parse
//! that times it happen in one poll of one task, however many streams share the threads.
//! HTTP/1.1 is this client's own (`h1`); HTTP/2, where TLS negotiated it, is hyper's, its
//! connection polled by the user's task in the same way.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sync_wrapper::SyncWrapper;
use tower::Service;

use super::h1::Http1;
use super::stream::Pieces;

/// How long a user's next request waits for the end of the stream before it on the same
/// connection (a chunked body's last chunk, which comes with the last event or a moment after
/// it) before it opens a new connection instead.
const SETTLE: Duration = Duration::from_millis(100);

/// The most of a response body read whole (a non-streamed answer, an error, `/metrics`); a
/// longer one is refused rather than buffered.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Opens connections: TCP, and TLS with ALPN for `https://`.
pub(super) type Connector = HttpsConnector<HttpConnector>;

/// A connection as opened, with tokio's I/O traits.
type Io = TokioIo<<Connector as Service<Uri>>::Response>;

/// Why no connection could be opened.
pub(super) type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// A response's status and headers; its body is read from the [`Link`] it came on.
pub(super) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The target broke HTTP/1.1, or a limit: the response is not read further.
    #[error("{0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Http2(#[from] hyper::Error),
}

/// A user's open connections, one slot per target. A clone starts with none: a connection is
/// one user's to drive.
#[derive(Default)]
pub(crate) struct Links(SyncWrapper<Vec<Option<Link>>>);

impl Clone for Links {
    fn clone(&self) -> Links {
        Links::default()
    }
}

impl fmt::Debug for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Links")
    }
}

impl Links {
    /// The connection kept for target `index`, if it is still open, once the last body sent on
    /// it has ended (waiting up to [`SETTLE`] for that end).
    pub(super) async fn take(&mut self, index: usize) -> Option<Link> {
        let mut link = self.0.get_mut().get_mut(index)?.take()?;
        if !link.is_read() {
            let drained = tokio::time::timeout(SETTLE, link.drain()).await;
            if drained != Ok(true) {
                return None;
            }
        }
        link.is_open().then_some(link)
    }

    /// Keeps `link` for the next request to target `index`. A body left unread (a stream that
    /// ended at its last event) is read to its end by the next [`Links::take`], before that
    /// request's clock starts rather than in this one's.
    pub(super) fn keep(&mut self, index: usize, link: Link) {
        let slots = self.0.get_mut();
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        slots[index] = Some(link);
    }
}

/// One connection, and the body of the last response sent on it until that is read.
pub(super) struct Link(Protocol);

enum Protocol {
    Http1(Box<Http1<Io>>),
    Http2(Http2),
}

/// hyper's HTTP/2 connection, which reads and writes the socket when polled and nowhere else.
struct Http2 {
    sender: http2::SendRequest<Full<Bytes>>,
    connection: Driven,
    /// The body of the last response, until it ended.
    body: Option<Incoming>,
    /// The piece of `body` last handed out.
    piece: Bytes,
}

struct Driven {
    future: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>,
    /// The future has finished: the peer closed the connection, or it failed.
    ended: bool,
}

/// Why a request got no response head.
pub(super) enum SendError {
    /// The connection closed before the request was written, so it can go on another.
    Unsent(Box<Request<Bytes>>),
    /// The connection failed once the request was on its way.
    Failed(LinkError),
}

impl Link {
    /// Connects to `uri`'s host, speaking HTTP/2 when TLS negotiated it and HTTP/1.1 otherwise.
    pub(super) async fn open(connector: &Connector, uri: &Uri) -> Result<Link, ConnectError> {
        let mut connector = connector.clone();
        poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(uri.clone()).await?;
        if !io.connected().is_negotiated_h2() {
            let http1 = Http1::new(TokioIo::new(io));
            return Ok(Link(Protocol::Http1(Box::new(http1))));
        }
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await?;
        Ok(Link(Protocol::Http2(Http2 {
            sender,
            connection: Driven {
                future: Box::pin(connection),
                ended: false,
            },
            body: None,
            piece: Bytes::new(),
        })))
    }

    /// HTTP/2, whose requests carry their scheme and authority; an HTTP/1.1 request names only
    /// its path, and its host in `host`.
    pub(super) fn is_http2(&self) -> bool {
        matches!(self.0, Protocol::Http2(_))
    }

    /// Whether the last response's body was read to its end.
    fn is_read(&self) -> bool {
        match &self.0 {
            Protocol::Http1(h1) => h1.is_read(),
            Protocol::Http2(h2) => h2.body.is_none(),
        }
    }

    /// Takes in whatever the connection has received (a close from an idle peer, above all)
    /// without waiting, and tells whether a request can be sent on it.
    fn is_open(&mut self) -> bool {
        match &mut self.0 {
            Protocol::Http1(h1) => h1.is_open(),
            Protocol::Http2(h2) => {
                h2.connection.poll_now();
                !h2.connection.ended && !h2.sender.is_closed()
            }
        }
    }

    /// Sends `request` and waits for the response head.
    pub(super) async fn send(&mut self, request: Request<Bytes>) -> Result<Head, SendError> {
        match &mut self.0 {
            Protocol::Http1(h1) => match h1.send(&request).await {
                Ok(head) => Ok(head),
                Err(None) => Err(SendError::Unsent(Box::new(request))),
                Err(Some(error)) => Err(SendError::Failed(error)),
            },
            Protocol::Http2(h2) => h2.send(request).await,
        }
    }

    /// The body of the last response, read whole (up to [`MAX_BODY`]).
    pub(super) async fn collect(&mut self) -> Result<Bytes, LinkError> {
        let mut whole = BytesMut::new();
        while let Some(piece) = self.next_piece().await.transpose()? {
            if whole.len() + piece.len() > MAX_BODY {
                return Err(LinkError::Malformed("a response body over 64 MiB"));
            }
            whole.extend_from_slice(piece);
        }
        Ok(whole.freeze())
    }

    /// Reads the last response's body to its end: `false` if it broke.
    async fn drain(&mut self) -> bool {
        loop {
            match self.next_piece().await {
                Some(Ok(_)) => {}
                None => return true,
                Some(Err(_)) => return false,
            }
        }
    }
}

impl Pieces for Link {
    type Error = LinkError;

    /// The next piece of the last response's body as the connection reads it, lent until the
    /// connection is next used.
    async fn next_piece(&mut self) -> Option<Result<&[u8], LinkError>> {
        match &mut self.0 {
            Protocol::Http1(h1) => h1.next_piece().await,
            Protocol::Http2(h2) => h2.next_piece().await,
        }
    }
}

impl Http2 {
    /// Queues `request` once the connection can take it, and polls the connection right after,
    /// so it is written in the same poll rather than after a wake of this task has gone round
    /// the runtime's queue (a few milliseconds when a thousand streams share it).
    async fn send(&mut self, request: Request<Bytes>) -> Result<Head, SendError> {
        let Http2 {
            sender,
            connection,
            body,
            ..
        } = self;
        let ready = connection.run(poll_fn(|cx| sender.poll_ready(cx))).await;
        if ready.is_err() {
            return Err(SendError::Unsent(Box::new(request)));
        }
        let kept = request.body().clone();
        let sent = connection
            .run(sender.try_send_request(request.map(Full::new)))
            .await;
        let response = sent.map_err(|mut error| match error.take_message() {
            Some(unsent) => SendError::Unsent(Box::new(unsent.map(|_| kept))),
            None => SendError::Failed(error.into_error().into()),
        })?;
        let (parts, incoming) = response.into_parts();
        *body = Some(incoming);
        Ok(Head {
            status: parts.status,
            headers: parts.headers,
        })
    }

    async fn next_piece(&mut self) -> Option<Result<&[u8], LinkError>> {
        match poll_fn(|cx| self.poll_frame(cx)).await? {
            Ok(piece) => {
                self.piece = piece;
                Some(Ok(&self.piece))
            }
            Err(error) => Some(Err(error)),
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, LinkError>>> {
        self.connection.poll(cx);
        loop {
            let Some(body) = &mut self.body else {
                return Poll::Ready(None);
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers carry nothing a run reads.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Some(Err(error)) => {
                    self.body = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
                None => self.body = None,
            }
        }
    }
}

impl Driven {
    /// Polls the connection once, with no wake-up to come of it: whoever polls next registers.
    fn poll_now(&mut self) {
        if !self.ended && self.future.as_mut().now_or_never().is_some() {
            self.ended = true;
        }
    }

    /// Polls the connection, so it reads and writes what it can.
    fn poll(&mut self, cx: &mut Context<'_>) {
        if !self.ended && self.future.as_mut().poll(cx).is_ready() {
            self.ended = true;
        }
    }

    /// Polls the connection, then `work`, at every wake of the task until `work` is done:
    /// bytes the connection reads reach `work` in the same poll.
    async fn run<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = pin!(work);
        poll_fn(|cx| {
            self.poll(cx);
            work.as_mut().poll(cx)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::client::{Call, Client, Scratch};
    use crate::workload::{Message, Prompt, Role};

    /// An HTTP/1.1 server on loopback that answers each request with a short stream and closes
    /// a connection after `answers` of them, counting the connections it accepted.
    async fn server(answers: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(socket, answers));
            }
        });
        (url, accepted)
    }

    /// Answers `answers` requests, then closes. Each stream's last event and its chunked
    /// body's end go out in two writes, the end a moment later, as a relaying gateway may.
    async fn serve(mut socket: TcpStream, answers: usize) {
        let events = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
                      data: [DONE]\n\n";
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        let answer = format!("{head}{:x}\r\n{events}\r\n", events.len());
        let mut buffer = Vec::new();
        for _ in 0..answers {
            while !take_request(&mut buffer) {
                let mut read = [0; 4096];
                match socket.read(&mut read).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&read[..n]),
                }
            }
            let end = async {
                socket.write_all(answer.as_bytes()).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
                socket.write_all(b"0\r\n\r\n").await
            };
            if end.await.is_err() {
                return;
            }
        }
    }

    /// Removes one whole request (head and `content-length` body) from the front of `buffer`.
    fn take_request(buffer: &mut Vec<u8>) -> bool {
        let Some(head) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let text = String::from_utf8_lossy(&buffer[..head]).to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().expect("a length"));
        let whole = head + 4 + length;
        if buffer.len() < whole {
            return false;
        }
        buffer.drain(..whole);
        true
    }

    async fn stream(client: &Client, scratch: &mut Scratch) {
        let prompt = Prompt {
            messages: vec![Message::new(Role::User, "hi")],
            max_tokens: 8,
            temperature: None,
        };
        let call = Call::Chat {
            model: "m",
            prompt: &prompt,
            stream: true,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let reply = client.send(call, deadline, scratch).await;
        assert_eq!(reply.result, Ok(()));
        assert!(reply.first_content.is_some());
    }

    #[tokio::test]
    async fn a_user_sends_its_requests_on_one_connection_of_its_own() {
        let (url, accepted) = server(usize::MAX).await;
        let client = Client::plain(&url, Duration::from_secs(5)).expect("client");
        let mut first = Scratch::new();
        for _ in 0..3 {
            stream(&client, &mut first).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let mut second = Scratch::new();
        stream(&client, &mut second).await;
        stream(&client, &mut first).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// The sampler's scrapes, one a second, go on one connection too.
    #[tokio::test]
    async fn fetches_keep_their_connection() {
        let (url, accepted) = server(usize::MAX).await;
        let client = Client::plain(&url, Duration::from_secs(5)).expect("client");
        let mut scratch = Scratch::new();
        for _ in 0..3 {
            let body = client
                .fetch("/metrics", Duration::from_secs(5), &mut scratch)
                .await
                .expect("a 2xx body");
            assert!(body.starts_with(b"data: "), "{body:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_target_closed_while_idle_is_replaced() {
        let (url, accepted) = server(2).await;
        let client = Client::plain(&url, Duration::from_secs(5)).expect("client");
        let mut scratch = Scratch::new();
        stream(&client, &mut scratch).await;
        stream(&client, &mut scratch).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The server has closed it by now: the next request goes on a new connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream(&client, &mut scratch).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// Over TLS a user speaks the protocol ALPN chose, HTTP/2 where the server offers it and
    /// HTTP/1.1 when the run asks for it, and keeps the connection either way.
    #[tokio::test]
    async fn over_tls_a_user_speaks_what_alpn_chose_on_one_connection() {
        use mock_providers::{MockConfig, MockServer, Profile};

        use crate::client::{ClientOptions, Verify};

        let dir = std::env::temp_dir().join(format!("gatebench-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mock = MockServer::start(MockConfig {
            tls: true,
            cert_out: Some(dir.join("cert.pem")),
            ..MockConfig::new(Profile::fast())
        })
        .await
        .expect("TLS mock");
        let ca = mock.certificate_path().expect("a certificate").to_owned();
        for http1_only in [false, true] {
            let options = ClientOptions {
                verify: Verify::WithCa(ca.clone()),
                http1_only,
                ..ClientOptions::new(Duration::from_secs(5))
            };
            let client = Client::new(&[mock.url()], options).expect("client");
            let mut scratch = Scratch::new();
            stream(&client, &mut scratch).await;
            stream(&client, &mut scratch).await;
            let slots = scratch.links.0.get_mut();
            let link = slots[0].as_ref().expect("the connection is kept");
            assert_eq!(link.is_http2(), !http1_only);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
