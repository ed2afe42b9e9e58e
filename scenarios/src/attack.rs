//! Running a load on Goose: one scenario of identical users, closed or open model, all
//! measurement going to the shared [`Recorder`].
//!
//! Goose schedules the users (stages become its test plan); the transactions send with the
//! shared [`Client`] rather than Goose's request methods, because they must read SSE bodies as
//! they arrive. Goose's own metrics, reports, telnet and websocket controllers are all off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::goose::{GooseUser, Scenario, Transaction, TransactionFunction};
use goose::{GooseAttack, GooseError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reports::model::Offered;

use crate::client::{Call, Client, Scratch};
use crate::load::{self, ArrivalSchedule, Load, Ran, Stages, Sweep, Take, Worker};
use crate::recorder::{Recorder, Sample};
use crate::workload::{Mix, PromptGenerator, Prompts, RequestKind};

/// Requests still in flight this long after the planned end are abandoned as timeouts.
const DRAIN: Duration = Duration::from_secs(10);

/// Everything a run needs to generate its load.
#[derive(Clone, Debug)]
pub struct Plan {
    pub load: Load,
    pub mix: Mix,
    pub prompts: Prompts,
    /// Model for chat requests.
    pub model: String,
    /// Model for embeddings requests.
    pub embedding_model: String,
    pub seed: u64,
}

/// The load could not run.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    #[error("load generator: {0}")]
    Goose(String),
    /// A sweep's phases are closed and open loads; a sweep is not one of them.
    #[error("load generator: a rate sweep cannot run as a single phase")]
    NotAPhase,
}

impl From<GooseError> for AttackError {
    fn from(error: GooseError) -> AttackError {
        AttackError::Goose(error.to_string())
    }
}

/// Shared by every user's transactions.
struct Context {
    plan: Plan,
    client: Client,
    recorder: Arc<Recorder>,
    schedule: Option<ArrivalSchedule>,
    deadline: Instant,
    worker: Worker,
    /// Requests that succeeded, read by a sweep to measure its baseline and probe rates.
    completed: Arc<AtomicU64>,
    /// A sweep's, so its phases share their users' connections; a load of one phase has none,
    /// and a user's connections close when it stops.
    handover: Option<Arc<Handover>>,
}

/// Each user's [`Scratch`] (its read buffers and its open connections) when its phase ended,
/// by run-wide user number. The user of the same number in a sweep's next phase takes it up:
/// a phase starts on the connections the phase before left open, as a client with a pool of
/// keep-alive connections would, instead of opening one per user again. Without that, every
/// phase's first seconds open hundreds of connections, and their cost to the target lands on
/// the rate being judged.
#[derive(Default)]
struct Handover(Mutex<Vec<Option<Scratch>>>);

impl Handover {
    /// User `user`'s scratch from the phase before, or a new one.
    fn take(&self, user: usize) -> Scratch {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get_mut(user)
            .and_then(Option::take)
            .unwrap_or_default()
    }

    /// Keeps user `user`'s scratch for the next phase; at most one a user, so no more than the
    /// pool's.
    fn keep(&self, user: usize, scratch: Scratch) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() <= user {
            kept.resize_with(user + 1, || None);
        }
        kept[user] = Some(scratch);
    }
}

/// One user's own state: its prompt generator, its random choices, reusable read buffers.
#[derive(Clone)]
struct UserState {
    prompts: PromptGenerator,
    rng: StdRng,
    scratch: Scratch,
}

/// Runs `plan` against `client`'s targets until the load is over (or [`stop`] is called),
/// recording into `recorder`. Returns once every user has finished its last request, with the
/// phases of a rate sweep as they ran (none for other loads).
pub async fn run(
    plan: Plan,
    client: Client,
    recorder: Arc<Recorder>,
) -> Result<Vec<Ran>, AttackError> {
    run_share(plan, Worker::SOLE, client, recorder).await
}

/// Runs `worker`'s share of `plan` (see [`Worker`]): its part of the users of every stage, or
/// its slots of the arrival schedule from its part of the user pool. `plan` is the whole run's.
/// A rate sweep is not shared: its later phases follow from what its probe measured here.
pub async fn run_share(
    plan: Plan,
    worker: Worker,
    client: Client,
    recorder: Arc<Recorder>,
) -> Result<Vec<Ran>, AttackError> {
    let completed = Arc::new(AtomicU64::new(0));
    match &plan.load {
        Load::Sweep(sweep) => run_sweep(sweep, &plan, client, recorder, completed).await,
        Load::Closed { .. } | Load::Open { .. } => {
            run_phase(plan, worker, client, recorder, completed, None).await?;
            Ok(Vec::new())
        }
    }
}

/// The phases of `sweep` one after the other (see [`Sweep`]), each a load of its own on a fresh
/// seed, so a gateway's cache does not answer one phase with another's prompts, and on the
/// connections the phase before left open (see [`Handover`]). A stopped phase (an aborting
/// SLO, Ctrl-C) ends the sweep.
async fn run_sweep(
    sweep: &Sweep,
    plan: &Plan,
    client: Client,
    recorder: Arc<Recorder>,
    completed: Arc<AtomicU64>,
) -> Result<Vec<Ran>, AttackError> {
    let sweep_phase = SweepPhase {
        plan,
        client,
        recorder,
        completed: Arc::clone(&completed),
        handover: Arc::new(Handover::default()),
    };
    let count = || completed.load(Ordering::Relaxed);
    let mut ran = Vec::new();

    let before = count();
    ran.push(
        sweep_phase
            .run(0, Offered::Synchronous, closed(1, sweep.baseline))
            .await?,
    );
    let synchronous = (count() - before) as f64 / sweep.baseline.as_secs_f64();
    if goose::is_killswitch_triggered() {
        return Ok(ran);
    }

    // Long streams complete only after the pool's first seconds: the probe's rate is read over
    // its second half.
    let half = sweep.probe / 2;
    let users = u64::try_from(sweep.users).unwrap_or(u64::MAX);
    let (probe, max) = tokio::join!(
        sweep_phase.run(
            1,
            Offered::Throughput { users },
            closed(sweep.users, sweep.probe)
        ),
        async {
            tokio::time::sleep(half).await;
            let from = count();
            tokio::time::sleep(sweep.probe - half).await;
            (count() - from) as f64 / (sweep.probe - half).as_secs_f64().max(1e-3)
        }
    );
    ran.push(probe?);

    for rate in sweep.rates_between(synchronous, max) {
        if goose::is_killswitch_triggered() {
            break;
        }
        let load = Load::Open {
            rate,
            arrivals: sweep.arrivals,
            max_users: sweep.pool(),
            duration: sweep.per_rate,
        };
        ran.push(
            sweep_phase
                .run(ran.len(), Offered::Rate { rps: rate }, load)
                .await?,
        );
    }
    Ok(ran)
}

/// What every phase of a sweep shares.
struct SweepPhase<'a> {
    plan: &'a Plan,
    client: Client,
    recorder: Arc<Recorder>,
    completed: Arc<AtomicU64>,
    handover: Arc<Handover>,
}

impl SweepPhase<'_> {
    /// Runs phase `index` of the sweep, offering `load`, and says when it ran.
    ///
    /// A phase after the first starts on the recorder's next whole second. Answers are recorded
    /// by the second they came in, and a level is judged on the seconds from its start to the
    /// next one's: the second in which a phase's last answers came (a slow target's whole
    /// backlog, at the end of the throughput probe) then stays that phase's, instead of being
    /// judged as the next rate's. It costs at most a second between phases.
    async fn run(&self, index: usize, offered: Offered, load: Load) -> Result<Ran, AttackError> {
        let plan = Plan {
            load,
            seed: self.plan.seed.wrapping_add(index as u64),
            ..self.plan.clone()
        };
        if index > 0 {
            let now = self.recorder.origin().elapsed();
            let next = Duration::from_secs(now.as_secs() + 1);
            tokio::time::sleep(next - now).await;
        }
        let start = self.recorder.origin().elapsed();
        run_phase(
            plan,
            Worker::SOLE,
            self.client.clone(),
            Arc::clone(&self.recorder),
            Arc::clone(&self.completed),
            Some(Arc::clone(&self.handover)),
        )
        .await?;
        Ok(Ran {
            offered,
            start,
            end: self.recorder.origin().elapsed(),
        })
    }
}

/// `users` sending back to back for `duration`.
fn closed(users: usize, duration: Duration) -> Load {
    Load::Closed {
        stages: Stages::constant(users, duration),
        think_time: None,
    }
}

/// One closed or open load on Goose; `completed` counts the requests that succeeded. With a
/// `handover` (a sweep's phase), each user takes up and leaves its [`Scratch`] there.
async fn run_phase(
    plan: Plan,
    worker: Worker,
    client: Client,
    recorder: Arc<Recorder>,
    completed: Arc<AtomicU64>,
    handover: Option<Arc<Handover>>,
) -> Result<(), AttackError> {
    let deadline = Instant::now() + plan.load.duration() + DRAIN;
    let (test_plan, think_time, schedule) = match &plan.load {
        Load::Closed { stages, think_time } => {
            (stages.share(worker).goose_plan(), *think_time, None)
        }
        Load::Open {
            rate,
            arrivals,
            duration,
            ..
        } => {
            let users = plan.load.worker_peak_users(worker);
            let schedule =
                ArrivalSchedule::new(*rate, *arrivals, *duration, plan.seed).sliced(worker);
            (
                format!("{users},0;{users},{};0,0", duration.as_secs().max(1)),
                None,
                Some(schedule),
            )
        }
        Load::Sweep(_) => return Err(AttackError::NotAPhase),
    };
    let host = client.base().to_owned();
    let context = Arc::new(Context {
        plan,
        client,
        recorder,
        schedule,
        deadline,
        worker,
        completed,
        handover,
    });

    let mut scenario = Scenario::new("load")
        .register_transaction(transaction(&context, start_user).set_on_start())
        .register_transaction(transaction(&context, step))
        .register_transaction(transaction(&context, stop_user).set_on_stop());
    if let Some(think) = think_time {
        scenario = scenario.set_wait_time(think, think)?;
    }
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario)
        .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies())?
        .set_default(GooseDefault::Host, host.as_str())?
        .set_default(GooseDefault::TestPlan, test_plan.as_str())?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoMetrics, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::Quiet, 1)?;
    attack.execute().await?;
    Ok(())
}

/// Ends the running load early (an aborting SLO was lost); in-flight requests finish.
pub fn stop(reason: &str) {
    goose::trigger_killswitch(reason);
}

/// A transaction body over the shared context.
type Step = for<'a> fn(&'a Context, &'a mut GooseUser) -> BoxFuture<'a, ()>;

/// Wraps one of this module's functions as a Goose transaction over the shared context.
fn transaction(context: &Arc<Context>, f: Step) -> Transaction {
    let context = Arc::clone(context);
    let function: TransactionFunction = Arc::new(move |user| {
        let context = Arc::clone(&context);
        Box::pin(async move {
            f(&context, user).await;
            Ok(())
        })
    });
    Transaction::new(function)
}

fn start_user<'a>(context: &'a Context, user: &'a mut GooseUser) -> BoxFuture<'a, ()> {
    async move {
        // The run-wide user number, so each worker's users are distinct users of the run.
        let index = context.worker.user(user.weighted_users_index);
        let seed = context.plan.seed;
        user.set_session_data(UserState {
            prompts: PromptGenerator::new(&context.plan.prompts, seed, index),
            rng: StdRng::seed_from_u64(seed.rotate_left(32) ^ index as u64),
            scratch: context
                .handover
                .as_ref()
                .map_or_else(Scratch::new, |handover| handover.take(index)),
        });
        context.recorder.user_started();
    }
    .boxed()
}

fn stop_user<'a>(context: &'a Context, user: &'a mut GooseUser) -> BoxFuture<'a, ()> {
    async move {
        let index = context.worker.user(user.weighted_users_index);
        if let (Some(handover), Some(state)) =
            (&context.handover, user.get_session_data_mut::<UserState>())
        {
            handover.keep(index, std::mem::take(&mut state.scratch));
        }
        context.recorder.user_stopped();
    }
    .boxed()
}

/// One iteration: a request now (closed model) or at the next arrival slot (open model).
fn step<'a>(context: &'a Context, user: &'a mut GooseUser) -> BoxFuture<'a, ()> {
    async move {
        let index = user.weighted_users_index;
        let Some(state) = user.get_session_data_mut::<UserState>() else {
            return;
        };
        let Some(schedule) = &context.schedule else {
            exchange(context, state, index, None).await;
            return;
        };
        let now = Instant::now();
        match schedule.take(now) {
            Take::Slot { due, dropped } => {
                context.recorder.record_dropped(index, now, dropped);
                load::sleep_until(due).await;
                let sent = Instant::now();
                context
                    .recorder
                    .record_send_lag(index, sent, sent.saturating_duration_since(due));
                exchange(context, state, index, Some(due)).await;
            }
            Take::Done { dropped } => {
                context.recorder.record_dropped(index, now, dropped);
                // Nothing left to send: idle until Goose stops this user.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    .boxed()
}

/// Sends one request of the mix and records it, with latency measured from `intended` (the
/// open model's slot) when there is one, else from the send.
async fn exchange(
    context: &Context,
    state: &mut UserState,
    index: usize,
    intended: Option<Instant>,
) {
    let plan = &context.plan;
    let kind = plan.mix.pick(&mut state.rng);
    let prompt;
    let call = match kind {
        RequestKind::Chat | RequestKind::Stream => {
            prompt = state.prompts.next_prompt();
            Call::Chat {
                model: &plan.model,
                prompt: &prompt,
                stream: kind == RequestKind::Stream,
            }
        }
        RequestKind::Embeddings => {
            prompt = state.prompts.next_prompt();
            Call::Embeddings {
                model: &plan.embedding_model,
                input: prompt.user(),
            }
        }
        RequestKind::Models => Call::Models,
    };
    let reply = context
        .client
        .send(call, context.deadline, &mut state.scratch)
        .await;
    if reply.result.is_ok() {
        context.completed.fetch_add(1, Ordering::Relaxed);
    }
    context.recorder.record(
        index,
        &Sample {
            intended,
            reply,
            itl_us: &state.scratch.itl_us,
        },
    );
    // A request can fail without ever waiting (no descriptor left for its socket), and a
    // closed-model user then sends the next one at once: without a unit of the task's budget
    // spent here, it would never give its worker thread back, and the timers that end the run
    // would never fire.
    tokio::task::coop::consume_budget().await;
}
