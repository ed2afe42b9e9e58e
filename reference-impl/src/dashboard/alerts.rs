//! Alerts: simple thresholds over the last window of samples, evaluated by the sampler once a
//! second, so reading them costs a lock and a copy.

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;
use crate::config::ConfigError;
use crate::limits;

use super::sample::{ProviderInsight, Window};

/// `[dashboard.alerts]`: when an alert fires. The defaults flag what an operator would want to
/// look at; they are not tuned to any one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertThresholds {
    /// Share of responses that were 5xx or broken streams over the window, above which
    /// `error_rate` fires.
    pub error_rate: f64,
    /// Responses the window must hold before `error_rate` can fire, so two requests and one
    /// failure is not a 50 % alarm.
    pub min_requests: u64,
    /// End-to-end p95 over the window above which `p95_latency` fires.
    pub p95_latency_ms: u64,
    /// Whether an open circuit breaker fires `breaker_open` (one alert per provider).
    pub breaker_open: bool,
    /// Share of a provider's queue slots in use at or above which `queue_saturation` fires.
    pub queue_saturation: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            error_rate: 0.05,
            min_requests: 20,
            p95_latency_ms: 10_000,
            breaker_open: true,
            queue_saturation: 0.9,
        }
    }
}

impl AlertThresholds {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("dashboard.alerts.error_rate", self.error_rate),
            ("dashboard.alerts.queue_saturation", self.queue_saturation),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Invalid {
                    field: field.to_owned(),
                    reason: "must be between 0 and 1".to_owned(),
                });
            }
        }
        limits::duration_at_most("dashboard.alerts.p95_latency_ms", self.p95_latency_ms)
    }
}

/// Which threshold an alert crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    ErrorRate,
    P95Latency,
    BreakerOpen,
    QueueSaturation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// One active alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    /// The provider it concerns; `None` for gateway-wide alerts.
    pub provider: Option<String>,
    pub value: f64,
    pub threshold: f64,
    pub message: String,
    /// When it started firing (Unix milliseconds); kept while it stays active.
    pub since_unix_ms: u64,
}

/// The alerts active now, given the last window and each provider's state. An alert that was
/// already active (same kind and provider) keeps its `since_unix_ms`.
pub fn evaluate(
    limits: &AlertThresholds,
    window: &Window,
    providers: &[ProviderInsight],
    previous: &[Alert],
    now_unix_ms: u64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut raise = |kind, severity, provider: Option<&str>, value, threshold, message| {
        let since_unix_ms = previous
            .iter()
            .find(|a| a.kind == kind && a.provider.as_deref() == provider)
            .map_or(now_unix_ms, |a| a.since_unix_ms);
        out.push(Alert {
            kind,
            severity,
            provider: provider.map(str::to_owned),
            value,
            threshold,
            message,
            since_unix_ms,
        });
    };
    if window.requests >= limits.min_requests && window.error_rate > limits.error_rate {
        raise(
            AlertKind::ErrorRate,
            Severity::Critical,
            None,
            window.error_rate,
            limits.error_rate,
            format!(
                "{:.1} % of {} responses in the last {:.0} s failed",
                window.error_rate * 100.0,
                window.requests,
                window.interval_secs
            ),
        );
    }
    let p95_us = window.latency_us.p95;
    let limit_us = limits.p95_latency_ms.saturating_mul(1_000);
    if window.latency_us.count > 0 && p95_us > limit_us {
        raise(
            AlertKind::P95Latency,
            Severity::Warning,
            None,
            p95_us as f64 / 1_000.0,
            limits.p95_latency_ms as f64,
            format!(
                "p95 latency {:.0} ms over the last {:.0} s",
                p95_us as f64 / 1_000.0,
                window.interval_secs
            ),
        );
    }
    for p in providers {
        if limits.breaker_open && p.breaker == BreakerState::Open {
            raise(
                AlertKind::BreakerOpen,
                Severity::Critical,
                Some(&p.provider),
                1.0,
                1.0,
                format!("the circuit breaker of `{}` is open", p.provider),
            );
        }
        if let Some(queue) = &p.queue
            && queue.utilization >= limits.queue_saturation
        {
            raise(
                AlertKind::QueueSaturation,
                Severity::Warning,
                Some(&p.provider),
                queue.utilization,
                limits.queue_saturation,
                format!(
                    "`{}` uses {:.0} % of its queue slots ({} waiting)",
                    p.provider,
                    queue.utilization * 100.0,
                    queue.depth
                ),
            );
        }
    }
    out
}
