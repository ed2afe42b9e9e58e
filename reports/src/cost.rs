//! What a run's tokens would have cost at a provider's list prices.
//!
//! Prices come from the run config, so a report never goes stale with a built-in price list:
//!
//! ```toml
//! model = "gpt-4o-mini"
//! [prices."gpt-4o-mini"]
//! input_per_mtok = 0.15    # currency units per million input tokens
//! output_per_mtok = 0.60   # currency units per million output tokens
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::RunResult;

/// Price of one model, per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Prices by model name: the `prices` table of a run config.
pub type PriceTable = BTreeMap<String, Price>;

/// The estimated cost of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostEstimate {
    pub model: String,
    pub price: Price,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total: f64,
    /// Cost per 1,000 successful requests, `None` without successes.
    pub per_1k_requests: Option<f64>,
}

/// Why no estimate can be made; renders as one line that says how to get one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoEstimate {
    #[error("the run config names no `model`")]
    NoModel,
    #[error(
        "no price for model `{0}`: add `[prices.\"{0}\"]` with `input_per_mtok` and `output_per_mtok` to the run config"
    )]
    NoPrice(String),
    #[error("the `prices` table of the run config is malformed: {0}")]
    BadPrices(String),
}

/// Estimates the cost of `run` from the `model` and `prices` of its config.
pub fn estimate(run: &RunResult) -> Result<CostEstimate, NoEstimate> {
    let model = run
        .config
        .get("model")
        .and_then(toml::Value::as_str)
        .ok_or(NoEstimate::NoModel)?;
    let prices: PriceTable = match run.config.get("prices") {
        Some(value) => value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| NoEstimate::BadPrices(e.message().to_owned()))?,
        None => PriceTable::new(),
    };
    let price = *prices
        .get(model)
        .ok_or_else(|| NoEstimate::NoPrice(model.to_owned()))?;
    let (input_tokens, output_tokens) = (run.totals.input_tokens, run.totals.output_tokens);
    let total = input_tokens as f64 / 1e6 * price.input_per_mtok
        + output_tokens as f64 / 1e6 * price.output_per_mtok;
    Ok(CostEstimate {
        model: model.to_owned(),
        price,
        input_tokens,
        output_tokens,
        total,
        per_1k_requests: (run.totals.ok > 0).then(|| total / run.totals.ok as f64 * 1_000.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Environment;

    fn run_with(config: toml::Table, input_tokens: u64, output_tokens: u64, ok: u64) -> RunResult {
        let mut run = RunResult::new("cost", config, Environment::default(), chrono::Utc::now());
        run.totals.input_tokens = input_tokens;
        run.totals.output_tokens = output_tokens;
        run.totals.ok = ok;
        run
    }

    #[test]
    fn prices_the_tokens_of_the_configured_model() {
        let config = toml::toml! {
            model = "m"
            [prices.m]
            input_per_mtok = 2.0
            output_per_mtok = 10.0
            [prices.other]
            input_per_mtok = 100.0
            output_per_mtok = 100.0
        };
        let estimate = estimate(&run_with(config, 3_000_000, 500_000, 2_000)).expect("priced");
        assert_eq!(estimate.total, 3.0 * 2.0 + 0.5 * 10.0);
        assert_eq!(estimate.per_1k_requests, Some(11.0 / 2.0));
    }

    #[test]
    fn says_what_is_missing() {
        let no_model = estimate(&run_with(toml::Table::new(), 1, 1, 1));
        assert_eq!(no_model, Err(NoEstimate::NoModel));
        let no_price = estimate(&run_with(toml::toml! { model = "m" }, 1, 1, 1))
            .expect_err("no price")
            .to_string();
        assert!(no_price.contains("[prices.\"m\"]"), "{no_price}");
        let bad = estimate(&run_with(
            toml::toml! { model = "m"
            [prices.m]
            input_per_mtok = "cheap" },
            1,
            1,
            1,
        ));
        assert!(matches!(bad, Err(NoEstimate::BadPrices(_))), "{bad:?}");
    }
}
