//! Model -> ranked upstream candidates.
//!
//! Each candidate gets a score from three factors normalised to 0..=1 (cheapest = 1,
//! fastest = 1, reliability as is), weighted by `routing.weights`. Providers that are
//! unhealthy (reliability under `min_reliability`, or cooling down after a `retry-after`) are
//! skipped while a healthy candidate exists; if none is healthy, all are ranked so the
//! request still has a chance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::breaker::Permit;
use crate::config::{ANY_MODEL, RoutingConfig};
use crate::health::{HealthView, Smoothing};
use crate::provider::Provider;
use crate::proxy::AttemptError;

/// One provider that can serve the requested model, and the model name to send it.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    /// Upstream model name when it differs from the requested one.
    pub model: Option<Arc<str>>,
}

impl Target {
    pub fn model<'a>(&'a self, requested: &'a str) -> &'a str {
        self.model.as_deref().unwrap_or(requested)
    }
}

/// How one attempt on a provider went, as its moving averages see it.
#[derive(Debug, Clone, Copy)]
pub enum Attempt {
    /// The provider answered (response headers, or a stream's first event) after this long.
    Answered(Duration),
    /// The provider failed the attempt; with `retry_after` when it asked not to be called
    /// again before that.
    Failed { retry_after: Option<Duration> },
}

/// Routing table plus the scoring policy.
#[derive(Debug)]
pub struct Router {
    routes: HashMap<String, Vec<Target>>,
    any: Option<Vec<Target>>,
    providers: Vec<Arc<Provider>>,
    config: RoutingConfig,
}

impl Router {
    /// Builds the table; `providers` must contain every provider the routes name (config
    /// validation guarantees it), others are ignored.
    pub fn new(
        config: RoutingConfig,
        providers: Vec<Arc<Provider>>,
        routes: &[crate::config::ModelRoute],
    ) -> Self {
        let mut table = HashMap::new();
        let mut any = None;
        for route in routes {
            let targets: Vec<Target> = route
                .candidates
                .iter()
                .filter_map(|c| {
                    let provider = providers.iter().find(|p| p.name() == c.provider)?;
                    Some(Target {
                        provider: provider.clone(),
                        model: c.model.as_deref().map(Arc::from),
                    })
                })
                .collect();
            if route.name == ANY_MODEL {
                any = Some(targets);
            } else {
                table.insert(route.name.clone(), targets);
            }
        }
        Self {
            routes: table,
            any,
            providers,
            config,
        }
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    pub fn smoothing(&self) -> Smoothing {
        Smoothing {
            alpha: self.config.ewma_alpha,
            half_life_secs: self.config.reliability_half_life_secs,
        }
    }

    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// A route serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.any.is_some() || self.routes.contains_key(model)
    }

    /// Ranked candidates for `model`, best first; `None` when no route serves it. (Circuit
    /// breakers are consulted per attempt, where asking them is what lets them probe.)
    pub fn plan(&self, model: &str) -> Option<Vec<Target>> {
        let targets = self.routes.get(model).or(self.any.as_ref())?;
        if targets.len() == 1 {
            // Nothing to rank: a lone candidate is tried whatever its health.
            return Some(targets.clone());
        }
        let now = Instant::now();
        let smoothing = self.smoothing();
        let mut scored: Vec<(Target, HealthView)> = targets
            .iter()
            .map(|t| (t.clone(), t.provider.health.view(now, smoothing)))
            .collect();
        let min_cost = scored
            .iter()
            .map(|(t, _)| t.provider.config.cost)
            .fold(f64::INFINITY, f64::min);
        let min_latency = scored
            .iter()
            .filter_map(|(_, h)| h.latency_us)
            .fold(f64::INFINITY, f64::min);
        let weights = &self.config.weights;
        let score = |(t, h): &(Target, HealthView)| {
            let cost = min_cost / t.provider.config.cost;
            // Unmeasured providers count as fast as the fastest, so they get tried.
            let latency = match h.latency_us {
                Some(l) if min_latency.is_finite() && l > 0.0 => min_latency / l,
                _ => 1.0,
            };
            weights.cost * cost + weights.latency * latency + weights.reliability * h.reliability
        };
        let healthy =
            |h: &HealthView| h.reliability >= self.config.min_reliability && h.cooldown.is_none();
        if scored.iter().any(|(_, h)| healthy(h)) {
            scored.retain(|(_, h)| healthy(h));
        }
        // Best score first, except that a provider cooling down (it asked, with `retry-after`,
        // not to be called yet) goes after every one that is not, and among those cooling down
        // the one whose cooldown ends first leads: with none healthy, a request must not wait
        // out one provider's cooldown while another could answer it sooner. (`None < Some`.)
        // Stable sort: equal ranks keep the configured order.
        scored.sort_by(|a, b| {
            a.1.cooldown
                .cmp(&b.1.cooldown)
                .then_with(|| score(b).total_cmp(&score(a)))
        });
        Some(scored.into_iter().map(|(t, _)| t).collect())
    }

    /// Records the outcome of one attempt in the provider's moving averages.
    pub fn record(&self, provider: &Provider, attempt: Attempt) {
        match attempt {
            Attempt::Answered(latency) => provider.health.success(latency, self.smoothing()),
            Attempt::Failed { retry_after } => {
                provider.health.failure(retry_after, self.smoothing());
            }
        }
    }

    /// A failed attempt on `provider`: counted against its reliability (unless the request
    /// itself was at fault) and, for an outage, against its circuit breaker through `admission`.
    pub fn record_failure(&self, provider: &Provider, admission: Permit<'_>, error: &AttemptError) {
        if error.is_provider_failure() {
            let retry_after = error.retry_after();
            self.record(provider, Attempt::Failed { retry_after });
        }
        if error.opens_circuit() {
            admission.failure();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;
    use crate::config::{GatewayConfig, ProviderConfig, ProviderKind};

    const FAILED: Attempt = Attempt::Failed { retry_after: None };

    fn router(costs: &[f64]) -> Router {
        let configs: Vec<ProviderConfig> = costs
            .iter()
            .enumerate()
            .map(|(i, &cost)| ProviderConfig {
                cost,
                ..ProviderConfig::new(format!("p{i}"), ProviderKind::OpenAi, "http://127.0.0.1:1")
            })
            .collect();
        let config = GatewayConfig::with_providers(configs.clone());
        let providers = configs
            .into_iter()
            .map(|c| Arc::new(Provider::new(c, &BreakerConfig::default(), None).unwrap()))
            .collect();
        Router::new(config.routing, providers, &config.models)
    }

    fn names(plan: &[Target]) -> Vec<&str> {
        plan.iter().map(|t| t.provider.name()).collect()
    }

    #[test]
    fn cheaper_provider_ranks_first_and_ties_keep_config_order() {
        let r = router(&[2.0, 1.0, 1.0]);
        assert_eq!(names(&r.plan("m").unwrap()), ["p1", "p2", "p0"]);
    }

    #[test]
    fn unreliable_provider_is_skipped_while_another_is_healthy() {
        let r = router(&[1.0, 1.0]);
        let p0 = r.providers()[0].clone();
        r.record(&p0, FAILED);
        r.record(&p0, FAILED);
        assert_eq!(names(&r.plan("m").unwrap()), ["p1"]);
        let p1 = r.providers()[1].clone();
        r.record(&p1, FAILED);
        r.record(&p1, FAILED);
        r.record(&p1, FAILED);
        // Nobody healthy: everyone is ranked, least bad first.
        assert_eq!(names(&r.plan("m").unwrap()), ["p0", "p1"]);
    }

    #[test]
    fn a_lone_candidate_is_planned_however_unhealthy() {
        let r = router(&[1.0]);
        let p0 = r.providers()[0].clone();
        r.record(&p0, FAILED);
        r.record(&p0, FAILED);
        assert_eq!(names(&r.plan("m").unwrap()), ["p0"]);
    }

    #[test]
    fn cooling_down_provider_is_skipped() {
        let r = router(&[1.0, 1.0]);
        let p0 = r.providers()[0].clone();
        p0.health.failure(
            Some(Duration::from_secs(60)),
            Smoothing {
                alpha: 0.0001,
                half_life_secs: 30.0,
            },
        );
        assert_eq!(names(&r.plan("m").unwrap()), ["p1"]);
    }

    #[test]
    fn cooling_down_providers_rank_last_soonest_done_first() {
        let r = router(&[1.0, 2.0]);
        let (p0, p1) = (r.providers()[0].clone(), r.providers()[1].clone());
        // p0: one 429 with a long `retry-after`; p1: unreliable, but callable now.
        r.record(
            &p0,
            Attempt::Failed {
                retry_after: Some(Duration::from_secs(60)),
            },
        );
        for _ in 0..3 {
            r.record(&p1, FAILED);
        }
        assert_eq!(names(&r.plan("m").unwrap()), ["p1", "p0"]);
        // Both cooling down: p1's cooldown ends first, so p1 still leads despite its score.
        r.record(
            &p1,
            Attempt::Failed {
                retry_after: Some(Duration::from_secs(10)),
            },
        );
        assert_eq!(names(&r.plan("m").unwrap()), ["p1", "p0"]);
        r.record(
            &p0,
            Attempt::Failed {
                retry_after: Some(Duration::from_secs(1)),
            },
        );
        assert_eq!(names(&r.plan("m").unwrap()), ["p0", "p1"]);
    }

    #[test]
    fn faster_provider_wins_at_equal_cost() {
        let r = router(&[1.0, 1.0]);
        r.record(
            &r.providers()[0].clone(),
            Attempt::Answered(Duration::from_millis(100)),
        );
        r.record(
            &r.providers()[1].clone(),
            Attempt::Answered(Duration::from_millis(10)),
        );
        assert_eq!(names(&r.plan("m").unwrap()), ["p1", "p0"]);
    }
}
