//! The dashboard page: one HTML file with its style and script inline, served with a
//! Content-Security-Policy that allows exactly that script (by its SHA-256), inline style,
//! and connections back to the gateway, and nothing else: no other script, image, font, frame
//! or form target, so the page cannot load anything from elsewhere even if a figure shown in it
//! (a provider name from the config) carried markup.

use std::sync::LazyLock;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderName, HeaderValue, header};
use sha2::{Digest, Sha256};

const TEMPLATE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
/// Where in [`TEMPLATE`] the script goes.
const SCRIPT_SLOT: &str = "/*script*/";

/// The page and its policy, built once.
struct Page {
    html: String,
    policy: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let digest = Sha256::digest(SCRIPT.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest);
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; connect-src 'self'; \
         style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    Page {
        html: TEMPLATE.replacen(SCRIPT_SLOT, SCRIPT, 1),
        // Base64 and fixed ASCII: always a valid header value.
        policy: HeaderValue::try_from(policy)
            .unwrap_or(HeaderValue::from_static("default-src 'none'")),
    }
});

/// `GET /admin/dashboard`.
pub async fn page() -> Response {
    let page = &*PAGE;
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, page.policy.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        page.html.clone(),
    )
        .into_response()
}

/// The `token` of `GET /admin/dashboard?token=…` (the page, not the JSON endpoints).
pub fn token_in_address(request: &Request) -> Option<String> {
    let uri = request.uri();
    if !matches!(uri.path(), "" | "/") {
        return None;
    }
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_hash_of_the_script_in_the_page() {
        let page = &*PAGE;
        assert!(page.html.contains(SCRIPT));
        assert!(!page.html.contains(SCRIPT_SLOT));
        let policy = page.policy.to_str().expect("ascii");
        assert!(
            policy.starts_with("default-src 'none'; script-src 'sha256-"),
            "{policy}"
        );
        assert_eq!(page.html.matches("<script>").count(), 1);
    }
}
