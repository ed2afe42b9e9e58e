//! Record: fill the cache, charge tokens and take measurements, for streams when they end.
//!
//! The answer is already in the client's API, and the cache stores it in that shape.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;

use super::admit::Caller;
use super::call::{Called, StreamAdmission};
use super::{Context, json_response, sse_response};
use crate::breaker::Outcome;
use crate::cache::{Assembler, FlightError, Leader};
use crate::limiter::Tier;
use crate::metrics::GaugeGuard;
use crate::proxy::{self, Reply, StreamEnd, StreamObserver, Usage};
use crate::queue::QueuePermit;
use crate::router::Attempt;
use crate::server::Shared;

/// Record: fill the cache, charge tokens and take the response's measurements. Streams do
/// this when they end, through [`StreamRecord`].
pub(super) fn record(
    gw: &Arc<Shared>,
    cx: &Context<'_>,
    called: Called,
    leader: Option<Leader>,
) -> Response {
    let caller = cx.caller;
    let Called {
        reply,
        permit,
        pending,
    } = called;
    match reply {
        Reply::Complete { body, usage } => {
            drop(permit);
            if let Some(leader) = leader {
                leader.complete(body.clone());
            }
            charge_tokens(gw, caller, usage);
            json_response(body)
        }
        Reply::Stream(stream) => {
            let observer = StreamRecord {
                _open: gw.metrics.open_streams.hold(),
                gw: gw.clone(),
                pending,
                started: cx.clock.started(),
                caller,
                fill: leader.map(|leader| {
                    let assembler = leader.assembler();
                    (leader, assembler)
                }),
                _permit: permit,
            };
            let stream = stream
                .with_shutdown(gw.streams_stop.clone())
                .observe(Box::new(observer));
            sse_response(Body::from_stream(stream))
        }
    }
}

/// Charges the response's tokens to the caller's budget, when the tier has one.
fn charge_tokens(gw: &Shared, caller: Caller, usage: Option<Usage>) {
    let (Some(limiter), Some(key), Some(usage)) = (&gw.limiter, caller.key, usage) else {
        return;
    };
    let tiers = &gw.config.limiter.tiers;
    let limit = match caller.tier {
        Tier::Free => &tiers.free,
        Tier::Pro => &tiers.pro,
        Tier::Enterprise => &tiers.enterprise,
    };
    if limit.tokens_per_minute.is_some() {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter
                .charge_tokens(&key, caller.tier, usage.total_tokens)
                .await;
        });
    }
}

/// The record step of one stream: metrics, cache fill from the chunks sent, token charge, and
/// the provider's breaker and reliability told how the stream ended; holds the queue slot and
/// its unit of `open_streams` until it ends (or is dropped, however that happens).
struct StreamRecord {
    _open: GaugeGuard,
    gw: Arc<Shared>,
    /// The provider's breaker admission, settled when the stream ends.
    pending: Option<StreamAdmission>,
    started: Instant,
    caller: Caller,
    /// The flight this stream leads and the completion assembled from its chunks.
    fill: Option<(Leader, Assembler)>,
    _permit: Option<QueuePermit>,
}

impl StreamObserver for StreamRecord {
    fn on_chunk(&mut self, chunk: &Bytes) {
        let Some((leader, assembler)) = &mut self.fill else {
            return;
        };
        leader.send_chunk(chunk.clone());
        let assembled = proxy::sse::events(chunk).try_for_each(|event| {
            let data = std::str::from_utf8(&event.data).map_err(|_| ())?;
            assembler.push(data).map_err(|_| ())
        });
        if assembled.is_err() {
            // Followers still get the chunks; only storing the answer is given up.
            self.fill = None;
        }
    }

    fn on_end(self: Box<Self>, end: StreamEnd, usage: Option<Usage>) {
        let m = &self.gw.metrics;
        m.latency_us
            .record(self.started.elapsed().as_micros() as u64);
        if end == StreamEnd::Broken {
            m.streams_broken.fetch_add(1, Relaxed);
        }
        if let Some(admission) = self.pending {
            if end == StreamEnd::Broken {
                // Counted a success at the first event; it was not one.
                let broke = Attempt::Failed { retry_after: None };
                self.gw.router.record(&admission.provider, broke);
            }
            admission.settle(match end {
                StreamEnd::Complete => Outcome::Success,
                StreamEnd::Broken => Outcome::Failure,
                StreamEnd::ClientGone => Outcome::Abandoned,
            });
        }
        if let Some((leader, assembler)) = self.fill {
            match (end, assembler.finish()) {
                (StreamEnd::Complete, Ok(body)) => leader.complete(body),
                (StreamEnd::Complete, Err(e)) => leader.fail(FlightError {
                    status: 502,
                    message: format!("cannot assemble the streamed answer: {e}"),
                }),
                (StreamEnd::Broken, _) => leader.fail(FlightError {
                    status: 502,
                    message: "the upstream stream broke".to_owned(),
                }),
                (StreamEnd::ClientGone, _) => drop(leader),
            }
        }
        charge_tokens(&self.gw, self.caller, usage);
    }
}
