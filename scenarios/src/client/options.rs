//! How a client shapes its requests: the API style, extra headers and key, TLS, HTTP versions,
//! and how the target marks a cache hit.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::recorder::CacheOutcome;

/// The API a target speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI style: `POST /v1/chat/completions`, `data: [DONE]` ends a stream,
    /// `Authorization: Bearer KEY`.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic style: `POST /v1/messages`, `message_stop` ends a stream, `x-api-key: KEY`
    /// with `anthropic-version`.
    Anthropic,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

impl FromStr for Api {
    type Err = String;

    fn from_str(text: &str) -> Result<Api, String> {
        match text {
            "openai" => Ok(Api::OpenAi),
            "anthropic" => Ok(Api::Anthropic),
            other => Err(format!("`{other}` is not an API (openai, anthropic)")),
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Messages API version sent when the run sets none, the one every current Anthropic-style
/// endpoint accepts.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How the target marks a cache hit in its responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheHeader {
    /// The header's value is `hit`, `miss` or `coalesced` (any case), like the reference
    /// gateway's `x-cache`.
    Outcome(HeaderName),
    /// The header equal to this value (any case) is a hit; any other value is a miss; a response
    /// without the header was no cache lookup.
    Equals(HeaderName, String),
}

impl Default for CacheHeader {
    fn default() -> CacheHeader {
        CacheHeader::Outcome(HeaderName::from_static("x-cache"))
    }
}

impl CacheHeader {
    /// The cache outcome `headers` report, if any.
    pub(crate) fn read(&self, headers: &HeaderMap) -> Option<CacheOutcome> {
        match self {
            CacheHeader::Outcome(name) => CacheOutcome::from_header(headers.get(name)?.as_bytes()),
            CacheHeader::Equals(name, hit) => {
                let value = headers.get(name)?.as_bytes();
                Some(if value.eq_ignore_ascii_case(hit.as_bytes()) {
                    CacheOutcome::Hit
                } else {
                    CacheOutcome::Miss
                })
            }
        }
    }
}

impl FromStr for CacheHeader {
    type Err = String;

    /// `NAME` or `NAME=VALUE`.
    fn from_str(text: &str) -> Result<CacheHeader, String> {
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value.trim())),
            None => (text, None),
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
        match value {
            None => Ok(CacheHeader::Outcome(name)),
            Some("") => Err(format!("`{text}`: the value after `=` is empty")),
            Some(value) => Ok(CacheHeader::Equals(name, value.to_owned())),
        }
    }
}

impl fmt::Display for CacheHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheHeader::Outcome(name) => write!(f, "{name}"),
            CacheHeader::Equals(name, value) => write!(f, "{name}={value}"),
        }
    }
}

/// How the client checks the target's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Against the bundled web PKI roots.
    #[default]
    WebPki,
    /// Against the bundled roots and the CA certificates of this PEM file (a private CA, or a
    /// self-signed server certificate).
    WithCa(PathBuf),
    /// Not at all: any certificate is accepted. Reported as a warning on every run that uses it.
    Insecure,
}

/// Everything about a client but its targets.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub api: Api,
    /// Sent with every request, the key among them; values marked sensitive so they are never
    /// printed by `Debug`.
    pub headers: HeaderMap,
    pub verify: Verify,
    /// Only HTTP/1.1, even where the server offers HTTP/2 through ALPN.
    pub http1_only: bool,
    /// A request not complete after this long counts as a timeout.
    pub timeout: Duration,
    pub cache_header: CacheHeader,
}

impl ClientOptions {
    /// OpenAI style, no extra headers, verified TLS, HTTP/2 where offered.
    pub fn new(timeout: Duration) -> ClientOptions {
        ClientOptions {
            api: Api::OpenAi,
            headers: HeaderMap::new(),
            verify: Verify::WebPki,
            http1_only: false,
            timeout,
            cache_header: CacheHeader::default(),
        }
    }

    /// Adds `key` the way the API expects it: `Authorization: Bearer KEY` for OpenAI style,
    /// `x-api-key: KEY` for Anthropic style. A header of the same name given before is replaced.
    pub fn with_api_key(mut self, key: &str) -> Result<ClientOptions, HeaderError> {
        let (name, value) = match self.api {
            Api::OpenAi => (AUTHORIZATION, format!("Bearer {}", key.trim())),
            Api::Anthropic => (HeaderName::from_static("x-api-key"), key.trim().to_owned()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| HeaderError::Value {
            name: name.to_string(),
        })?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }

    /// The headers every request carries: the run's, and for Anthropic style an
    /// `anthropic-version` unless the run set one.
    pub(crate) fn request_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        if self.api == Api::Anthropic {
            headers
                .entry(HeaderName::from_static("anthropic-version"))
                .or_insert(HeaderValue::from_static(ANTHROPIC_VERSION));
        }
        headers
    }
}

/// A header given on the command line or in a run file that cannot be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("`{0}` is not NAME:VALUE")]
    Shape(String),
    #[error("`{0}` is not a valid header name")]
    Name(String),
    #[error("the value of header `{name}` is not a valid header value")]
    Value { name: String },
}

/// Parses one `NAME:VALUE` header; a value that looks like a credential is marked sensitive.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| HeaderError::Shape(text.to_owned()))?;
    header(name, value)
}

/// Checks one header given as a name and a value.
pub fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| HeaderError::Name(name.trim().to_owned()))?;
    let mut value = HeaderValue::from_str(value.trim()).map_err(|_| HeaderError::Value {
        name: name.to_string(),
    })?;
    value.set_sensitive(reports::redact::is_secret_header(name.as_str()));
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_where_each_api_expects_them() {
        let openai = ClientOptions::new(Duration::from_secs(1))
            .with_api_key("sk-1")
            .expect("valid key");
        assert_eq!(openai.request_headers()["authorization"], "Bearer sk-1");
        assert!(openai.headers["authorization"].is_sensitive());
        assert!(!openai.request_headers().contains_key("anthropic-version"));
        let anthropic = ClientOptions {
            api: Api::Anthropic,
            ..ClientOptions::new(Duration::from_secs(1))
        }
        .with_api_key("sk-2")
        .expect("valid key");
        let headers = anthropic.request_headers();
        assert_eq!(headers["x-api-key"], "sk-2");
        assert_eq!(headers["anthropic-version"], ANTHROPIC_VERSION);
        assert!(!headers.contains_key("authorization"));
        assert!(matches!(
            ClientOptions::new(Duration::from_secs(1)).with_api_key("bad\nkey"),
            Err(HeaderError::Value { .. })
        ));
    }

    #[test]
    fn headers_parse_and_name_what_is_wrong() {
        let (name, value) = parse_header("X-Route: tenant-a").expect("valid");
        assert_eq!(
            (name.as_str(), value.to_str().ok()),
            ("x-route", Some("tenant-a"))
        );
        assert!(!value.is_sensitive());
        assert!(
            parse_header("x-api-key: s")
                .expect("valid")
                .1
                .is_sensitive()
        );
        assert_eq!(
            parse_header("no colon"),
            Err(HeaderError::Shape("no colon".to_owned()))
        );
        assert_eq!(
            parse_header("bad name: v"),
            Err(HeaderError::Name("bad name".to_owned()))
        );
    }

    #[test]
    fn cache_headers_read_outcomes_or_a_hit_value() {
        let mut headers = HeaderMap::new();
        headers.insert("x-cache", HeaderValue::from_static("HIT"));
        headers.insert("cf-cache-status", HeaderValue::from_static("MISS"));
        assert_eq!(
            CacheHeader::default().read(&headers),
            Some(CacheOutcome::Hit)
        );
        let equals: CacheHeader = "cf-cache-status=hit".parse().expect("valid");
        assert_eq!(equals.read(&headers), Some(CacheOutcome::Miss));
        headers.insert("cf-cache-status", HeaderValue::from_static("Hit"));
        assert_eq!(equals.read(&headers), Some(CacheOutcome::Hit));
        let absent: CacheHeader = "x-other=1".parse().expect("valid");
        assert_eq!(absent.read(&headers), None);
        assert_eq!(equals.to_string(), "cf-cache-status=hit");
        assert!("x=".parse::<CacheHeader>().is_err());
        assert!("a b".parse::<CacheHeader>().is_err());
    }
}
