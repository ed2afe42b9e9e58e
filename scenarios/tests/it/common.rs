//! Running a plan against a mock and reading back what the recorder saw, as one run; the
//! machine, as the tests share it. `paced` starts the mocks whose pacing the tests know; the
//! harness's tests include the same file.

pub mod paced;

use std::sync::Arc;
use std::time::Duration;

use reports::RunResult;
use reports::model::{Environment, GoodputLimits};
use scenarios::attack::{self, Plan};
use scenarios::client::Client;
use scenarios::load::{Load, Ran};
use scenarios::recorder::Recorder;
use scenarios::workload::{Mix, PromptMix, Prompts, RequestKind};
use tokio::sync::RwLock;

/// The machine, as the tests of this binary share it. The test runner runs tests side by side;
/// the accuracy test times the recorder to a millisecond and must not run beside another test's
/// load. Tests that load the machine (an open-model run, thousands of prompts through the
/// tokenizer) hold it shared, `read`; the accuracy test holds it alone, `write`. An async
/// lock, as the async tests hold it across their awaits.
pub static MACHINE: RwLock<()> = RwLock::const_new(());

/// Streamed chat requests of the conversational mix under `load`, seeded by `seed`.
pub fn stream_plan(load: Load, seed: u64) -> Plan {
    Plan {
        load,
        mix: Mix::only(RequestKind::Stream),
        prompts: Prompts::Mix(PromptMix::conversational()),
        model: "gpt-4o-mini".to_owned(),
        embedding_model: "text-embedding-3-small".to_owned(),
        seed,
    }
}

/// Runs `plan` against the server at `url` and returns every second the recorder closed, as
/// the run `name`.
pub async fn attack(name: &str, url: &str, plan: Plan) -> RunResult {
    attack_phases(name, url, plan).await.0
}

/// [`attack`], and the phases of a rate sweep as they ran.
pub async fn attack_phases(name: &str, url: &str, plan: Plan) -> (RunResult, Vec<Ran>) {
    let recorder = Arc::new(Recorder::new(GoodputLimits::default()));
    let client = Client::plain(url, Duration::from_secs(10)).expect("client");
    let phases = attack::run(plan, client, Arc::clone(&recorder))
        .await
        .expect("attack runs");
    let mut run = RunResult::new(
        name,
        toml::Table::new(),
        Environment::default(),
        chrono::Utc::now(),
    );
    for interval in recorder.close_all() {
        run.push_interval(interval);
    }
    (run, phases)
}
