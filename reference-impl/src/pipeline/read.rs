//! Read: content type, size limit, parse as the front door's API; and the headers passed
//! upstream.

use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::front::{Api, Inbound};
use crate::limits;

/// Checks the content type and size limit and parses the body as a request of `api`.
pub(super) async fn read(
    request: Request,
    limit: usize,
    api: Api,
) -> Result<(HeaderMap, Inbound), ApiError> {
    let (headers, body) = read_json(request, limit).await?;
    Ok((headers, Inbound::parse(api, body)?))
}

/// Checks the content type and size limit and collects the body, not yet parsed.
pub(crate) async fn read_json(
    request: Request,
    limit: usize,
) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    if !limits::declared_within(&body, limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::invalid_request(format!("cannot read request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((parts.headers, body))
}

/// Request headers passed to the upstream (per-request control headers of the mocks).
pub(crate) fn forwarded(headers: &HeaderMap, prefixes: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    if prefixes.is_empty() {
        return out;
    }
    for (name, value) in headers {
        if prefixes
            .iter()
            .any(|p| name.as_str().starts_with(p.as_str()))
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
