//! The API key a keyed mock requires, checked the way the providers check theirs.
//!
//! OpenAI routes take `Authorization: Bearer KEY`; Anthropic's `/v1/messages` takes `x-api-key:
//! KEY` (and the Bearer form, as Anthropic's API does for OAuth-style clients). Keys are compared
//! in constant time, so the mock does not teach a gateway's tests to tolerate a timing oracle; only
//! the length can show, as with any such comparison.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::MockError;
use crate::wire::{ApiError, Provider};

/// A key every provider route requires.
#[derive(Clone)]
pub(crate) struct RequiredKey(Box<[u8]>);

impl std::fmt::Debug for RequiredKey {
    /// Never prints the key: configs end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequiredKey(..)")
    }
}

impl RequiredKey {
    /// Refuses keys no client could send: empty, or with bytes outside visible ASCII.
    pub fn new(key: &str) -> Result<Self, MockError> {
        if key.is_empty() {
            return Err(MockError::ApiKey("it is empty"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MockError::ApiKey(
                "it must be visible ASCII (no spaces or control characters)",
            ));
        }
        Ok(Self(key.as_bytes().into()))
    }

    /// `Ok` when `headers` carry the key in `provider`'s form; otherwise the provider's 401.
    pub fn check(&self, headers: &HeaderMap, provider: Provider) -> Result<(), ApiError> {
        let presented = match provider {
            Provider::Anthropic => headers
                .get("x-api-key")
                .map(|v| Some(v.as_bytes()))
                .or_else(|| {
                    headers
                        .get(header::AUTHORIZATION)
                        .map(|v| bearer(v.as_bytes()))
                }),
            Provider::OpenAi => headers
                .get(header::AUTHORIZATION)
                .map(|v| bearer(v.as_bytes())),
        };
        match presented {
            None => Err(ApiError::unauthorized(provider, true)),
            Some(Some(key)) if bool::from(key.ct_eq(&self.0)) => Ok(()),
            // Present but wrong, or an Authorization header of another scheme.
            Some(_) => Err(ApiError::unauthorized(provider, false)),
        }
    }
}

/// The token of a `Bearer` authorization value (scheme case-insensitive, as RFC 9110 says).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn each_provider_takes_its_own_header() {
        let key = RequiredKey::new("sk-test").expect("valid key");
        let openai = Provider::OpenAi;
        let anthropic = Provider::Anthropic;
        assert!(
            key.check(&headers(&[("authorization", "Bearer sk-test")]), openai)
                .is_ok()
        );
        assert!(
            key.check(&headers(&[("authorization", "bearer sk-test")]), openai)
                .is_ok()
        );
        assert!(
            key.check(&headers(&[("x-api-key", "sk-test")]), anthropic)
                .is_ok()
        );
        assert!(
            key.check(&headers(&[("authorization", "Bearer sk-test")]), anthropic)
                .is_ok()
        );
        // OpenAI routes do not read x-api-key.
        assert_eq!(
            key.check(&headers(&[("x-api-key", "sk-test")]), openai),
            Err(ApiError::unauthorized(openai, true))
        );
        for wrong in [
            ("authorization", "Bearer sk-tes"),
            ("authorization", "Basic sk-test"),
            ("authorization", "Bearer"),
        ] {
            assert_eq!(
                key.check(&headers(&[wrong]), openai),
                Err(ApiError::unauthorized(openai, false)),
                "{wrong:?}"
            );
        }
        assert_eq!(
            key.check(&headers(&[("x-api-key", "sk-test2")]), anthropic),
            Err(ApiError::unauthorized(anthropic, false))
        );
    }

    #[test]
    fn unusable_keys_are_refused() {
        assert!(RequiredKey::new("").is_err());
        assert!(RequiredKey::new("sk test").is_err());
        assert!(RequiredKey::new("sk-\u{e9}").is_err());
    }
}
