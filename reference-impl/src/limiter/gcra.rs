//! The generic cell rate algorithm and the in-process store of its state.
//!
//! A bucket is one number, its theoretical arrival time (TAT): the instant at which it would be
//! full again. A request of `cost` units is admitted when pushing the TAT forward by
//! `cost * emission` keeps it within `capacity * emission` of now, so a full bucket admits exactly
//! `capacity` units at once and then one more every `emission`. A bucket whose TAT has passed is
//! indistinguishable from a fresh one, which is what lets the store forget it.

use std::collections::HashMap;
use std::sync::Mutex;

/// The shape of one bucket: how many units it holds and how fast one unit comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Time for one unit to come back, in the store's time unit.
    pub emission: u64,
    pub capacity: u64,
}

impl Rate {
    /// `capacity` units per `period`, both in the same time unit as `now` later.
    pub fn per_period(capacity: u64, period: u64) -> Self {
        let capacity = capacity.max(1);
        Self {
            emission: (period / capacity).max(1),
            capacity,
        }
    }

    /// Units still available when the bucket's TAT is `now + reset`.
    pub fn remaining(self, reset: u64) -> u64 {
        self.capacity
            .saturating_mul(self.emission)
            .saturating_sub(reset)
            / self.emission
    }
}

/// One GCRA step. `Ok((new_tat, reset))` when admitted, `Err(wait)` with the time until it would be.
pub(crate) fn step(tat: u64, now: u64, rate: Rate, cost: u64) -> Result<(u64, u64), u64> {
    // Saturating: absurd configured quotas or reported usage must not wrap around.
    let new_tat = tat
        .max(now)
        .saturating_add(cost.saturating_mul(rate.emission));
    let limit_at = now.saturating_add(rate.capacity.saturating_mul(rate.emission));
    if new_tat > limit_at {
        Err(new_tat - limit_at)
    } else {
        Ok((new_tat, new_tat - now))
    }
}

const SHARDS: usize = 16;
/// Entries a shard holds before it sweeps out buckets that are full again.
const SWEEP_FLOOR: usize = 1024;

/// TATs of every bucket in use, sharded so concurrent checks rarely share a lock.
#[derive(Debug)]
pub(crate) struct LocalStore {
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<u64, u64>,
    sweep_at: usize,
}

impl LocalStore {
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    tats: HashMap::new(),
                    sweep_at: SWEEP_FLOOR,
                })
            }),
        }
    }

    /// Admits `cost` units from bucket `id` or leaves it untouched.
    pub fn take(&self, id: u64, now: u64, rate: Rate, cost: u64) -> Result<u64, u64> {
        let mut shard = self.shard(id);
        let tat = shard.tats.get(&id).copied().unwrap_or(0);
        let (new_tat, reset) = step(tat, now, rate, cost)?;
        if new_tat > now {
            shard.tats.insert(id, new_tat);
            shard.sweep_if_large(now);
        }
        Ok(reset)
    }

    /// Gives back what an earlier `take` admitted, when a later bucket of the same check refused.
    pub fn refund(&self, id: u64, rate: Rate, cost: u64) {
        if let Some(tat) = self.shard(id).tats.get_mut(&id) {
            *tat = tat.saturating_sub(cost.saturating_mul(rate.emission));
        }
    }

    /// Charges `cost` units whether or not they are available (usage known only afterwards).
    pub fn charge(&self, id: u64, now: u64, rate: Rate, cost: u64) {
        let mut shard = self.shard(id);
        let tat = shard.tats.entry(id).or_insert(0);
        *tat = (*tat)
            .max(now)
            .saturating_add(cost.saturating_mul(rate.emission));
        shard.sweep_if_large(now);
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, Shard> {
        // Index by the high bits: the low bits also pick the HashMap bucket.
        self.shards[(id >> 60) as usize % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Shard {
    /// Drops full buckets once the shard has doubled since the last sweep, so memory follows the
    /// number of active keys and the sweep cost stays amortised O(1) per insert.
    fn sweep_if_large(&mut self, now: u64) {
        if self.tats.len() >= self.sweep_at {
            self.tats.retain(|_, tat| *tat > now);
            self.sweep_at = (self.tats.len() * 2).max(SWEEP_FLOOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_bucket_admits_capacity_then_one_per_emission() {
        let rate = Rate::per_period(3, 300);
        let mut tat = 0;
        for expected_reset in [100, 200, 300] {
            let (next, reset) = step(tat, 1_000, rate, 1).expect("within capacity");
            assert_eq!(reset, expected_reset);
            tat = next;
        }
        assert_eq!(step(tat, 1_000, rate, 1), Err(100));
        assert_eq!(step(tat, 1_099, rate, 1), Err(1));
        assert!(step(tat, 1_100, rate, 1).is_ok());
    }

    #[test]
    fn remaining_counts_whole_units() {
        let rate = Rate::per_period(10, 1_000);
        assert_eq!(rate.remaining(100), 9);
        assert_eq!(rate.remaining(150), 8);
        assert_eq!(rate.remaining(1_000), 0);
    }

    #[test]
    fn sweep_forgets_only_full_buckets() {
        let mut shard = Shard {
            tats: (0..SWEEP_FLOOR as u64).map(|id| (id, 10)).collect(),
            sweep_at: SWEEP_FLOOR,
        };
        shard.tats.insert(u64::MAX, 11);
        shard.sweep_if_large(10);
        assert_eq!(
            shard.tats.into_iter().collect::<Vec<_>>(),
            vec![(u64::MAX, 11)]
        );
    }
}
