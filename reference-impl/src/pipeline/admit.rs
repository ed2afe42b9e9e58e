//! Admit: who is calling, and whether their tier and the model are within rate limits.

use http::{HeaderMap, header};

use super::Context;
use crate::error::ApiError;
use crate::limiter::{Decision, KeyId, Scope, Tier};
use crate::server::Shared;

/// Who is calling: the hashed API key (only when something keys on it) and its tier.
#[derive(Clone, Copy)]
pub(super) struct Caller {
    pub key: Option<KeyId>,
    pub tier: Tier,
}

impl Caller {
    pub fn identify(gw: &Shared, headers: &HeaderMap) -> Self {
        // Hashing the key costs a SHA-256; skip it when neither limits nor tiers use it.
        if gw.limiter.is_none() && gw.tiers.is_empty() {
            return Self {
                key: None,
                tier: gw.config.default_tier,
            };
        }
        let api_key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        let key = KeyId::from_api_key(api_key);
        let tier = gw
            .tiers
            .get(&key)
            .copied()
            .unwrap_or(gw.config.default_tier);
        Self {
            key: Some(key),
            tier,
        }
    }
}

/// Admit: the caller's tier and the model must be within their rate limits.
pub(super) async fn admit(gw: &Shared, cx: &mut Context<'_>) -> Result<(), ApiError> {
    let caller = cx.caller;
    let (Some(limiter), Some(key)) = (&gw.limiter, &caller.key) else {
        return Ok(());
    };
    let decision = limiter.check(key, caller.tier, cx.inbound.model()).await;
    cx.stamp.rate_limit = Some(decision);
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Denied {
            scope, retry_after, ..
        } => Err(ApiError::rate_limited(format!(
            "rate limit exceeded: {} quota of the {} tier",
            match scope {
                Scope::Key => "request",
                Scope::Model => "model",
                Scope::Tokens => "token",
            },
            caller.tier.as_str()
        ))
        .with_retry_after(Some(retry_after))),
    }
}
