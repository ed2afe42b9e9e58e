//! Exit codes (docs/design.md), and the exit code of a judged run.

use reports::RunResult;
use reports::model::Limit;
use reports::slo::Slo;

/// Every SLO met.
pub const OK: i32 = 0;
/// Usage or runtime error.
pub const ERROR: i32 = 1;
/// An SLO failed.
pub const SLO_FAILED: i32 = 2;
/// A comparison found a measure worse beyond its tolerance.
pub const REGRESSION: i32 = 3;
/// Inconclusive: the failed SLOs rest on seconds in which the load generator was saturated
/// (or a gate was too noisy to decide).
pub const INCONCLUSIVE: i32 = 4;

/// `error` and its causes on one line, each said once.
///
/// Many error messages already end with their cause (`cannot listen on ADDR: REASON`) and also
/// hand it on as their `source`; printing the chain as `{:#}` does would then say the reason
/// twice. A cause already in the line is left out.
pub fn message(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// The exit code of a judged run: 0 every SLO met, 2 one failed, 4 when SLOs failed but
/// the part of the run before the load generator first saturated met them, or there is no
/// such part: the failure may be the client's, not the target's. A run that met its SLOs
/// exits 0 even when the generator saturated (the summary warns about it).
///
/// A rate sweep exits 4 when the generator saturated at or below the first rate that failed
/// (its capacity would be the client's; a failing rate counts only if it had not already failed
/// before the saturation, as a run does), else 0 when it found a capacity that meets every
/// `capacity` SLO, else 2.
pub fn of_run(result: &RunResult) -> i32 {
    if let Some(sweep) = &result.sweep {
        return match sweep.limit() {
            Limit::Generator => INCONCLUSIVE,
            Limit::Target | Limit::None if sweep.capacity().is_some() && result.slos_passed() => OK,
            Limit::Target | Limit::None => SLO_FAILED,
        };
    }
    if result.slos_passed() {
        return OK;
    }
    let slos: Vec<Slo> = result.slo_results.iter().map(|r| r.slo.clone()).collect();
    if result.failure_rests_on_saturation(&slos) {
        INCONCLUSIVE
    } else {
        SLO_FAILED
    }
}

#[cfg(test)]
mod tests {
    use reports::model::Environment;
    use reports::slo::{evaluate, parse_slos};
    use reports::synthetic::synthetic_sweep;

    use super::*;

    #[test]
    fn a_message_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 127.0.0.1:9000: {source}")]
        struct Listen {
            source: std::io::Error,
        }
        let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = anyhow::Error::new(Listen { source: in_use() }).context("mock provider");
        let said = message(&error);
        assert_eq!(
            said,
            format!(
                "mock provider: cannot listen on 127.0.0.1:9000: {}",
                in_use()
            )
        );
        let plain = anyhow::Error::new(in_use())
            .context("--base")
            .context("gate");
        assert_eq!(message(&plain), format!("gate: --base: {}", in_use()));
    }

    /// A swept run with `levels` (rate, passed, saturated) judged against `capacity_slo`.
    fn swept(levels: &[(f64, bool, bool)], capacity_slo: &str) -> RunResult {
        let mut run = RunResult::new(
            "stress",
            toml::Table::new(),
            Environment::default(),
            chrono::Utc::now(),
        );
        run.sweep = Some(synthetic_sweep(levels));
        let slos = parse_slos(capacity_slo).expect("valid");
        run.slo_results = evaluate(&slos, &run);
        run
    }

    #[test]
    fn a_comparisons_verdict_exits_with_these_codes() {
        use reports::stats::Verdict;
        assert_eq!(i32::from(Verdict::Regression.exit_code()), REGRESSION);
        assert_eq!(i32::from(Verdict::Inconclusive.exit_code()), INCONCLUSIVE);
        assert_eq!(i32::from(Verdict::Unchanged.exit_code()), OK);
        assert_eq!(i32::from(Verdict::Improvement.exit_code()), OK);
    }

    #[test]
    fn a_sweep_exits_on_its_capacity_and_on_who_limited_it() {
        let at_least_20 =
            "[[slo]]\nmetric = \"capacity\"\nstat = \"rate\"\nop = \">=\"\nvalue = 20\n";
        let target_bound = [
            (10.0, true, false),
            (20.0, true, false),
            (30.0, false, false),
        ];
        assert_eq!(of_run(&swept(&target_bound, "")), OK);
        assert_eq!(of_run(&swept(&target_bound, at_least_20)), OK);
        let lower = [(10.0, true, false), (20.0, false, false)];
        assert_eq!(of_run(&swept(&lower, at_least_20)), SLO_FAILED);
        assert_eq!(of_run(&swept(&[(10.0, false, false)], "")), SLO_FAILED);
        // Saturated at or below the first failure: the client's limit, whatever the SLOs.
        let client_bound = [(10.0, true, false), (20.0, false, true)];
        assert_eq!(of_run(&swept(&client_bound, at_least_20)), INCONCLUSIVE);
        let saturated_later = [
            (10.0, true, false),
            (20.0, false, false),
            (30.0, false, true),
        ];
        assert_eq!(of_run(&swept(&saturated_later, "")), OK);
    }
}
