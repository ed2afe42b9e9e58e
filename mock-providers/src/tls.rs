//! HTTPS for the native mock: a self-signed certificate made at start, and an accept loop that
//! serves each TLS connection as `axum::serve` serves plain ones.
//!
//! Gateways talk to real providers over TLS, often HTTP/2; a plain-http mock would leave the
//! gateway's TLS client (handshakes, session reuse, ALPN) out of every measurement. The
//! certificate covers `127.0.0.1`, `::1` (IP SANs) and `localhost` (DNS SAN), and is handed to
//! clients as PEM so they can trust it explicitly. The plain-http path does not go through here.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::MockError;

/// Names the certificate is valid for: every way a client on this machine reaches a loopback mock.
const NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// A client that has not finished its handshake by then is dropped, so silent sockets cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS: what to present and how to accept.
pub(crate) struct Tls {
    /// The certificate in PEM, for clients to trust.
    pub pem: String,
    pub acceptor: TlsAcceptor,
}

impl Tls {
    /// A fresh self-signed certificate (ECDSA P-256) and a rustls server offering `h2` and
    /// `http/1.1` by ALPN.
    pub fn self_signed() -> Result<Self, MockError> {
        let tls_error = |e: &dyn std::fmt::Display| MockError::Tls(e.to_string());
        let names: Vec<String> = NAMES.map(String::from).to_vec();
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| tls_error(&e))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
        // The provider is named rather than taken from the process default, which would be
        // unset (and `builder()` panic) if another crate in the build enabled a second back end.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| tls_error(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            pem: certified.cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// `mock-providers-<port>.pem` in the system temp directory: where the certificate goes unless
/// the caller picks a file.
pub(crate) fn default_certificate_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("mock-providers-{port}.pem"))
}

/// Writes `pem` to `path` through a temporary file in the same directory and a rename, so a reader
/// never sees half a certificate and a symlink planted at `path` is replaced, not followed.
pub(crate) async fn write_certificate(path: PathBuf, pem: String) -> Result<PathBuf, MockError> {
    tokio::task::spawn_blocking(move || {
        let write = |path: &Path| -> io::Result<()> {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            io::Write::write_all(&mut file, pem.as_bytes())?;
            file.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        match write(&path) {
            Ok(()) => Ok(path),
            Err(source) => Err(MockError::Certificate { path, source }),
        }
    })
    .await
    .map_err(|e| MockError::Tls(format!("certificate writer failed: {e}")))?
}

/// Accepts TCP connections, completes each handshake in its own task and serves the connection
/// with hyper-util's auto builder (HTTP/2 when ALPN or the preface says so, else HTTP/1.1).
/// A failed or timed-out handshake is logged at debug level and drops only that connection.
/// On `stop`: no more accepts, handshakes in progress are abandoned, connections already served
/// finish their answers (like `axum::serve`'s graceful shutdown).
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                backoff(&e).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("TCP_NODELAY: {e}");
        }
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let stop = stop.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake with {peer} timed out");
                        return;
                    }
                },
                () = stop.cancelled() => return,
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What `axum::serve` does on an accept error: go on at once after a per-connection failure, pause
/// a second after a resource one (such as running out of file descriptors) instead of spinning.
async fn backoff(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
