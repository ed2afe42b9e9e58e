//! From a scenario's defaults and the run options to everything a run needs, checked: the
//! plan of one `harness scenario` run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reports::model::GoodputLimits;
use reports::slo::{Op, Quantity, Slo, SloMetric, Stat, load_slos, parse_slos};
use scenarios::attack;
use scenarios::client::{Api, ClientOptions, Verify};
use scenarios::load::{Load, Stages, Worker};
use scenarios::scenario::{self, Scenario, Transport};
use scenarios::websocket;
use scenarios::workload::{Dataset, Prompts, SharedPrefix, Synthetic, TokenCount};

use super::options::{Goodput, HeaderEntry, MockBackend, RunOptions, Span};
use super::worker::{INDEX_VARIABLE, WorkerSpec};
use crate::process;

/// Chat model sent when neither the options nor a file name one.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
const EMBEDDING_MODEL: &str = "text-embedding-3-small";
const DEFAULT_SEED: u64 = 42;
/// Where run directories go when `--out` is not given.
pub(crate) const DEFAULT_OUT: &str = "target/gatebench/runs";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// `max_tokens` of synthetic prompts when `--output-tokens` is not given.
const DEFAULT_OUTPUT_TOKENS: u32 = 128;
/// Open-model user pool per arrival per second when `--max-users` is not given: room for
/// responses taking up to this many seconds before arrivals are dropped.
const POOL_SECONDS: f64 = 5.0;
const MAX_DEFAULT_POOL: usize = 10_000;
/// Dropped arrivals a scenario's default SLOs allow when its load has an arrival schedule.
const DROPPED_LIMIT: f64 = 0.01;

/// A run, ready to start.
///
/// The typed parts are what the run uses; everything else (where it is written, how it
/// prints, whose process is sampled) is read from `options`, the one record of the settings,
/// which is also written as `config.toml` so the run can be repeated with `--config`.
#[derive(Debug)]
pub struct Plan {
    pub scenario: Scenario,
    /// The whole run's load and requests; this process sends `worker`'s share of it.
    pub attack: attack::Plan,
    pub worker: Worker,
    pub slos: Vec<Slo>,
    pub target: Target,
    /// How requests are shaped and sent: API, headers and key, TLS, timeout.
    pub client: ClientOptions,
    /// The options with every default filled in and credentials redacted.
    pub options: RunOptions,
}

impl Plan {
    /// Where the run directory is created.
    pub fn out(&self) -> &Path {
        self.options
            .out
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_OUT))
    }

    /// No live progress line and no summary table.
    pub fn quiet(&self) -> bool {
        self.options.quiet.unwrap_or(false)
    }

    /// The summary as JSON on stdout.
    pub fn json(&self) -> bool {
        self.options.json.unwrap_or(false)
    }

    /// The external gateway's process, sampled for RSS and CPU.
    pub fn gateway_pid(&self) -> Option<u32> {
        self.options.gateway_pid
    }

    /// Per-request limits for goodput.
    pub fn limits(&self) -> GoodputLimits {
        self.options.goodput.unwrap_or_default().0
    }
}

/// Where the load goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Start the mocks and the gateway as child processes.
    Embedded(MockBackend),
    /// OpenAI-compatible endpoints somewhere else (replicas of one gateway, taken in turn);
    /// never empty.
    External(Vec<String>),
}

/// Options that do not make a run; renders as one line that names the field.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown scenario `{0}` (see `harness list`)")]
    UnknownScenario(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(transparent)]
    Slo(#[from] reports::slo::SloError),
    /// Its messages name the field (`rate: ...`, `api: ...`).
    #[error(transparent)]
    WebSocket(#[from] websocket::WebSocketError),
}

fn invalid(field: &'static str, why: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field,
        why: why.into(),
    }
}

/// Resolves `options` for the scenario `name`.
pub fn resolve(name: &str, options: RunOptions) -> Result<Plan, PlanError> {
    let scenario =
        scenario::find(name).ok_or_else(|| PlanError::UnknownScenario(name.to_owned()))?;
    let load = load(&scenario, &options)?;
    let worker = match options.worker {
        Some(spec) => spec
            .resolve(std::env::var(INDEX_VARIABLE).ok().as_deref())
            .map_err(|why| invalid("worker", why))?,
        None => Worker::SOLE,
    };
    if load.worker_peak_users(worker) == 0 {
        return Err(invalid(
            "worker",
            format!(
                "worker {worker} gets no users of {} ({}): use fewer workers or more users",
                load.peak_users(),
                if matches!(load, Load::Open { .. }) {
                    "max_users"
                } else {
                    "users"
                }
            ),
        ));
    }
    let target = match &options.target {
        Some(urls) => Target::External(
            urls.split(',')
                .map(check_url)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => Target::Embedded(options.mock_backend.unwrap_or_default()),
    };
    let gateway_pid = match (options.gateway_pid, &target) {
        (None, _) => None,
        (Some(_), Target::Embedded(_)) => {
            return Err(invalid(
                "gateway_pid",
                "needs `target`: the embedded gateway's process is sampled already",
            ));
        }
        (Some(pid), Target::External(_)) if !process::runs(pid) => {
            return Err(invalid(
                "gateway_pid",
                format!("no process {pid} on this machine"),
            ));
        }
        (Some(pid), Target::External(_)) => Some(pid),
    };
    if let Target::Embedded(MockBackend::Wiremock) = target
        && !scenario.changes.is_empty()
    {
        return Err(invalid(
            "mock_backend",
            format!("scenario `{name}` changes the upstream mid-run, which needs the native mock"),
        ));
    }
    if matches!(load, Load::Sweep(_)) && worker.count() > 1 {
        return Err(invalid(
            "worker",
            "a rate sweep runs in one process (its rates follow from its own probe): give \
             --rate or --stages to split the load",
        ));
    }
    let slos = match &options.slo {
        Some(path) => load_slos(path)?,
        None => with_default_dropped(parse_slos(scenario.slo)?, &load),
    };
    if !matches!(load, Load::Sweep(_)) && slos.iter().any(|s| s.metric == SloMetric::Capacity) {
        return Err(invalid(
            "slo",
            "`capacity` is measured only by a rate sweep (stress without --rate, --users or \
             --stages)",
        ));
    }
    let timeout = options.timeout.map_or(DEFAULT_TIMEOUT, |s| s.0);
    if timeout.is_zero() {
        return Err(invalid("timeout", "must be more than 0"));
    }
    let client = client_options(&options, timeout)?;
    if client.api == Api::Anthropic {
        if let Target::Embedded(_) = target {
            return Err(invalid(
                "api",
                "the embedded gateway serves the OpenAI API only: give --target for an \
                 Anthropic-style endpoint",
            ));
        }
        if scenario.mix.entries().iter().any(|(kind, weight)| {
            *weight > 0 && *kind == scenarios::workload::RequestKind::Embeddings
        }) {
            return Err(invalid(
                "api",
                format!(
                    "scenario `{name}` sends embeddings requests, which the Anthropic API has not"
                ),
            ));
        }
    }
    if let Transport::WebSocket { .. } = scenario.transport {
        // Before any process starts: the load would refuse the same only once the stack is up.
        websocket::check(&load, client.api)?;
    }
    let limits = options.goodput.unwrap_or_default().0;
    let attack = attack::Plan {
        load: load.clone(),
        mix: scenario.mix.clone(),
        prompts: prompts(&scenario, &options)?,
        model: options
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        embedding_model: EMBEDDING_MODEL.to_owned(),
        seed: options.seed.unwrap_or(DEFAULT_SEED),
    };
    if attack.model.trim().is_empty() {
        return Err(invalid("model", "must not be empty"));
    }
    let filled = RunOptions {
        target: options.target.clone(),
        gateway_pid,
        mock_backend: match target {
            Target::Embedded(backend) => Some(backend),
            Target::External(_) => None,
        },
        model: Some(attack.model.clone()),
        prices: options.prices.clone(),
        seed: Some(attack.seed),
        worker: options.worker.map(|_| WorkerSpec::Fixed(worker)),
        goodput: Some(Goodput(limits)),
        timeout: Some(Span(timeout)),
        dataset: options.dataset.clone(),
        prompt_tokens: options.prompt_tokens,
        output_tokens: options.prompt_tokens.and(options.output_tokens),
        prefix_tokens: options.prefix_tokens,
        prefix_count: options.prefix_tokens.and(options.prefix_count),
        api: Some(client.api),
        headers: options.headers.iter().map(HeaderEntry::redacted).collect(),
        api_key_env: options.api_key_env.clone(),
        ca_cert: options.ca_cert.clone(),
        insecure: options.insecure.filter(|insecure| *insecure),
        http1: options.http1.filter(|http1| *http1),
        cache_header: options.cache_header.clone(),
        out: Some(
            options
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
        ),
        ..load_options(&load)
    };
    Ok(Plan {
        options: RunOptions {
            slo: options.slo.clone(),
            quiet: options.quiet,
            json: options.json,
            ..filled
        },
        scenario,
        attack,
        worker,
        slos,
        target,
        client,
    })
}

/// The scenario's default SLOs, and for a load with an arrival schedule (open model, rate
/// sweep) a limit on dropped arrivals: an arrival that found every user busy was never sent, so
/// without it a target too slow for the rate would pass on the requests it did get.
fn with_default_dropped(mut slos: Vec<Slo>, load: &Load) -> Vec<Slo> {
    let scheduled = matches!(load, Load::Open { .. } | Load::Sweep(_));
    if scheduled && !slos.iter().any(|s| s.metric == SloMetric::Dropped) {
        slos.push(Slo {
            metric: SloMetric::Dropped,
            stat: Stat::Ratio,
            op: Op::Lt,
            value: Quantity::Ratio(DROPPED_LIMIT),
            abort: false,
        });
    }
    slos
}

/// Where the prompts come from: a dataset file, synthetic prompts of exact token lengths, or
/// the scenario's corpus mix. A bad dataset fails here, with its file and line, before any load.
fn prompts(scenario: &Scenario, options: &RunOptions) -> Result<Prompts, PlanError> {
    let synthetic_only = [
        ("output_tokens", options.output_tokens.is_some()),
        ("prefix_tokens", options.prefix_tokens.is_some()),
        ("prefix_count", options.prefix_count.is_some()),
    ];
    match (&options.dataset, options.prompt_tokens) {
        (Some(_), Some(_)) => Err(invalid(
            "dataset",
            "give --dataset or --prompt-tokens, not both",
        )),
        (Some(path), None) => {
            if let Some((field, _)) = synthetic_only.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    field,
                    "applies to synthetic prompts (--prompt-tokens), not to --dataset",
                ));
            }
            let dataset = Dataset::load(path).map_err(|e| invalid("dataset", e.to_string()))?;
            Ok(Prompts::Dataset(std::sync::Arc::new(dataset)))
        }
        (None, Some(prompt_tokens)) => {
            let output = match options.output_tokens {
                Some(output) => output,
                None => TokenCount::new(DEFAULT_OUTPUT_TOKENS, 0)
                    .map_err(|e| invalid("output_tokens", e.to_string()))?,
            };
            let synthetic = Synthetic::new(prompt_tokens, output);
            match (options.prefix_tokens, options.prefix_count) {
                (Some(tokens), count) => {
                    let prefix = SharedPrefix::new(tokens, count.unwrap_or(1))
                        .map_err(|e| invalid("prefix_tokens", e.to_string()))?;
                    Ok(Prompts::Synthetic(synthetic.with_prefix(prefix)))
                }
                (None, Some(_)) => Err(invalid("prefix_count", "needs --prefix-tokens")),
                (None, None) => Ok(Prompts::Synthetic(synthetic)),
            }
        }
        (None, None) => match synthetic_only.iter().find(|(_, given)| *given) {
            Some((field, _)) => Err(invalid(field, "needs --prompt-tokens")),
            None => Ok(Prompts::Mix(scenario.prompts.clone())),
        },
    }
}

/// The client options of a run: the key read from its variable, the CA file and headers
/// checked, so a mistake fails here with the field's name rather than as failed requests.
pub(crate) fn client_options(
    options: &RunOptions,
    timeout: Duration,
) -> Result<ClientOptions, PlanError> {
    let mut client = ClientOptions::new(timeout);
    client.api = options.api.unwrap_or_default();
    for entry in &options.headers {
        let (name, value) = scenarios::client::header(&entry.name, &entry.value)
            .map_err(|e| invalid("headers", e.to_string()))?;
        client.headers.insert(name, value);
    }
    if let Some(variable) = &options.api_key_env {
        let key = std::env::var(variable).map_err(|_| {
            invalid(
                "api_key_env",
                format!("environment variable {variable} is not set"),
            )
        })?;
        if key.trim().is_empty() {
            return Err(invalid(
                "api_key_env",
                format!("environment variable {variable} is empty"),
            ));
        }
        client = client.with_api_key(&key).map_err(|_| {
            invalid(
                "api_key_env",
                format!("the value of {variable} cannot be sent in a header"),
            )
        })?;
    }
    client.verify = match (&options.ca_cert, options.insecure.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(invalid(
                "insecure",
                "give --ca-cert or --insecure, not both",
            ));
        }
        (Some(path), false) if !path.is_file() => {
            return Err(invalid("ca_cert", format!("no file {}", path.display())));
        }
        (Some(path), false) => Verify::WithCa(path.clone()),
        (None, true) => Verify::Insecure,
        (None, false) => Verify::WebPki,
    };
    client.http1_only = options.http1.unwrap_or(false);
    if let Some(header) = &options.cache_header {
        client.cache_header = header.0.clone();
    }
    Ok(client)
}

/// The load: open when a rate is given, closed from stages or users, otherwise the scenario's
/// (a closed shape or a rate sweep), reshaped by the duration and the sweep's options.
fn load(scenario: &Scenario, options: &RunOptions) -> Result<Load, PlanError> {
    let duration = options.duration.map(|s| s.0);
    if duration.is_some_and(|d| d < Duration::from_secs(1)) {
        return Err(invalid("duration", "must be at least 1s"));
    }
    if options.max_users == Some(0) {
        return Err(invalid("max_users", "must be at least 1"));
    }
    let closed_given = options.users.is_some() || options.stages.is_some();
    let sweep = match &scenario.load {
        Load::Sweep(sweep) if options.rate.is_none() && !closed_given => Some(sweep),
        _ => None,
    };
    if options.sweep_rates.is_some() && sweep.is_none() {
        return Err(invalid(
            "sweep_rates",
            "only applies to a rate sweep (stress without --rate, --users or --stages)",
        ));
    }
    if let Some(sweep) = sweep {
        let mut sweep = match duration {
            Some(d) => sweep.stretched_to(d),
            None => sweep.clone(),
        };
        match options.sweep_rates {
            Some(0) => return Err(invalid("sweep_rates", "must be at least 1")),
            Some(rates) => {
                // The same length, shared by more or fewer rates.
                let length = sweep.duration();
                sweep.rates = rates;
                sweep = sweep.stretched_to(length);
            }
            None => {}
        }
        sweep.users = options.max_users.unwrap_or(sweep.users);
        sweep.arrivals = options.arrivals.unwrap_or(sweep.arrivals);
        return Ok(Load::Sweep(sweep));
    }
    if let Some(rate) = options.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(
                "rate",
                "must be a positive number of arrivals per second",
            ));
        }
        if closed_given {
            return Err(invalid(
                "rate",
                "the open model (--rate) takes no --users or --stages",
            ));
        }
        let max_users = options
            .max_users
            .unwrap_or_else(|| ((rate * POOL_SECONDS).ceil() as usize).clamp(10, MAX_DEFAULT_POOL));
        return Ok(Load::Open {
            rate,
            arrivals: options.arrivals.unwrap_or_default(),
            max_users,
            duration: duration.unwrap_or_else(|| scenario.load.duration()),
        });
    }
    if options.arrivals.is_some() {
        return Err(invalid(
            "arrivals",
            "only applies with --rate or a rate sweep",
        ));
    }
    if options.max_users.is_some() {
        return Err(invalid(
            "max_users",
            "only applies with --rate or a rate sweep",
        ));
    }
    let think_time = match &scenario.load {
        Load::Closed { think_time, .. } => *think_time,
        Load::Open { .. } | Load::Sweep(_) => None,
    };
    let stages = match (&options.stages, options.users) {
        (Some(_), Some(_)) => return Err(invalid("users", "give --users or --stages, not both")),
        (Some(stages), None) => match duration {
            Some(d) => stages.stretched_to(d),
            None => stages.clone(),
        },
        (None, Some(0)) => return Err(invalid("users", "must be at least 1")),
        (None, Some(users)) => {
            Stages::constant(users, duration.unwrap_or_else(|| scenario.load.duration()))
        }
        (None, None) => match (&scenario.load, duration) {
            (Load::Closed { stages, .. }, Some(d)) => stages.stretched_to(d),
            (Load::Closed { stages, .. }, None) => stages.clone(),
            (Load::Open { .. } | Load::Sweep(_), _) => {
                return Err(invalid(
                    "rate",
                    format!("scenario `{}` is open-model: give --rate", scenario.name),
                ));
            }
        },
    };
    if stages.total().is_zero() {
        return Err(invalid("duration", "the stages last no time"));
    }
    Ok(Load::Closed { stages, think_time })
}

/// The load written back as options.
fn load_options(load: &Load) -> RunOptions {
    match load {
        Load::Closed { stages, .. } => RunOptions {
            stages: Some(stages.clone()),
            ..RunOptions::default()
        },
        Load::Open {
            rate,
            arrivals,
            max_users,
            duration,
        } => RunOptions {
            rate: Some(*rate),
            arrivals: Some(*arrivals),
            max_users: Some(*max_users),
            duration: Some(Span(*duration)),
            ..RunOptions::default()
        },
        Load::Sweep(sweep) => RunOptions {
            sweep_rates: Some(sweep.rates),
            arrivals: Some(sweep.arrivals),
            max_users: Some(sweep.users),
            duration: Some(Span(sweep.duration())),
            ..RunOptions::default()
        },
    }
}

fn check_url(url: &str) -> Result<String, PlanError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                "target",
                format!("`{url}` is not an http:// or https:// URL"),
            )
        })?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(invalid("target", format!("`{url}` has no host")));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use scenarios::load::Arrivals;

    use super::*;

    fn options(text: &str) -> RunOptions {
        toml::from_str(text).expect("valid options")
    }

    #[test]
    fn scenario_defaults_apply_without_options() {
        let run = resolve("smoke", RunOptions::default()).expect("resolves");
        assert_eq!(run.attack.load.duration(), Duration::from_secs(10));
        assert_eq!(run.attack.load.peak_users(), 2);
        assert_eq!(run.target, Target::Embedded(MockBackend::Native));
        assert!(!run.slos.is_empty());
        assert_eq!(
            run.options.stages.map(|s| s.to_string()).as_deref(),
            Some("0s:2,10s:2")
        );
    }

    #[test]
    fn duration_and_users_reshape_the_load() {
        let run = resolve("stress", options("duration = \"17s\"")).expect("resolves");
        let Load::Sweep(sweep) = &run.attack.load else {
            panic!("stress is a rate sweep: {:?}", run.attack.load);
        };
        assert!((sweep.duration().as_secs_f64() - 17.0).abs() < 1e-6);
        assert_eq!(sweep.rates, 8);
        let run = resolve(
            "stress",
            options("sweep_rates = 4\nmax_users = 50\narrivals = \"poisson\""),
        )
        .expect("resolves");
        let Load::Sweep(sweep) = &run.attack.load else {
            panic!("still a sweep");
        };
        assert_eq!((sweep.rates, sweep.users), (4, 50));
        assert_eq!(sweep.arrivals, Arrivals::Poisson);
        assert!((sweep.duration().as_secs_f64() - 126.0).abs() < 1e-6);
        assert!(
            run.slos.iter().any(|s| s.metric == SloMetric::Dropped),
            "a scheduled load's default SLOs limit dropped arrivals"
        );
        let run = resolve("stress", options("users = 5\nduration = \"5s\"")).expect("resolves");
        assert!(
            matches!(run.attack.load, Load::Closed { .. }),
            "--users gives closed steps"
        );
        let run = resolve("chat", options("users = 3\nduration = \"5s\"")).expect("resolves");
        assert_eq!(run.attack.load.peak_users(), 3);
        assert_eq!(run.attack.load.duration(), Duration::from_secs(5));
    }

    #[test]
    fn open_model_defaults_its_pool_from_the_rate() {
        let run =
            resolve("streaming", options("rate = 40.0\nduration = \"5s\"")).expect("resolves");
        match run.attack.load {
            Load::Open {
                rate,
                max_users,
                arrivals,
                duration,
            } => {
                assert_eq!((rate, max_users, arrivals), (40.0, 200, Arrivals::Constant));
                assert_eq!(duration, Duration::from_secs(5));
            }
            other => panic!("expected the open model, got {other:?}"),
        }
    }

    #[test]
    fn contradictions_name_the_field() {
        for (text, field) in [
            ("rate = 10.0\nusers = 3", "rate:"),
            ("max_users = 3", "max_users:"),
            ("users = 0", "users:"),
            ("rate = -1.0", "rate:"),
            ("target = \"localhost:8080\"", "target:"),
            ("duration = \"10ms\"", "duration:"),
            ("worker = \"3/3\"\nusers = 2", "worker:"),
            ("target = \"http://a:1,b:2\"", "target:"),
            ("sweep_rates = 3", "sweep_rates:"),
        ] {
            let error = resolve("chat", options(text)).expect_err(text).to_string();
            assert!(error.starts_with(field), "{text}: {error}");
        }
        for (text, field) in [
            ("sweep_rates = 0", "sweep_rates:"),
            ("sweep_rates = 3\nrate = 5.0", "sweep_rates:"),
            ("worker = \"1/2\"", "worker:"),
        ] {
            let error = resolve("stress", options(text))
                .expect_err(text)
                .to_string();
            assert!(error.starts_with(field), "{text}: {error}");
        }
        let slo = std::env::temp_dir().join(format!("capacity-slo-{}.toml", std::process::id()));
        std::fs::write(
            &slo,
            "[[slo]]\nmetric = \"capacity\"\nstat = \"rate\"\nop = \">=\"\nvalue = 5\n",
        )
        .expect("writes");
        let with_slo =
            |load: &str| options(&format!("slo = {:?}\n{load}", slo.display().to_string()));
        let error = resolve("stress", with_slo("users = 4"))
            .expect_err("capacity needs a sweep")
            .to_string();
        assert!(error.starts_with("slo:"), "{error}");
        assert!(resolve("stress", with_slo("")).is_ok());
        std::fs::remove_file(&slo).expect("removes");
        for (text, field) in [
            ("rate = 5.0", "rate:"),
            (
                "target = \"http://127.0.0.1:9\"\napi = \"anthropic\"",
                "api:",
            ),
        ] {
            let error = resolve("websocket", options(text))
                .expect_err(text)
                .to_string();
            assert!(error.starts_with(field), "{text}: {error}");
        }
        assert!(resolve("nope", RunOptions::default()).is_err());
        let wiremock = options("mock_backend = \"wiremock\"");
        assert!(
            resolve("failover", wiremock)
                .expect_err("needs native")
                .to_string()
                .starts_with("mock_backend:")
        );
    }

    #[test]
    fn a_worker_keeps_the_whole_plan_and_records_its_share() {
        let run = resolve("chat", options("worker = \"2/3\"\nusers = 10")).expect("resolves");
        assert_eq!(run.worker.to_string(), "2/3");
        assert_eq!(run.attack.load.peak_users(), 10);
        assert_eq!(run.attack.load.worker_peak_users(run.worker), 3);
        assert_eq!(
            run.options.worker.map(|w| w.to_string()).as_deref(),
            Some("2/3")
        );
        let whole = resolve("chat", options("users = 10")).expect("resolves");
        assert_eq!(whole.worker, Worker::SOLE);
        assert_eq!(whole.options.worker, None);
        assert!(
            toml::from_str::<RunOptions>("worker = \"4/3\"")
                .expect_err("out of range")
                .to_string()
                .contains("4/3")
        );
    }

    #[test]
    fn several_targets_are_each_checked() {
        let run =
            resolve("chat", options("target = \"http://a:1/, http://b:2\"")).expect("resolves");
        assert_eq!(
            run.target,
            Target::External(vec!["http://a:1".to_owned(), "http://b:2".to_owned()])
        );
    }
}
