//! Sleeping until an arrival slot with sub-millisecond precision.
//!
//! tokio's timer wheel counts in whole milliseconds and rounds every deadline up to its next
//! tick, so a task that sleeps until its slot with `tokio::time::sleep_until` is sent up to a
//! millisecond or more after it. The open model measures latency from the slot, so that
//! lateness would be charged to the target, in every request. Here one thread keeps the
//! pending slots in a heap and waits for the earliest on a condition variable, whose timeout
//! the kernel keeps to within its timer slack (about 50 us), then wakes the tasks that are due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Completes at `due` (at once if it has passed), never before it and, on an idle machine,
/// within a fraction of a millisecond after it (the kernel's timer slack and a worker waking).
pub fn sleep_until(due: Instant) -> SleepUntil {
    SleepUntil { due, waker: None }
}

/// The future of [`sleep_until`].
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct SleepUntil {
    due: Instant,
    /// The waker last put in the timer's heap.
    waker: Option<Waker>,
}

impl Future for SleepUntil {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.due {
            return Poll::Ready(());
        }
        // Polled again before its slot with another waker (moved to another task): that one is
        // added too; the older entry wakes its task once more, harmlessly.
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            Timer::get().add(self.due, waker.clone());
            self.waker = Some(waker);
        }
        Poll::Pending
    }
}

/// A pending slot: due when, and whom to wake. Ordered by `due` alone.
struct Entry {
    due: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.due.cmp(&other.due)
    }
}

/// The process's timer: the pending slots, earliest first, and the thread that wakes them.
struct Timer {
    slots: Mutex<BinaryHeap<Reverse<Entry>>>,
    /// Signalled when a slot earlier than every other is added.
    earlier: Condvar,
}

impl Timer {
    /// The timer, its thread started on first use.
    fn get() -> &'static Timer {
        static TIMER: Timer = Timer {
            slots: Mutex::new(BinaryHeap::new()),
            earlier: Condvar::new(),
        };
        static STARTED: Once = Once::new();
        STARTED.call_once(|| {
            // Without its thread no slot would ever be woken: a process that cannot start
            // one thread cannot run a load either.
            std::thread::Builder::new()
                .name("arrival-timer".into())
                .spawn(|| TIMER.run())
                .expect("cannot start the arrival timer thread");
        });
        &TIMER
    }

    fn add(&self, due: Instant, waker: Waker) {
        let mut slots = self.lock();
        let earliest = slots.peek().is_none_or(|Reverse(first)| due < first.due);
        slots.push(Reverse(Entry { due, waker }));
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// Wakes each slot as it falls due, for the life of the process. The tasks are woken with
    /// the heap unlocked, so senders adding their next slots never wait for the wake-ups.
    fn run(&self) {
        let mut due = Vec::new();
        loop {
            let mut slots = self.lock();
            let now = Instant::now();
            while slots.peek().is_some_and(|Reverse(first)| first.due <= now) {
                due.extend(slots.pop().map(|Reverse(entry)| entry.waker));
            }
            if !due.is_empty() {
                drop(slots);
                due.drain(..).for_each(Waker::wake);
                continue;
            }
            drop(match slots.peek() {
                Some(Reverse(first)) => {
                    let wait = first.due.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(slots, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .earlier
                    .wait(slots)
                    .unwrap_or_else(PoisonError::into_inner),
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Entry>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_passed_slot_is_ready_at_once() {
        let past = Instant::now();
        let mut sleep = std::pin::pin!(sleep_until(past));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_sleeper_wakes_and_none_before_its_slot() {
        let start = Instant::now();
        // Slots out of order, some shared, so the heap sees earlier ones added after later.
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let due = start + Duration::from_micros((i * 7_919) % 20_000);
                tokio::spawn(async move {
                    sleep_until(due).await;
                    (due, Instant::now())
                })
            })
            .collect();
        for task in tasks {
            let joined = tokio::time::timeout(Duration::from_secs(10), task).await;
            let (due, woke) = joined
                .expect("a sleeper was never woken")
                .expect("a sleeper panicked");
            assert!(woke >= due, "woke {:?} before its slot", due - woke);
        }
    }
}
