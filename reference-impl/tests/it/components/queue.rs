//! Request queue ordering, rejections, timeouts and slot accounting, on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reference_impl::queue::{Priority, QueueConfig, QueueError, RequestQueue};
use tokio::task::JoinHandle;

fn queue(max_concurrent: usize, max_queued: usize) -> RequestQueue {
    RequestQueue::new(QueueConfig {
        max_concurrent,
        max_queued,
        ..QueueConfig::default()
    })
}

/// Starts a waiter that records `label` when it gets a slot, then releases the slot.
fn waiter(
    queue: &RequestQueue,
    priority: Priority,
    label: &'static str,
    order: &Arc<Mutex<Vec<&'static str>>>,
) -> JoinHandle<Result<(), QueueError>> {
    let (queue, order) = (queue.clone(), Arc::clone(order));
    tokio::spawn(async move {
        let _permit = queue.acquire(priority).await?;
        order.lock().expect("order lock").push(label);
        Ok(())
    })
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_by_priority_then_arrival() {
    let queue = queue(1, 10);
    let holder = queue.acquire(Priority::NORMAL).await.expect("free slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (priority, label) in [
        (Priority::LOW, "low-1"),
        (Priority::NORMAL, "normal-1"),
        (Priority::HIGH, "high-1"),
        (Priority::LOW, "low-2"),
        (Priority::HIGH, "high-2"),
        (Priority::NORMAL, "normal-2"),
    ] {
        handles.push(waiter(&queue, priority, label, &order));
        settle().await;
    }
    assert_eq!(queue.stats().depth, 6);

    drop(holder);
    for handle in handles {
        handle.await.expect("task").expect("slot");
    }
    assert_eq!(
        *order.lock().expect("order lock"),
        ["high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
    );
    let stats = queue.stats();
    assert_eq!((stats.in_flight, stats.depth, stats.admitted), (0, 0, 7));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once() {
    let queue = queue(2, 3);
    let _held = [
        queue.acquire(Priority::NORMAL).await.expect("slot"),
        queue.acquire(Priority::NORMAL).await.expect("slot"),
    ];
    let order = Arc::new(Mutex::new(Vec::new()));
    let _waiting: Vec<_> = (0..3)
        .map(|_| waiter(&queue, Priority::NORMAL, "w", &order))
        .collect();
    settle().await;
    let rejected = queue.acquire(Priority::HIGH).await.expect_err("full");
    assert_eq!(
        rejected,
        QueueError::Full {
            retry_after: Duration::from_secs(1)
        }
    );
    let stats = queue.stats();
    assert_eq!(
        (stats.in_flight, stats.depth, stats.rejected_full),
        (2, 3, 1)
    );
    assert_eq!(stats.utilization, 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_times_out_after_max_wait_and_leaves_the_queue() {
    let queue = queue(1, 10);
    let holder = queue.acquire(Priority::NORMAL).await.expect("slot");
    let started = tokio::time::Instant::now();
    let error = queue
        .acquire(Priority::NORMAL)
        .await
        .expect_err("times out");
    assert_eq!(
        error,
        QueueError::Timeout {
            waited: Duration::from_secs(30)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    let stats = queue.stats();
    assert_eq!((stats.depth, stats.timed_out), (0, 1));
    drop(holder);
    assert_eq!(queue.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn cancelled_waiters_and_dropped_permits_leak_no_slot() {
    let queue = queue(1, 10);
    let holder = queue.acquire(Priority::NORMAL).await.expect("slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let cancelled = waiter(&queue, Priority::HIGH, "cancelled", &order);
    let kept = waiter(&queue, Priority::LOW, "kept", &order);
    settle().await;
    cancelled.abort();
    settle().await;
    assert_eq!(
        queue.stats().depth,
        1,
        "the cancelled waiter left the queue"
    );
    drop(holder);
    kept.await.expect("task").expect("slot");
    assert_eq!(*order.lock().expect("order lock"), ["kept"]);
    assert_eq!(queue.stats().in_flight, 0);
    // A request cancelled while holding its permit gives the slot back as well.
    let task = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let _permit = queue.acquire(Priority::NORMAL).await;
            std::future::pending::<()>().await;
        })
    };
    settle().await;
    assert_eq!(queue.stats().in_flight, 1);
    task.abort();
    settle().await;
    assert_eq!(queue.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn wait_times_land_in_the_histogram() {
    let queue = queue(1, 10);
    let holder = queue.acquire(Priority::NORMAL).await.expect("slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiting = waiter(&queue, Priority::NORMAL, "w", &order);
    settle().await;
    tokio::time::advance(Duration::from_millis(70)).await;
    drop(holder);
    waiting.await.expect("task").expect("slot");
    let wait = queue.stats().wait;
    assert_eq!(wait.count, 2);
    let le = |bound: f64| {
        wait.buckets
            .iter()
            .find(|(le, _)| *le == bound)
            .map(|(_, count)| *count)
    };
    assert_eq!(le(0.05), Some(1), "the immediate admission");
    assert_eq!(le(0.1), Some(2), "the 70 ms wait");
    assert!((wait.sum_secs - 0.07).abs() < 1e-9);
}

#[test]
fn priority_parses_the_header() {
    assert_eq!(Priority::from_header("HIGH"), Some(Priority::HIGH));
    assert_eq!(Priority::from_header(" low "), Some(Priority::LOW));
    assert_eq!(Priority::from_header("7"), Some(Priority(7)));
    assert_eq!(Priority::from_header("urgent"), None);
    assert!(Priority::from(reference_impl::limiter::Tier::Enterprise) > Priority::NORMAL);
}

#[test]
fn config_rejects_unknown_fields_and_zero_concurrency() {
    let config: QueueConfig = toml::from_str("max_concurrent = 4").expect("valid");
    assert_eq!((config.max_concurrent, config.max_queued), (4, 100));
    assert!(toml::from_str::<QueueConfig>("max_concurrency = 4").is_err());
    let zero = QueueConfig {
        max_concurrent: 0,
        ..QueueConfig::default()
    };
    assert_eq!(
        zero.validate().expect_err("zero").to_string(),
        "queue.max_concurrent must be at least 1"
    );
}
