//! Each user's connections live as long as the user. A rate sweep hands them on from one phase
//! to the next, as a client with a pool of keep-alive connections does, so the target is not
//! sent a wave of new connections at every phase; a user that stops closes its own, so the
//! target's open connections follow the users a load still runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reports::model::second_of;
use scenarios::load::{Arrivals, Load, Stages, Sweep};
use tokio::net::{TcpListener, TcpStream};

use crate::common::paced::quick_mock;
use crate::common::{MACHINE, attack, attack_phases, stream_plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phases_of_a_sweep_share_their_users_connections() {
    let _machine = MACHINE.read().await;
    let mock = quick_mock().await;
    let relay = Relay::to(mock.url()).await;
    let sweep = Sweep {
        baseline: Duration::from_secs(1),
        probe: Duration::from_secs(2),
        rates: 2,
        per_rate: Duration::from_secs(2),
        arrivals: Arrivals::Constant,
        users: 8,
    };
    let pool = sweep.pool();
    let (run, phases) =
        attack_phases("sweep", &relay.url, stream_plan(Load::Sweep(sweep), 5)).await;

    // One user, then 8, then two phases of 16: 41 connections if each phase opened its own.
    let requests = run.totals.requests;
    assert!(requests > 100, "{requests} requests");
    assert_eq!(run.totals.ok, requests, "{:?}", run.totals.errors);
    let opened = relay.accepted.load(Ordering::Relaxed);
    assert!(
        opened <= pool,
        "{opened} connections for {requests} requests from a pool of {pool} users"
    );
    // Each phase starts in a later second than its predecessor's last answer came in, so no
    // second of the run holds the answers of two phases.
    assert_eq!(phases.len(), 4);
    for pair in phases.windows(2) {
        assert!(
            second_of(pair[1].start) > second_of(pair[0].end),
            "a phase started at {:?}, in the second its predecessor ended ({:?})",
            pair[1].start,
            pair[0].end
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_that_stop_close_their_connections() {
    let _machine = MACHINE.read().await;
    let mock = quick_mock().await;
    let relay = Relay::to(mock.url()).await;
    // 8 users for 3 s, then 1 for 4 s.
    let stages: Stages = "0s:8,3s:8,0s:1,4s:1".parse().expect("stages");
    let load = Load::Closed {
        stages,
        think_time: None,
    };
    let began = Instant::now();
    let open = Arc::clone(&relay.open);
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        while began.elapsed() < Duration::from_millis(6_500) {
            samples.push((began.elapsed(), open.load(Ordering::Relaxed)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        samples
    });
    let run = attack("stages", &relay.url, stream_plan(load, 5)).await;
    let samples = sampler.await.expect("sampler");

    assert_eq!(
        run.totals.ok, run.totals.requests,
        "{:?}",
        run.totals.errors
    );
    // The connections open in each 50 ms sample between `from` and `to` ms into the run.
    let open_between = |from: u64, to: u64| -> Vec<usize> {
        let open: Vec<usize> = samples
            .iter()
            .filter(|(at, _)| (from..to).contains(&(at.as_millis() as u64)))
            .map(|&(_, open)| open)
            .collect();
        assert!(!open.is_empty(), "no sample from {from} to {to} ms");
        open
    };
    let with_eight = open_between(1_000, 2_500);
    let with_one = open_between(5_000, 6_500);
    assert!(
        with_eight.iter().max() >= Some(&6),
        "connections open with 8 users: {with_eight:?}"
    );
    assert!(
        with_one.iter().max() <= Some(&2),
        "connections still open with 1 user left of 8: {with_one:?}"
    );
}

/// A TCP relay to the server at an `http://HOST:PORT` URL on a port of its own, counting the
/// connections it has accepted and those open now.
struct Relay {
    url: String,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Relay {
    async fn to(upstream: &str) -> Relay {
        let target = upstream
            .strip_prefix("http://")
            .expect("a plain http:// URL")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay = Relay {
            url: format!("http://{}", listener.local_addr().expect("address")),
            accepted: Arc::default(),
            open: Arc::default(),
        };
        let (accepted, open) = (Arc::clone(&relay.accepted), Arc::clone(&relay.open));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                open.fetch_add(1, Ordering::Relaxed);
                let (target, open) = (target.clone(), Arc::clone(&open));
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        relay
    }
}
