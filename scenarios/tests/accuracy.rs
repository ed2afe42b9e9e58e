//! Against a mock with fixed pacing (TTFT 50 ms, ITL 10 ms), the recorded TTFT and ITL medians
//! match the pacing: the measurement adds no visible error of its own.

use std::sync::Arc;
use std::time::Duration;

use mock_providers::{Distribution, MockConfig, MockServer, Profile};
use reports::RunResult;
use reports::model::{Environment, GoodputLimits, Metric};
use scenarios::attack::{self, Plan};
use scenarios::client::Client;
use scenarios::load::{Load, Stages};
use scenarios::recorder::Recorder;
use scenarios::workload::{Mix, PromptMix, RequestKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_itl_medians_match_the_mock_pacing() {
    let profile = Profile {
        ttft_ms: Distribution::constant(50.0),
        itl_ms: Distribution::constant(10.0),
        output_tokens: Distribution::constant(20.0),
        ..Profile::fast()
    };
    let mock = MockServer::start(MockConfig::new(profile)).await.expect("mock starts");
    let recorder = Arc::new(Recorder::new(GoodputLimits::default()));
    let plan = Plan {
        load: Load::Closed {
            stages: Stages::constant(4, Duration::from_secs(3)),
            think_time: None,
        },
        mix: Mix::only(RequestKind::Stream),
        prompts: PromptMix::conversational(),
        model: "gpt-4o-mini".to_owned(),
        embedding_model: "text-embedding-3-small".to_owned(),
        seed: 1,
    };
    let client = Client::new(mock.url(), Duration::from_secs(10)).expect("client");
    attack::run(plan, client, Arc::clone(&recorder)).await.expect("attack runs");

    let mut run = RunResult::new("accuracy", toml::Table::new(), Environment::default(), chrono::Utc::now());
    for interval in recorder.close_all() {
        run.push_interval(interval);
    }
    assert!(run.totals.requests >= 20, "requests: {}", run.totals.requests);
    assert_eq!(run.totals.errors.total(), 0, "{:?}", run.totals.errors);
    assert_eq!(run.totals.output_tokens, 20 * run.totals.requests);

    let ttft = run.summary(Metric::Ttft).expect("ttft recorded");
    let itl = run.summary(Metric::Itl).expect("itl recorded");
    let tpot = run.summary(Metric::Tpot).expect("tpot recorded");
    // Nineteen gaps per 20-token stream: every gap is recorded.
    assert_eq!(itl.count, 19 * run.totals.requests);
    eprintln!("ttft {ttft:?}\nitl {itl:?}\ntpot {tpot:?}");
    assert!((48_000..=52_000).contains(&ttft.p50), "TTFT p50 {} us", ttft.p50);
    assert!((9_000..=11_000).contains(&itl.p50), "ITL p50 {} us", itl.p50);
    assert!((9_000..=11_500).contains(&tpot.p50), "TPOT p50 {} us", tpot.p50);
    let latency = run.summary(Metric::Latency).expect("latency recorded");
    assert!(latency.p50 >= 50_000 + 19 * 10_000, "e2e p50 {} us", latency.p50);
}
