//! `--target A,B`: requests go to gateway replicas in turn. Two standalone gateways over one
//! mock; each gateway's own `/metrics` count shows it served half of the run's requests; and
//! two replicas sharing their rate limiter through a real `redis-server` admit the limit once
//! in total, not once each.

use std::path::Path;
use std::process::Output;

use crate::common::redis::RedisServer;
use crate::common::{
    MACHINE, Server, arg, assert_ran, mock_profile, run, run_dirs, scratch, summary,
};

/// Three seconds of the chat scenario at 20 requests/s against `targets`, reports in `out`.
fn chat_against(targets: &str, out: &Path) -> Output {
    run(&[
        "scenario",
        "chat",
        "--target",
        targets,
        "--rate",
        "20",
        "--duration",
        "3s",
        "--quiet",
        "--out",
        arg(out),
    ])
}

/// Chat completions a gateway answered, by its `gateway_responses_total` counters.
fn responses(gateway: &Server) -> u64 {
    let url = format!("{}/metrics", gateway.url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = runtime.block_on(async {
        reqwest::get(&url)
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    });
    text.lines()
        .filter(|l| l.starts_with("gateway_responses_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn requests_alternate_between_gateway_replicas() {
    let _machine = MACHINE.blocking_read();
    let dir = scratch("round-robin");
    let mock = Server::mock(&mock_profile(&dir));
    let a = Server::gateway(&mock.url);
    let b = Server::gateway(&mock.url);
    let targets = format!("{},{}", a.url, b.url);
    let out = dir.join("runs");
    let output = chat_against(&targets, &out);
    assert_ran(&output, "round-robin run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("round-robin"),
        "the banner names both targets: {stderr}"
    );

    let requests = summary(&run_dirs(&out)[0]).totals.requests;
    let (served_a, served_b) = (responses(&a), responses(&b));
    eprintln!("requests {requests}: gateway A served {served_a}, gateway B {served_b}");
    assert_eq!(requests, 60);
    assert_eq!(
        served_a + served_b,
        requests,
        "every request reached one replica"
    );
    assert!(served_a.abs_diff(served_b) <= 1, "{served_a} vs {served_b}");
}

#[test]
fn replicas_sharing_redis_admit_the_limit_once_in_total() {
    let _machine = MACHINE.blocking_read();
    const LIMIT: u64 = 30;
    let dir = scratch("replicas-redis");
    let redis = RedisServer::start();
    let mock = Server::mock(&mock_profile(&dir));
    // The harness sends no API key: every request is the same (empty) key of the free tier.
    let config = dir.join("gateway.toml");
    let text = format!(
        "[[providers]]\nname = \"mock\"\nkind = \"openai\"\nbase_url = \"{}\"\n\n\
         [[models]]\nname = \"*\"\ncandidates = [{{ provider = \"mock\" }}]\n\n\
         [limiter]\ntiers.free = {{ requests = {LIMIT}, period_secs = 3600 }}\n\
         redis = {{ url = \"{}\", timeout_ms = 500 }}\n",
        mock.url,
        redis.url()
    );
    std::fs::write(&config, text).expect("config written");
    let a = Server::start(&["gateway", "--config", arg(&config), "--port", "0"]);
    let b = Server::start(&["gateway", "--config", arg(&config), "--port", "0"]);
    let out = dir.join("runs");
    let targets = format!("{},{}", a.url, b.url);
    let output = chat_against(&targets, &out);
    assert_ran(&output, "run against two replicas");

    let totals = summary(&run_dirs(&out)[0]).totals;
    eprintln!(
        "{} requests over two replicas with a shared limit of {LIMIT}: {} admitted, {} limited",
        totals.requests, totals.ok, totals.errors.http_4xx
    );
    assert_eq!(totals.requests, 60);
    assert_eq!(
        totals.ok, LIMIT,
        "{LIMIT} in total, not {LIMIT} per replica"
    );
    assert_eq!(totals.errors.http_4xx, 60 - LIMIT);
}
