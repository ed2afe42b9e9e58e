//! The live dashboard under `/admin/dashboard`: one self-contained page fed by a server-sent
//! event a second, and JSON endpoints with the same figures.
//!
//! A sampler task ([`start_sampler`]) reads the gateway's own counters once a second
//! ([`sample`]) into fixed rings ([`history`]) and evaluates the alert thresholds
//! ([`alerts`]); the request path pays nothing for it. Each sample is serialized once and put
//! in a `watch` channel: an event-stream client is sent the newest sample whenever it is ready
//! for more, so a slow reader skips stale samples instead of queueing them.
//!
//! Behind the admin token like the rest of the admin API. A browser cannot put a bearer header
//! on a page load or an `EventSource`, so `GET /admin/dashboard?token=TOKEN` trades the token
//! for an `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin/dashboard` (holding a digest
//! of the token, not the token) and redirects to the page without the token in its address.

pub mod alerts;
pub mod history;
mod page;
pub mod sample;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::server::Shared;

use alerts::AlertThresholds;
use history::{History, SECOND_POINTS, TEN_SECOND_POINTS};
use sample::Reading;

/// How often the sampler reads the gateway, and the feed sends an event.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The cookie a browser holds after trading the token in the page's address.
const COOKIE: &str = "gateway_dashboard";

/// `[dashboard]`: alert thresholds (the rings and the sampling period are fixed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub alerts: AlertThresholds,
}

impl DashboardConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.alerts.validate()
    }
}

/// The dashboard's state in [`Shared`]: the history and the feed of serialized samples.
pub struct Dashboard {
    history: Mutex<History>,
    /// The newest [`Realtime`] as JSON; empty before the first sample.
    feed: watch::Sender<Bytes>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            history: Mutex::default(),
            feed: watch::Sender::new(Bytes::new()),
        }
    }
}

impl Dashboard {
    /// Reads the gateway once: a point in the rings, fresh alerts, and an event for the feed.
    pub fn sample(&self, gw: &Shared) {
        let reading = Reading::take(gw);
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let uptime = gw.started.elapsed().as_secs_f64();
        let json = {
            let mut history = self.history();
            let realtime = history.record(reading, &gw.config.dashboard.alerts, unix_ms, uptime);
            serde_json::to_vec(realtime)
        };
        match json {
            Ok(json) => {
                self.feed.send_replace(Bytes::from(json));
            }
            Err(e) => tracing::warn!("cannot serialize a dashboard sample: {e}"),
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest sample as JSON, `None` before the first.
    fn latest(&self) -> Option<Bytes> {
        Some(self.feed.borrow().clone()).filter(|b| !b.is_empty())
    }
}

/// Samples the gateway now, so the endpoints have figures from the start, then every
/// [`SAMPLE_EVERY`] on a task of its own until the gateway starts draining.
pub fn start_sampler(gw: Arc<Shared>) {
    gw.dashboard.sample(&gw);
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + SAMPLE_EVERY;
        let mut tick = tokio::time::interval_at(first, SAMPLE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = gw.draining.cancelled() => return,
                _ = tick.tick() => gw.dashboard.sample(&gw),
            }
        }
    });
}

pub fn routes(shared: Arc<Shared>) -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/", get(page::page))
        .route("/events", get(events))
        .route("/metrics/realtime", get(realtime))
        .route("/metrics/trends", get(trends))
        .route("/alerts", get(alerts))
        .route("/providers/insights", get(insights))
        .layer(middleware::from_fn_with_state(shared, authorize))
}

/// The admin rule, taking the token as a bearer header or as the dashboard's cookie; and the
/// trade of `?token=` on the page for that cookie.
async fn authorize(
    State(gw): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = gw.config.admin.token.as_deref()
        && let Some(given) = page::token_in_address(&request)
    {
        return login(token, &given);
    }
    let headers = request.headers();
    let admitted = admin::admit(&gw, peer, |token| {
        let by_header = admin::bearer(headers).is_some_and(|given| admin::same(given, token));
        by_header
            || cookie(headers, COOKIE)
                .is_some_and(|given| admin::same(given.as_bytes(), session(token).as_bytes()))
    });
    match admitted {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The cookie's value for `token`: a digest, so the browser never holds the token itself.
fn session(token: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"gateway dashboard session\0")
        .chain_update(token)
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 303 to the page with the session cookie set, or 401 for a wrong token.
fn login(token: &str, given: &str) -> Response {
    if !admin::same(given.as_bytes(), token.as_bytes()) {
        return ApiError::unauthorized().into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/admin/dashboard; HttpOnly; SameSite=Strict",
        session(token.as_bytes())
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_static("/admin/dashboard"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

/// The value of cookie `name` in the request's `cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim())
        })
}

/// What a JSON endpoint answers before the first sample (only in the first instant after
/// start, or where no sampler runs).
fn not_sampled_yet() -> Response {
    ApiError::unavailable("no sample yet: the dashboard samples the gateway once a second")
        .with_retry_after(Some(SAMPLE_EVERY))
        .into_response()
}

/// `GET metrics/realtime`: the newest sample, as the feed sends it.
async fn realtime(State(gw): State<Arc<Shared>>) -> Response {
    match gw.dashboard.latest() {
        Some(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        None => not_sampled_yet(),
    }
}

/// `GET metrics/trends?minutes=N&resolution=1s|10s`: the points of the last N minutes
/// (default 5 at 1 s), oldest first.
async fn trends(State(gw): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let mut minutes = None;
    let mut resolution = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "minutes" => minutes = Some(value.into_owned()),
            "resolution" => resolution = Some(value.into_owned()),
            _ => {
                return ApiError::invalid_request(
                    "unknown parameter; expected minutes, resolution",
                )
                .with_param(key.into_owned())
                .into_response();
            }
        }
    }
    let (step_secs, kept) = match resolution.as_deref().unwrap_or("1s") {
        "1s" => (1, SECOND_POINTS),
        "10s" => (10, TEN_SECOND_POINTS),
        _ => {
            return ApiError::invalid_request("resolution must be 1s or 10s")
                .with_param("resolution")
                .into_response();
        }
    };
    let max_minutes = kept * step_secs / 60;
    let minutes = match minutes.as_deref().map(str::parse::<usize>) {
        None => 5.min(max_minutes),
        Some(Ok(m)) if (1..=max_minutes).contains(&m) => m,
        Some(_) => {
            return ApiError::invalid_request(format!(
                "minutes must be a whole number from 1 to {max_minutes} at this resolution"
            ))
            .with_param("minutes")
            .into_response();
        }
    };
    let history = gw.dashboard.history();
    let ring = match step_secs {
        1 => &history.seconds,
        _ => &history.ten_seconds,
    };
    let points: Vec<_> = ring.newest(minutes * 60 / step_secs).copied().collect();
    Json(json!({
        "resolution": format!("{step_secs}s"),
        "minutes": minutes,
        "max_minutes": max_minutes,
        "points": points,
    }))
    .into_response()
}

/// `GET alerts`: the alerts active at the newest sample, and the thresholds.
async fn alerts(State(gw): State<Arc<Shared>>) -> Response {
    let history = gw.dashboard.history();
    let Some(latest) = &history.latest else {
        return not_sampled_yet();
    };
    Json(json!({
        "unix_ms": latest.unix_ms,
        "alerts": latest.alerts,
        "thresholds": gw.config.dashboard.alerts,
    }))
    .into_response()
}

/// `GET providers/insights`: per provider at the newest sample.
async fn insights(State(gw): State<Arc<Shared>>) -> Response {
    let history = gw.dashboard.history();
    let Some(latest) = &history.latest else {
        return not_sampled_yet();
    };
    Json(json!({ "unix_ms": latest.unix_ms, "providers": latest.providers })).into_response()
}

/// `GET events`: `text/event-stream`, one `data:` event per sample with the same JSON as
/// `metrics/realtime`, the newest first. Ends when the gateway starts draining.
async fn events(State(gw): State<Arc<Shared>>) -> Response {
    let body = Body::from_stream(feed(gw.dashboard.feed.subscribe(), gw.draining.clone()));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// The events of one feed client. Each is the newest sample when the client is ready for one:
/// a client that reads slowly misses samples, nothing queues up for it.
fn feed(
    mut samples: watch::Receiver<Bytes>,
    stop: CancellationToken,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    samples.mark_changed();
    futures::stream::unfold((samples, stop), |(mut samples, stop)| async move {
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return None,
                changed = samples.changed() => changed.ok()?,
            }
            let json = samples.borrow_and_update().clone();
            if json.is_empty() {
                continue;
            }
            let mut event = BytesMut::with_capacity(json.len() + 8);
            event.put_slice(b"data: ");
            event.put_slice(&json);
            event.put_slice(b"\n\n");
            return Some((Ok(event.freeze()), (samples, stop)));
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_slow_feed_reader_gets_the_newest_sample_and_skips_the_rest() {
        let (samples, receiver) = watch::channel(Bytes::new());
        let stop = CancellationToken::new();
        let mut events = std::pin::pin!(feed(receiver, stop.clone()));
        samples.send_replace(Bytes::from_static(b"{\"n\":0}"));
        let first = events.next().await.expect("an event").expect("infallible");
        assert_eq!(&first[..], b"data: {\"n\":0}\n\n");
        // Ten thousand samples while the client reads nothing: one event waits, the newest.
        for n in 1..=10_000 {
            samples.send_replace(Bytes::from(format!("{{\"n\":{n}}}")));
        }
        let next = events.next().await.expect("an event").expect("infallible");
        assert_eq!(&next[..], b"data: {\"n\":10000}\n\n");
        let nothing_more = tokio::time::timeout(Duration::from_millis(50), events.next()).await;
        assert!(nothing_more.is_err(), "no stale sample was queued");
        stop.cancel();
        assert!(events.next().await.is_none(), "the feed ends when draining");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_holds_no_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gateway_dashboard=abc ; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let value = session(b"s3cret");
        assert_eq!(value.len(), 64);
        assert!(!value.contains("s3cret"));
        assert_ne!(value, session(b"s3cret2"));
    }
}
