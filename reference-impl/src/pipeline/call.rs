//! Enqueue + call: the attempt loop over ranked candidates, with fallback and retries.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{Context, forwarded};
use crate::breaker::{Deferred, Outcome};
use crate::error::ApiError;
use crate::provider::Provider;
use crate::proxy::{self, AttemptError, Reply};
use crate::queue::{QueueError, QueuePermit};
use crate::router::{Attempt, Target};
use crate::server::Shared;

/// A successful upstream call: the reply, the queue slot it holds and, for a stream, the
/// breaker admission to settle when the stream ends.
pub(super) struct Called {
    pub reply: Reply,
    pub permit: Option<QueuePermit>,
    pub pending: Option<StreamAdmission>,
}

/// A stream's breaker admission, bound to its provider: settled with the stream's outcome
/// when it ends, or, if dropped unsettled (a panic on the way), abandoned, so a half-open
/// breaker never keeps a probe slot for a stream that is gone.
pub(super) struct StreamAdmission {
    pub provider: Arc<Provider>,
    deferred: Option<Deferred>,
}

impl StreamAdmission {
    /// Tells the provider's breaker how the stream ended.
    pub fn settle(mut self, outcome: Outcome) {
        if let Some(deferred) = self.deferred.take() {
            self.provider.breaker.settle(deferred, outcome);
        }
    }
}

impl Drop for StreamAdmission {
    fn drop(&mut self) {
        if let Some(deferred) = self.deferred.take() {
            self.provider.breaker.settle(deferred, Outcome::Abandoned);
        }
    }
}

/// Why a candidate is not tried again for this request.
#[derive(Clone, Copy)]
enum Skip {
    /// It cannot express the request.
    Unsupported,
    /// Its circuit is open for this long.
    Open(Duration),
}

/// Enqueue + call: tries the ranked candidates until one answers, within
/// `routing.max_attempts` and `routing.deadline_ms`, honouring each provider's circuit
/// breaker, queue and `retry-after`.
pub(super) async fn call(
    gw: &Shared,
    cx: &mut Context<'_>,
    plan: &[Target],
) -> Result<Called, ApiError> {
    let routing = gw.router.config();
    let deadline = cx.clock.started() + routing.deadline();
    let forward = forwarded(&cx.headers, &gw.config.server.forward_header_prefixes);
    let priority = cx.priority();
    let mut skipped: Vec<Option<Skip>> = vec![None; plan.len()];
    let mut last: Option<(AttemptError, &Arc<Provider>)> = None;
    let (mut attempts, mut turn) = (0, 0);
    while attempts < routing.max_attempts as usize && skipped.iter().any(Option::is_none) {
        let index = turn % plan.len();
        let round = turn / plan.len();
        turn += 1;
        if skipped[index].is_some() {
            continue;
        }
        let target = &plan[index];
        let provider = &target.provider;
        let breaker = match provider.breaker.allow() {
            Ok(permit) => permit,
            Err(open) => {
                skipped[index] = Some(Skip::Open(open.retry_after));
                continue;
            }
        };
        let pause = Pause::before(round, provider, gw);
        if pause.longest() >= deadline.saturating_duration_since(Instant::now()) {
            break;
        }
        if !pause.longest().is_zero() {
            cx.clock.upstream(pause.wait(provider)).await;
        }
        let permit = match &provider.queue {
            Some(queue) => Some(
                cx.clock
                    .queued(queue.acquire(priority))
                    .await
                    .map_err(queue_error)?,
            ),
            None => None,
        };
        if attempts > 0 {
            gw.metrics.retries.fetch_add(1, Relaxed);
        }
        attempts += 1;
        cx.stamp.provider = Some(provider.header_value.clone());
        let budget = routing
            .attempt_timeout()
            .min(deadline.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let model = target.model(cx.inbound.model());
        let attempt = proxy::attempt(provider, model, &cx.inbound, &forward, cx.clock);
        match tokio::time::timeout(budget, attempt)
            .await
            .unwrap_or(Err(AttemptError::Timeout))
        {
            Ok(reply) => {
                gw.router
                    .record(provider, Attempt::Answered(began.elapsed()));
                // A stream has only begun: whether it succeeds is known when it ends.
                let pending = match &reply {
                    Reply::Complete { .. } => {
                        breaker.success();
                        None
                    }
                    Reply::Stream(_) => Some(StreamAdmission {
                        provider: provider.clone(),
                        deferred: Some(breaker.defer()),
                    }),
                };
                return Ok(Called {
                    reply,
                    permit,
                    pending,
                });
            }
            Err(error) => {
                tracing::debug!(
                    provider = provider.name(),
                    attempts,
                    outcome = error.label(),
                    "upstream attempt failed"
                );
                gw.router.record_failure(provider, breaker, &error);
                if !error.is_retryable() {
                    return Err(error.into_api_error(provider.name()));
                }
                if matches!(error, AttemptError::Unsupported(_)) {
                    skipped[index] = Some(Skip::Unsupported);
                }
                last = Some((error, provider));
            }
        }
    }
    if let Some((error, provider)) = last {
        return Err(error.into_api_error(provider.name()));
    }
    let open = skipped.iter().filter_map(|s| match s {
        Some(Skip::Open(after)) => Some(*after),
        _ => None,
    });
    match open.min() {
        Some(retry_after) => Err(ApiError::unavailable(
            "every provider for this model is failing (circuit open)",
        )
        .with_code("circuit_open")
        .with_retry_after(Some(retry_after))),
        None => Err(ApiError::gateway_timeout(
            "the request deadline passed before an upstream could be tried",
        )),
    }
}

fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::Full { retry_after } => {
            ApiError::unavailable("too many requests are waiting for this provider")
                .with_code("queue_full")
                .with_retry_after(Some(retry_after))
        }
        QueueError::Timeout { waited } => {
            ApiError::gateway_timeout(format!("waited {} ms for a free slot", waited.as_millis()))
        }
    }
}

/// What stands between a request and its next attempt on a provider.
struct Pause {
    /// The provider's `retry-after` cooldown, as long as it lasts; shorter if the provider
    /// answers another request meanwhile ([`Health::cooled_down`]).
    ///
    /// [`Health::cooled_down`]: crate::health::Health::cooled_down
    cooldown: Duration,
    /// When every candidate was tried and a provider is tried again: an exponential backoff.
    backoff: Duration,
}

impl Pause {
    fn before(round: usize, provider: &Provider, gw: &Shared) -> Pause {
        let cooldown = provider.health.cooldown().unwrap_or_default();
        let backoff = match round {
            0 => Duration::ZERO,
            _ => Duration::from_millis(
                gw.router
                    .config()
                    .backoff_ms
                    .saturating_mul(1 << (round - 1).min(16)),
            ),
        };
        Pause { cooldown, backoff }
    }

    /// The most it can last.
    fn longest(&self) -> Duration {
        self.cooldown.max(self.backoff)
    }

    async fn wait(self, provider: &Provider) {
        let cooldown = async {
            if !self.cooldown.is_zero() {
                provider.health.cooled_down(self.cooldown).await;
            }
        };
        let backoff = async {
            if !self.backoff.is_zero() {
                tokio::time::sleep(self.backoff).await;
            }
        };
        tokio::join!(cooldown, backoff);
    }
}
