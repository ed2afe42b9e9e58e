//! A bare proxy: the least any HTTP proxy in front of an upstream has to do, as the physical
//! limit a gateway's cost is judged against on the same machine.
//!
//! A hyper HTTP/1.1 server reads each request body whole, sends it with the same method, path
//! and headers through a hyper-util pooled client (`TCP_NODELAY`, keep-alive) to the upstream,
//! and passes the response back as it arrives, streams included. Nothing else: no parsing, no
//! routing, no metrics. What it costs is what two loopback TCP hops and hyper cost; what a
//! gateway costs beyond it is the gateway's own work.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Idle upstream connections kept per host: more than any benchmark has requests in flight, so
/// no request waits for a connection to be opened once the pool is warm.
const MAX_IDLE_PER_HOST: usize = 2048;

/// The upstream cannot be proxied to.
#[derive(Debug, thiserror::Error)]
#[error("bare proxy upstream `{url}`: {why}")]
pub struct BareError {
    url: String,
    why: &'static str,
}

/// Where requests go: the upstream's scheme and authority, and a path prefix put before each
/// request's path (`http://host:9000/openai` sends `/v1/...` to `/openai/v1/...`).
#[derive(Clone, Debug)]
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl Upstream {
    fn parse(url: &str) -> Result<Upstream, BareError> {
        let error = |why| BareError {
            url: url.to_owned(),
            why,
        };
        let uri: Uri = url
            .trim_end_matches('/')
            .parse()
            .map_err(|_| error("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(error("only http:// upstreams are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| error("no host"))?;
        Ok(Upstream {
            scheme: Scheme::HTTP,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URI of a request for `path`.
    fn uri(&self, path: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let path = path.map_or("/", PathAndQuery::as_str);
        let path_and_query = if self.prefix.is_empty() {
            PathAndQuery::try_from(path)?
        } else {
            PathAndQuery::try_from(format!("{}{path}", self.prefix))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// A response passed through from the upstream, or an empty 502 when it could not be reached.
type Reply = Response<Either<Incoming, Empty<Bytes>>>;

/// The bare proxy: an upstream checked once, and one pooled client to it.
pub struct BareProxy {
    upstream: Upstream,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl BareProxy {
    /// A proxy to `upstream`, an `http://` base URL with an optional path prefix; refused when
    /// it is not one, before anything listens.
    pub fn new(upstream: &str) -> Result<BareProxy, BareError> {
        let upstream = Upstream::parse(upstream)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
        Ok(BareProxy { upstream, client })
    }

    /// Serves connections accepted on `listener` until the future is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            // A failed accept (a reset connection, descriptors exhausted for a moment) ends
            // only that connection, never the proxy.
            let Ok((stream, _)) = listener.accept().await else {
                tokio::task::yield_now().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (self.client.clone(), self.upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// Sends one request upstream with its body read whole, and returns the upstream's response.
async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &Upstream,
    request: Request<Incoming>,
) -> Reply {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return bad_gateway();
    };
    let Ok(uri) = upstream.uri(parts.uri.path_and_query()) else {
        return bad_gateway();
    };
    parts.uri = uri;
    // The client sets the upstream's own Host.
    parts.headers.remove(HOST);
    let request = Request::from_parts(parts, Full::new(body.to_bytes()));
    match client.request(request).await {
        Ok(response) => response.map(Either::Left),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> Reply {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_http_with_an_optional_prefix() {
        let plain = Upstream::parse("http://127.0.0.1:9000/").expect("valid");
        let path = PathAndQuery::from_static("/v1/chat/completions?x=1");
        assert_eq!(
            plain.uri(Some(&path)).expect("uri").to_string(),
            "http://127.0.0.1:9000/v1/chat/completions?x=1"
        );
        let prefixed = Upstream::parse("http://host:81/openai").expect("valid");
        assert_eq!(
            prefixed.uri(Some(&path)).expect("uri").to_string(),
            "http://host:81/openai/v1/chat/completions?x=1"
        );
        for bad in ["https://host", "host:80", "http://"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
