//! Request coalescing: identical requests in flight at the same time share one upstream call.
//!
//! The first request for a key becomes the leader of a [`Flight`]; later ones follow it. The
//! leader publishes the SSE chunks it sends its own client (if it streams) and finally the
//! completed body or its failure. Followers read every chunk from the start, so one that joins
//! late still gets the whole stream, then the outcome. Chunks are `Bytes`, so sharing them
//! costs a reference count, not a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

/// Why the leader could not produce a completion; followers receive it when they do not retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream failed with {status}: {message}")]
pub struct FlightError {
    /// The HTTP status the gateway gave (or would give) the leader's client.
    pub status: u16,
    pub message: String,
}

/// How a flight ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Completed(Bytes),
    Failed(FlightError),
    /// The leader went away (its client disconnected) without an answer.
    Abandoned,
}

/// One upstream call that several requests wait on.
#[derive(Debug)]
pub(crate) struct Flight {
    state: Mutex<FlightState>,
    /// Bumped after every change of `state`.
    changed: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct FlightState {
    chunks: Vec<Bytes>,
    outcome: Option<Outcome>,
}

/// What a follower sees next.
#[derive(Debug)]
pub(crate) enum Next {
    Chunk(Bytes),
    Done(Outcome),
}

impl Flight {
    fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }

    pub fn push_chunk(&self, chunk: Bytes) {
        self.lock().chunks.push(chunk);
        self.changed.send_replace(());
    }

    /// Records the outcome; the first one wins.
    pub fn finish(&self, outcome: Outcome) {
        self.lock().outcome.get_or_insert(outcome);
        self.changed.send_replace(());
    }

    /// The chunk at `index` once it exists, or the outcome once there are no more chunks.
    pub async fn next(&self, index: usize) -> Next {
        let mut changed = self.changed.subscribe();
        loop {
            {
                let state = self.lock();
                if let Some(chunk) = state.chunks.get(index) {
                    return Next::Chunk(chunk.clone());
                }
                if let Some(outcome) = &state.outcome {
                    return Next::Done(outcome.clone());
                }
            }
            // The sender lives in `self`, so this only waits for the next change.
            if changed.changed().await.is_err() {
                return Next::Done(Outcome::Abandoned);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, FlightState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The flights in progress, by request hash.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    flights: Mutex<HashMap<u128, Arc<Flight>>>,
}

/// Whether a request leads a new flight or follows one in progress.
pub(crate) enum Role {
    Leader(Arc<Flight>),
    Follower(Arc<Flight>),
}

impl Flights {
    pub fn join(&self, hash: u128) -> Role {
        let mut flights = self.lock();
        if let Some(flight) = flights.get(&hash) {
            return Role::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::new());
        flights.insert(hash, Arc::clone(&flight));
        Role::Leader(flight)
    }

    /// Removes `flight` if it is still the one registered for `hash`.
    pub fn remove(&self, hash: u128, flight: &Arc<Flight>) {
        let mut flights = self.lock();
        if flights
            .get(&hash)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            flights.remove(&hash);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u128, Arc<Flight>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
