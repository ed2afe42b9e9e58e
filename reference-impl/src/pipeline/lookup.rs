//! Lookup: a cached answer, or a seat on an identical request already under way.

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, StatusCode};

use super::{Context, json_response, sse_response};
use crate::cache::{Cacheability, FollowError, Leader, Lookup};
use crate::error::ApiError;
use crate::server::Shared;

/// What the cache made of a request.
pub(super) enum Cached {
    /// Answered from the cache or by an identical request in flight.
    Answered(Response),
    /// Go upstream; as the leader of a flight when the request is cacheable.
    Miss(Option<Leader>),
}

/// Lookup: a cached answer, or a seat on an identical request already under way.
pub(super) async fn lookup(gw: &Shared, cx: &mut Context<'_>) -> Result<Cached, ApiError> {
    let Some(cache) = &gw.cache else {
        return Ok(Cached::Miss(None));
    };
    let Context {
        headers,
        inbound,
        clock,
        stamp,
        ..
    } = cx;
    let request = match cache.classify_for(inbound.api(), inbound.raw(), headers) {
        Cacheability::Cacheable(request) => request,
        Cacheability::Bypass(_) => {
            stamp.cache = Some("bypass");
            return Ok(Cached::Miss(None));
        }
    };
    loop {
        let follower = match cache.lookup(&request).await {
            Lookup::Lead(leader) => {
                stamp.cache = Some("miss");
                return Ok(Cached::Miss(Some(leader)));
            }
            Lookup::Hit(hit) => {
                stamp.cache = Some("hit");
                stamp.provider = Some(HeaderValue::from_static("cache"));
                return Ok(Cached::Answered(if inbound.stream() {
                    let events = hit.sse(inbound.include_usage()).map_err(|e| {
                        ApiError::bad_gateway(format!("cached answer is unusable: {e}"))
                    })?;
                    sse_response(Body::from_stream(futures::stream::iter(
                        events.into_iter().map(Ok::<_, std::convert::Infallible>),
                    )))
                } else {
                    json_response(hit.body)
                }));
            }
            Lookup::Follow(follower) => follower,
        };
        // Waiting on the leader is waiting on its upstream.
        let api = inbound.api();
        let answer = if inbound.stream() {
            let mut events = Box::pin(follower.into_stream(inbound.include_usage()));
            match clock.upstream(events.next()).await {
                Some(Err(FollowError::Retry)) => continue,
                Some(Err(FollowError::Failed(e))) => Err(e),
                first => {
                    let rest = events.map(move |item| {
                        Ok::<_, std::convert::Infallible>(item.unwrap_or_else(|e| {
                            ApiError::bad_gateway(e.to_string()).sse_event_for(api)
                        }))
                    });
                    let first = first.into_iter().map(|item| Ok(item.unwrap_or_default()));
                    Ok(sse_response(Body::from_stream(
                        futures::stream::iter(first).chain(rest),
                    )))
                }
            }
        } else {
            match clock.upstream(follower.wait()).await {
                Err(FollowError::Retry) => continue,
                Err(FollowError::Failed(e)) => Err(e),
                Ok(body) => Ok(json_response(body)),
            }
        };
        stamp.cache = Some("coalesced");
        stamp.provider = Some(HeaderValue::from_static("cache"));
        return answer.map(Cached::Answered).map_err(|e| {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
            ApiError::new(status, "upstream_error", e.message)
        });
    }
}
