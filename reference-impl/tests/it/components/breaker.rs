//! Circuit breaker transitions, on tokio's paused clock.

use std::time::Duration;

use reference_impl::breaker::{
    BreakerConfig, BreakerConfigError, BreakerState, CircuitBreaker, Outcome,
};

fn fail(breaker: &CircuitBreaker, times: usize) {
    for _ in 0..times {
        breaker.allow().expect("allowed").failure();
    }
}

fn succeed(breaker: &CircuitBreaker, times: usize) {
    for _ in 0..times {
        breaker.allow().expect("allowed").success();
    }
}

#[tokio::test(start_paused = true)]
async fn opens_exactly_at_the_fifth_consecutive_failure() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    fail(&breaker, 4);
    succeed(&breaker, 1); // resets the run
    fail(&breaker, 4);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
    let open = breaker.allow().expect_err("open");
    assert_eq!(open.retry_after, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn half_opens_after_the_open_period_and_closes_after_two_successes() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    fail(&breaker, 5);
    tokio::time::advance(Duration::from_millis(59_999)).await;
    assert_eq!(
        breaker.allow().expect_err("still open").retry_after,
        Duration::from_millis(1)
    );
    tokio::time::advance(Duration::from_millis(1)).await;

    let probe = breaker.allow().expect("first probe");
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.allow().is_err(), "one probe at a time");
    probe.success();
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "one success is not enough"
    );
    breaker.allow().expect("second probe").success();
    assert_eq!(breaker.state(), BreakerState::Closed);

    let stats = breaker.stats();
    assert_eq!((stats.opened, stats.half_opened, stats.closed), (1, 1, 1));
    assert_eq!(stats.rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_a_full_period() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    fail(&breaker, 5);
    tokio::time::advance(Duration::from_secs(60)).await;
    breaker.allow().expect("probe").failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        breaker.allow().expect_err("open").retry_after,
        Duration::from_secs(30)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_its_slot() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    fail(&breaker, 5);
    tokio::time::advance(Duration::from_secs(60)).await;
    drop(breaker.allow().expect("probe"));
    assert!(
        breaker.allow().is_ok(),
        "slot of the dropped probe is free again"
    );
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_admitted_in_an_earlier_state_are_ignored() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    let slow = breaker.allow().expect("closed");
    fail(&breaker, 5);
    tokio::time::advance(Duration::from_secs(60)).await;
    let probe = breaker.allow().expect("probe");
    slow.success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    probe.success();
    breaker.allow().expect("probe").success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failure_ratio_opens_without_a_consecutive_run() {
    let config = BreakerConfig {
        failure_ratio: Some(0.5),
        ratio_min_calls: 10,
        ..BreakerConfig::default()
    };
    let breaker = CircuitBreaker::new("p", config);
    for _ in 0..4 {
        fail(&breaker, 1);
        succeed(&breaker, 1);
    }
    fail(&breaker, 1);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "9 calls: below the minimum"
    );
    succeed(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open, "5 of 10 failed");
}

#[tokio::test(start_paused = true)]
async fn failure_ratio_window_restarts() {
    let config = BreakerConfig {
        failure_ratio: Some(0.5),
        ratio_min_calls: 4,
        ratio_window_secs: 10,
        ..BreakerConfig::default()
    };
    let breaker = CircuitBreaker::new("p", config);
    fail(&breaker, 1);
    succeed(&breaker, 1);
    fail(&breaker, 1);
    tokio::time::advance(Duration::from_secs(10)).await;
    succeed(&breaker, 1); // a new window: 0 of 1 failed
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_every_transition() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    let mut changes = breaker.subscribe();
    fail(&breaker, 5);
    changes.changed().await.expect("sender alive");
    assert_eq!(*changes.borrow_and_update(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(60)).await;
    breaker.allow().expect("probe").success();
    assert_eq!(*changes.borrow_and_update(), BreakerState::HalfOpen);
}

#[test]
fn config_reads_toml_and_rejects_unknown_or_zero_fields() {
    let config: BreakerConfig =
        toml::from_str("failure_threshold = 3\nopen_secs = 5").expect("valid toml");
    assert_eq!(config.failure_threshold, 3);
    assert_eq!(config.success_threshold, 2);
    let error = toml::from_str::<BreakerConfig>("failure_treshold = 3").expect_err("typo");
    assert!(error.to_string().contains("failure_treshold"), "{error}");
    let zero = BreakerConfig {
        success_threshold: 0,
        ..BreakerConfig::default()
    };
    assert_eq!(
        zero.validate(),
        Err(BreakerConfigError::Zero("success_threshold"))
    );
}

#[tokio::test(start_paused = true)]
async fn deferred_outcomes_count_when_settled() {
    let breaker = CircuitBreaker::new("p", BreakerConfig::default());
    // Streams that began and then broke: five failures, settled at their ends.
    let streams: Vec<_> = (0..5)
        .map(|_| breaker.allow().expect("allowed").defer())
        .collect();
    assert_eq!(breaker.state(), BreakerState::Closed, "nothing settled yet");
    for stream in streams {
        breaker.settle(stream, Outcome::Failure);
    }
    assert_eq!(breaker.state(), BreakerState::Open);

    // A probe whose client went away frees its slot and decides nothing.
    tokio::time::advance(Duration::from_secs(60)).await;
    let probe = breaker.allow().expect("probe");
    assert!(probe.is_probe());
    breaker.settle(probe.defer(), Outcome::Abandoned);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    // A probe stream that breaks reopens it.
    let probe = breaker.allow().expect("the slot is free again").defer();
    breaker.settle(probe, Outcome::Failure);
    assert_eq!(breaker.state(), BreakerState::Open);
}
