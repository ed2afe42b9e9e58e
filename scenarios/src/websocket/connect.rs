//! Opening one WebSocket to the target, timed from the start of the TCP connect to the
//! upgrade's `101 Switching Protocols`: TCP, the TLS handshake for `https://` targets (HTTP/1.1
//! by ALPN, as the upgrade needs), and the upgrade request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Uri};
use reports::model::ErrorClass;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client::{ClientError, ClientOptions, tls};

/// A connection a WebSocket runs over: plain TCP or TLS over it.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) type Socket = WebSocketStream<Box<dyn Io>>;

/// Longest wait for a connection, TLS handshake and upgrade together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the WebSockets of a run go, parsed and checked once.
pub(super) struct Endpoint {
    /// `ws://` or `wss://`, host, port and path.
    url: Uri,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    headers: HeaderMap,
}

/// Why a connection could not be opened: the class it is recorded as, and the reason.
#[derive(Debug)]
pub(super) struct Refused {
    pub class: ErrorClass,
    /// The upgrade's status, when the target answered one other than 101.
    pub status: Option<u16>,
    pub why: String,
}

impl Endpoint {
    /// The WebSocket at `path` of `base` (`http(s)://HOST[:PORT][/PREFIX]`), with the run's
    /// headers and TLS settings.
    pub fn new(base: &str, path: &str, options: &ClientOptions) -> Result<Endpoint, ClientError> {
        let invalid = |why: &str| ClientError::Url {
            url: base.to_owned(),
            why: why.to_owned(),
        };
        let (scheme, rest, default_port) = if let Some(rest) = base.strip_prefix("https://") {
            ("wss", rest, 443)
        } else if let Some(rest) = base.strip_prefix("http://") {
            ("ws", rest, 80)
        } else {
            return Err(invalid("expected http(s)://HOST[:PORT][/PREFIX]"));
        };
        let url: Uri = format!("{scheme}://{}{path}", rest.trim_end_matches('/'))
            .parse()
            .map_err(|_| invalid("not a URL with the WebSocket path appended"))?;
        let host = url
            .host()
            .ok_or_else(|| invalid("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_u16().unwrap_or(default_port);
        let tls = match scheme {
            "wss" => {
                let mut config = tls::config(&options.verify)?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(TlsConnector::from(Arc::new(config)))
            }
            _ => None,
        };
        Ok(Endpoint {
            url,
            host,
            port,
            tls,
            headers: options.headers.clone(),
        })
    }

    /// Opens one WebSocket; returns it with the time it took.
    pub async fn open(&self) -> Result<(Socket, Duration), Refused> {
        let began = Instant::now();
        let socket = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .unwrap_or_else(|_| {
                Err(Refused {
                    class: ErrorClass::Connect,
                    status: None,
                    why: format!("no upgrade within {}s", CONNECT_TIMEOUT.as_secs()),
                })
            })?;
        Ok((socket, began.elapsed()))
    }

    async fn connect(&self) -> Result<Socket, Refused> {
        let refused = |class, why: String| Refused {
            class,
            status: None,
            why,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| refused(ErrorClass::Connect, e.to_string()))?;
        // Messages are small and latency is what is measured.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| refused(ErrorClass::Tls, e.to_string()))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| refused(ErrorClass::Tls, e.to_string()))?;
                Box::new(stream)
            }
        };
        let mut request = (&self.url)
            .into_client_request()
            .map_err(|e| refused(ErrorClass::Connect, e.to_string()))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name, value.clone());
        }
        match tokio_tungstenite::client_async(request, io).await {
            Ok((socket, _response)) => Ok(socket),
            Err(WsError::Http(response)) => {
                let status = response.status();
                Err(Refused {
                    class: if status.is_server_error() {
                        ErrorClass::Http5xx
                    } else {
                        ErrorClass::Http4xx
                    },
                    status: Some(status.as_u16()),
                    why: format!("the upgrade was answered {status}"),
                })
            }
            Err(e) => Err(refused(ErrorClass::Connect, e.to_string())),
        }
    }

    /// The WebSocket URL, for messages.
    pub fn url(&self) -> String {
        self.url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_websocket_urls() {
        let options = ClientOptions::new(Duration::from_secs(1));
        let plain =
            Endpoint::new("http://127.0.0.1:8080/", "/v1/realtime/chat", &options).expect("valid");
        assert_eq!(plain.url(), "ws://127.0.0.1:8080/v1/realtime/chat");
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 8080));
        assert!(plain.tls.is_none());
        let secure =
            Endpoint::new("https://gw.example/openai", "/v1/realtime/chat", &options).expect("ok");
        assert_eq!(secure.url(), "wss://gw.example/openai/v1/realtime/chat");
        assert_eq!(secure.port, 443);
        assert!(secure.tls.is_some());
        let v6 = Endpoint::new("http://[::1]:9/", "/ws", &options).expect("valid");
        assert_eq!(v6.host, "::1");
        assert!(Endpoint::new("ftp://x", "/ws", &options).is_err());
    }
}
