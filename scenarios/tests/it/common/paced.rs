//! Mocks whose pacing the tests know, to check what the load generator measures against what
//! the mock was told to do. The harness's tests include this file too, to check the same
//! through the built binary.

use std::time::Duration;

use mock_providers::{Distribution, MockConfig, MockServer, Profile};

/// A mock that streams `tokens` tokens, the first after `ttft_ms`, then one every 10 ms.
pub async fn paced_mock(ttft_ms: f64, tokens: u64) -> MockServer {
    start(Profile {
        ttft_ms: Distribution::constant(ttft_ms),
        itl_ms: Distribution::constant(10.0),
        output_tokens: Distribution::constant(tokens as f64),
        ..Profile::fast()
    })
    .await
}

/// A mock that answers quickly (five tokens, the first after 5 ms) until
/// [`stall_one_second`] holds it up.
pub async fn quick_mock() -> MockServer {
    start(quick()).await
}

async fn start(profile: Profile) -> MockServer {
    MockServer::start(MockConfig::new(profile))
        .await
        .expect("mock starts")
}

/// Waits `after`, then stalls `mock` (a [`quick_mock`]) for one second, each first token held
/// a second, and makes it quick again: the stall that coordinated omission would hide.
pub async fn stall_one_second(mock: &MockServer, after: Duration) {
    tokio::time::sleep(after).await;
    let stalled = Profile {
        ttft_ms: Distribution::constant(1_000.0),
        ..quick()
    };
    mock.set_profile(stalled).expect("valid profile");
    tokio::time::sleep(Duration::from_secs(1)).await;
    mock.set_profile(quick()).expect("valid profile");
}

fn quick() -> Profile {
    Profile {
        ttft_ms: Distribution::constant(5.0),
        itl_ms: Distribution::constant(1.0),
        output_tokens: Distribution::constant(5.0),
        ..Profile::fast()
    }
}
