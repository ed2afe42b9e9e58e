//! HTTP/1.1 on one user's connection, written and read by the user's own task.
//!
//! hyper's client connection passes each read of a body to its reader through a channel, and
//! that channel wakes the reader's task even when it is the task polling the connection, so
//! every event of a stream went once more round the runtime's queue. Here the poll that wants
//! the next bytes reads the socket and decodes the body's framing (`content-length`, chunked,
//! or until close) in place, as a raw-socket client does. It speaks what a client of an LLM API
//! needs and no more: one request at a time, no upgrades, no `Expect`.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::conn::{Head, LinkError};

/// The most a response head may take; a longer one is refused, not buffered.
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines a response head may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size or trailer line.
const MAX_LINE: usize = 4 * 1024;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;

/// One HTTP/1.1 connection and the framing of the response being read on it.
pub(super) struct Http1<T> {
    io: T,
    /// Bytes read and not yet decoded.
    read: BytesMut,
    /// How many bytes at the front of `read` the last body piece lent out: they are dropped
    /// before the buffer is next used, so a piece reaches its reader as a borrow of the buffer
    /// rather than split off it with a reference count of its own.
    lent: usize,
    /// The request being written, reused from request to request.
    write: Vec<u8>,
    body: Framing,
    /// The response allows another request on this connection once its body is read.
    reusable: bool,
}

/// How the body of the current response ends.
enum Framing {
    /// `content-length`: this many bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
    /// The body was read to its end, or broke.
    Done,
}

/// Where a chunked body's decoder stands.
#[derive(Clone, Copy)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes still to come.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Http1<T> {
    pub(super) fn new(io: T) -> Http1<T> {
        Http1 {
            io,
            read: BytesMut::with_capacity(READ_SIZE),
            lent: 0,
            write: Vec::new(),
            body: Framing::Done,
            reusable: true,
        }
    }

    /// Writes `request` (its URI in origin form, its `host` among its headers) and reads the
    /// response head. `Err(None)` when the request could not be written, so it can go on
    /// another connection.
    pub(super) async fn send(
        &mut self,
        request: &Request<Bytes>,
    ) -> Result<Head, Option<LinkError>> {
        self.release();
        self.encode(request);
        let Http1 { io, write, .. } = self;
        let written = async {
            io.write_all(write).await?;
            io.flush().await
        };
        if written.await.is_err() {
            self.reusable = false;
            return Err(None);
        }
        self.read_head().await.map_err(|error| {
            self.fail();
            Some(error)
        })
    }

    /// The request's head and body in one buffer, so they go out in one write.
    fn encode(&mut self, request: &Request<Bytes>) {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let write = &mut self.write;
        write.clear();
        // Writing to a `Vec` cannot fail.
        let _ = write!(write, "{} {path} HTTP/1.1\r\n", request.method());
        for (name, value) in request.headers() {
            write.extend_from_slice(name.as_str().as_bytes());
            write.extend_from_slice(b": ");
            write.extend_from_slice(value.as_bytes());
            write.extend_from_slice(b"\r\n");
        }
        let body = request.body();
        if !body.is_empty() && !request.headers().contains_key(CONTENT_LENGTH) {
            let _ = write!(write, "content-length: {}\r\n", body.len());
        }
        write.extend_from_slice(b"\r\n");
        write.extend_from_slice(body);
    }

    /// Reads until a final (not 1xx) response head is complete, and sets up its body's framing.
    async fn read_head(&mut self) -> Result<Head, LinkError> {
        loop {
            if let Some(head) = self.parse_head()? {
                return Ok(head);
            }
            if self.read.len() >= MAX_HEAD {
                return Err(LinkError::Malformed("a response head over 64 KiB"));
            }
            if std::future::poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(LinkError::Malformed(
                    "the connection closed before a response head",
                ));
            }
        }
    }

    fn parse_head(&mut self) -> Result<Option<Head>, LinkError> {
        loop {
            let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut lines);
            let length = match response.parse(&self.read) {
                Ok(httparse::Status::Complete(length)) => length,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(LinkError::Malformed("more than 100 response headers"));
                }
                Err(_) => return Err(LinkError::Malformed("a malformed response head")),
            };
            let status = response
                .code
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or(LinkError::Malformed("a malformed response status"))?;
            let mut headers = HeaderMap::with_capacity(response.headers.len());
            for line in response.headers.iter() {
                let name = HeaderName::from_bytes(line.name.as_bytes());
                let value = HeaderValue::from_bytes(line.value);
                let (Ok(name), Ok(value)) = (name, value) else {
                    return Err(LinkError::Malformed("a malformed response header"));
                };
                headers.append(name, value);
            }
            let http11 = response.version == Some(1);
            self.read.advance(length);
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(LinkError::Malformed("an unasked-for protocol switch"));
            }
            if status.is_informational() {
                continue;
            }
            self.body = framing(status, &headers)?;
            self.reusable = http11
                && !matches!(self.body, Framing::UntilClose)
                && !has_token(&headers, &CONNECTION, "close");
            return Ok(Some(Head { status, headers }));
        }
    }

    /// The next piece of the body, as soon as the socket has given any: `None` at its end. The
    /// piece is lent from the read buffer until this connection is next used.
    pub(super) async fn next_piece(&mut self) -> Option<Result<&[u8], LinkError>> {
        match std::future::poll_fn(|cx| self.poll_piece(cx)).await? {
            Ok(length) => Some(Ok(&self.read[..length])),
            Err(error) => Some(Err(error)),
        }
    }

    /// The length of the next piece, lent from the front of the read buffer.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<usize, LinkError>>> {
        self.release();
        loop {
            match self.decode() {
                Ok(Some(length)) => {
                    self.lent = length;
                    return Poll::Ready(Some(Ok(length)));
                }
                Ok(None) if matches!(self.body, Framing::Done) => return Poll::Ready(None),
                Ok(None) => {}
                Err(error) => {
                    self.fail();
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if matches!(self.body, Framing::UntilClose) => {
                    self.body = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.fail();
                    let closed = LinkError::Malformed("the connection closed mid-body");
                    return Poll::Ready(Some(Err(closed)));
                }
                Ok(_) => {}
                Err(error) => {
                    self.fail();
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    /// Drops the bytes the last piece lent out.
    fn release(&mut self) {
        self.read.advance(std::mem::take(&mut self.lent));
    }

    /// Decodes framing out of what was read up to the next piece of body, if there is one: its
    /// length, at the front of `read`.
    fn decode(&mut self) -> Result<Option<usize>, LinkError> {
        let Http1 { read, body, .. } = self;
        loop {
            match body {
                Framing::Done => return Ok(None),
                Framing::UntilClose => return Ok((!read.is_empty()).then_some(read.len())),
                Framing::Length(left) => {
                    let Some(data) = take(read, left) else {
                        return Ok(None);
                    };
                    if *left == 0 {
                        *body = Framing::Done;
                    }
                    return Ok(Some(data));
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = line_end(read)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(&read[..end])?;
                    read.advance(end + 1);
                    *body = Framing::Chunked(match size {
                        0 => Chunk::Trailers,
                        size => Chunk::Data(size),
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let Some(data) = take(read, left) else {
                        return Ok(None);
                    };
                    if *left == 0 {
                        *body = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Ok(Some(data));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if read.len() < 2 {
                        return Ok(None);
                    }
                    if read[..2] != *b"\r\n" {
                        return Err(LinkError::Malformed("chunk data longer than its size"));
                    }
                    read.advance(2);
                    *body = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(end) = line_end(read)? else {
                        return Ok(None);
                    };
                    if trim_cr(&read[..end]).is_empty() {
                        *body = Framing::Done;
                    }
                    read.advance(end + 1);
                }
            }
        }
    }

    /// Reads what the socket has into the buffer: `Ok(0)` when the peer closed it.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // The buffer is never shared, so this reuses it in place (moving what is left of it to
        // its front) once enough of it has been decoded.
        self.read.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    /// Whether the last body was read to its end (no more of it waits on the socket).
    pub(super) fn is_read(&self) -> bool {
        matches!(self.body, Framing::Done)
    }

    /// Whether another request can go on this connection: the last response allowed it and
    /// was read to its end, and the peer has neither closed it nor sent anything unasked.
    pub(super) fn is_open(&mut self) -> bool {
        self.release();
        if !self.reusable || !self.is_read() || !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        self.poll_fill(&mut cx).is_pending()
    }

    fn fail(&mut self) {
        self.body = Framing::Done;
        self.reusable = false;
    }
}

/// How the body of a response with `status` and `headers` to a request other than `HEAD`
/// ends (RFC 9112, section 6.3).
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, LinkError> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Done);
    }
    if let Some(last) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        let chunked = last
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(match chunked {
            true => Framing::Chunked(Chunk::Size),
            false => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let parsed = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (parsed, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(m)) if n == m => {}
            _ => return Err(LinkError::Malformed("a malformed content-length")),
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Whether a comma-separated header lists `token`.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// How many of `left` bytes to take from the front of `read`, none if it is empty.
fn take(read: &[u8], left: &mut u64) -> Option<usize> {
    if read.is_empty() {
        return None;
    }
    let n = usize::try_from(*left).map_or(read.len(), |left| left.min(read.len()));
    *left -= n as u64;
    Some(n)
}

/// Where the line at the front of `read` ends (its `\n`), once it has.
fn line_end(read: &[u8]) -> Result<Option<usize>, LinkError> {
    match memchr::memchr(b'\n', read) {
        Some(end) if end <= MAX_LINE => Ok(Some(end)),
        None if read.len() <= MAX_LINE => Ok(None),
        _ => Err(LinkError::Malformed(
            "a chunk-size or trailer line over 4 KiB",
        )),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The size on a chunk-size line (hex digits, then optional extensions after `;`).
fn chunk_size(line: &[u8]) -> Result<u64, LinkError> {
    let digits = trim_cr(line)
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(LinkError::Malformed("a malformed chunk size"));
    }
    Ok(digits
        .iter()
        .fold(0, |size, &digit| size << 4 | u64::from(hex(digit))))
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => (digit | 0x20) - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What a client read of one response: its status, its body (or the error that ended it),
    /// and whether the connection could carry another request after it.
    struct Read {
        status: Result<u16, String>,
        body: Result<Vec<u8>, String>,
        open: bool,
    }

    /// A server on loopback that reads one request and answers it with `wire`, written `piece`
    /// bytes at a time, then keeps the connection open (or, with `close`, closes it); and what
    /// the client read of it.
    async fn read_with(wire: &'static [u8], piece: usize, close: bool) -> Read {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                socket.read_exact(&mut byte).await.expect("a request");
                request.push(byte[0]);
            }
            for part in wire.chunks(piece) {
                socket.write_all(part).await.expect("write");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            if !close {
                // Held open until the client is done with it.
                let _ = socket.read(&mut [0; 1]).await;
            }
        });
        let socket = TcpStream::connect(address).await.expect("connect");
        let mut http = Http1::new(socket);
        let request = Request::builder()
            .uri("/v1/models")
            .header("host", "test")
            .body(Bytes::new())
            .expect("request");
        let head = http.send(&request).await;
        let status = head
            .map(|head| head.status.as_u16())
            .map_err(|error| error.map_or("unsent".to_owned(), |e| e.to_string()));
        let mut body = Ok(Vec::new());
        if status.is_ok() {
            while let Some(piece) = http.next_piece().await {
                match piece {
                    Ok(piece) => body
                        .as_mut()
                        .expect("no error yet")
                        .extend_from_slice(piece),
                    Err(error) => {
                        body = Err(error.to_string());
                        break;
                    }
                }
            }
        }
        // Let whatever the server sent after the response arrive.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let open = http.is_open();
        drop(http);
        server.await.expect("server");
        Read { status, body, open }
    }

    async fn read(wire: &'static [u8], piece: usize) -> Read {
        read_with(wire, piece, false).await
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\nB\r\n, streaming\r\n0\r\nx-trailer: 1\r\n\r\n";

    #[tokio::test]
    async fn bodies_read_the_same_however_the_bytes_are_cut() {
        let length: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\nhello, streaming";
        for piece in [1, 3, 7, 64, 4096] {
            for wire in [CHUNKED, length] {
                let read = read(wire, piece).await;
                assert_eq!(read.status, Ok(200), "piece {piece}");
                assert_eq!(
                    read.body.as_deref(),
                    Ok(&b"hello, streaming"[..]),
                    "piece {piece}"
                );
                assert!(
                    read.open,
                    "a keep-alive connection stays open (piece {piece})"
                );
            }
        }
    }

    #[tokio::test]
    async fn informational_heads_are_skipped() {
        let wire =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
        let read = read(wire, 4096).await;
        assert_eq!(read.status, Ok(201));
        assert_eq!(read.body.as_deref(), Ok(&b"ok"[..]));
    }

    #[tokio::test]
    async fn a_connection_is_kept_only_when_the_response_allows_it() {
        let close =
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 2\r\n\r\nok";
        let old = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        let extra = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1";
        for (wire, open) in [
            (&close[..], false),
            (old, false),
            (empty, true),
            (extra, false),
        ] {
            let read = read(wire, 4096).await;
            assert!(
                read.status.is_ok() && read.body.is_ok(),
                "{}",
                wire.escape_ascii()
            );
            assert_eq!(read.open, open, "{}", wire.escape_ascii());
        }
    }

    /// A body without a length ends when the server closes the connection, which is then done.
    #[tokio::test]
    async fn a_body_without_a_length_ends_at_the_close() {
        let read = read_with(b"HTTP/1.1 200 OK\r\n\r\nto the end", 4096, true).await;
        assert_eq!(read.status, Ok(200));
        assert_eq!(read.body.as_deref(), Ok(&b"to the end"[..]));
        assert!(!read.open);
    }

    #[tokio::test]
    async fn a_body_cut_short_by_the_close_is_broken() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok";
        let read = read_with(wire, 4096, true).await;
        assert_eq!(read.status, Ok(200));
        assert_eq!(read.body, Err("the connection closed mid-body".to_owned()));
        assert!(!read.open);
    }

    #[tokio::test]
    async fn broken_framing_is_an_error_not_a_body() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                "a malformed chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
                "chunk data longer than its size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
                "a malformed content-length",
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "a malformed response head"),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                "an unasked-for protocol switch",
            ),
        ];
        for (wire, why) in cases {
            let read = read(wire, 4096).await;
            let error = match (read.status, read.body) {
                (Err(error), _) | (Ok(_), Err(error)) => error,
                (Ok(_), Ok(body)) => panic!("{} read as {body:?}", wire.escape_ascii()),
            };
            assert_eq!(error, why, "{}", wire.escape_ascii());
            assert!(!read.open);
        }
    }

    /// A head or a chunk-size line that never ends is refused at its limit, not buffered.
    #[tokio::test]
    async fn endless_lines_stop_at_their_limits() {
        let endless_head = format!("HTTP/1.1 200 OK\r\nx-long: {}", "a".repeat(MAX_HEAD));
        let endless_size = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{}",
            "0".repeat(MAX_LINE + 1)
        );
        let head = read(endless_head.leak().as_bytes(), 8192).await;
        assert_eq!(head.status, Err("a response head over 64 KiB".to_owned()));
        let size = read(endless_size.leak().as_bytes(), 8192).await;
        assert_eq!(size.status, Ok(200));
        assert_eq!(
            size.body,
            Err("a chunk-size or trailer line over 4 KiB".to_owned())
        );
    }
}
