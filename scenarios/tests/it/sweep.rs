//! A rate sweep runs its phases one after the other, each a load of its own; its users keep
//! their connections from one phase to the next, as a client with a pool of keep-alive
//! connections does, so the target is not sent a wave of new connections at every phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scenarios::load::{Arrivals, Load, Sweep};
use tokio::net::{TcpListener, TcpStream};

use crate::common::paced::quick_mock;
use crate::common::{MACHINE, attack, stream_plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phases_of_a_sweep_share_their_users_connections() {
    let _machine = MACHINE.read().await;
    let mock = quick_mock().await;
    let (url, accepted) = counting_relay(mock.url()).await;
    let sweep = Sweep {
        baseline: Duration::from_secs(1),
        probe: Duration::from_secs(2),
        rates: 2,
        per_rate: Duration::from_secs(2),
        arrivals: Arrivals::Constant,
        users: 8,
    };
    let pool = sweep.pool();
    let run = attack("sweep", &url, stream_plan(Load::Sweep(sweep), 5)).await;

    // One user, then 8, then two phases of 16: 41 connections if each phase opened its own.
    let requests = run.totals.requests;
    assert!(requests > 100, "{requests} requests");
    assert_eq!(run.totals.ok, requests, "{:?}", run.totals.errors);
    let opened = accepted.load(Ordering::Relaxed);
    assert!(
        opened <= pool,
        "{opened} connections for {requests} requests from a pool of {pool} users"
    );
}

/// A TCP relay to the server at `upstream` (`http://HOST:PORT`) on a port of its own, and the
/// count of the connections it has accepted.
async fn counting_relay(upstream: &str) -> (String, Arc<AtomicUsize>) {
    let target = upstream
        .strip_prefix("http://")
        .expect("a plain http:// URL")
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, accepted)
}
