//! Fingerprints of recently keyed request bodies, found by the bodies' raw bytes.
//!
//! A client that repeats a request usually sends the same bytes (the same code serializes the
//! same value), and a repeat is what a cache hit is. One XXH3 pass over the raw body (about a
//! tenth of the canonical reading) finds its fingerprint here, so such repeats skip the reading.
//! Bodies that differ only in key order, whitespace or delivery fields still meet under one
//! canonical key; they take the longer way there.
//!
//! A fixed table of [`SLOTS`] entries, each slot holding the last body whose hash lands on it:
//! bounded memory, no eviction policy to run, and a lock per slot that is held for a copy.

use std::sync::{Mutex, PoisonError};

use xxhash_rust::xxh3::xxh3_128;

use super::canonical::{Fingerprint, SyntaxError};

/// Slots in the table (a power of two).
const SLOTS: usize = 4096;

#[derive(Debug)]
pub(super) struct FingerprintMemo {
    slots: Box<[Mutex<Option<Remembered>>]>,
}

/// A body's raw digest and its fingerprint.
#[derive(Debug)]
struct Remembered {
    raw: u128,
    fingerprint: Fingerprint,
}

impl Default for FingerprintMemo {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl FingerprintMemo {
    /// The fingerprint of `body`: remembered from an earlier call with the same bytes, or read
    /// now (and remembered if the body is valid).
    pub fn fingerprint(&self, body: &[u8]) -> Result<Fingerprint, SyntaxError> {
        let raw = xxh3_128(body);
        // The low bits of an XXH3 digest are as well mixed as any.
        let slot = &self.slots[raw as usize & (SLOTS - 1)];
        // A poisoned slot only ever held a finished copy: its contents are still whole.
        let mut entry = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(remembered) = entry.as_ref()
            && remembered.raw == raw
        {
            return Ok(remembered.fingerprint.clone());
        }
        drop(entry);
        let fingerprint = Fingerprint::of(body)?;
        entry = slot.lock().unwrap_or_else(PoisonError::into_inner);
        *entry = Some(Remembered {
            raw,
            fingerprint: fingerprint.clone(),
        });
        Ok(fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_gets_the_fingerprint_of_the_first_reading() {
        let memo = FingerprintMemo::default();
        let body = br#"{"model":"m","temperature":0.5,"messages":[]}"#;
        let first = memo.fingerprint(body).expect("valid");
        let again = memo.fingerprint(body).expect("valid");
        assert_eq!(first.hash, again.hash);
        assert_eq!(again.model.as_deref(), Some("m"));
        assert_eq!(again.temperature, Some(0.5));
        let fresh = Fingerprint::of(body).expect("valid");
        assert_eq!(again.hash, fresh.hash);
    }

    #[test]
    fn bodies_sharing_a_slot_each_get_their_own_fingerprint() {
        let memo = FingerprintMemo::default();
        // More bodies than slots: some share one, and each must still read as itself.
        let bodies: Vec<String> = (0..SLOTS * 2)
            .map(|n| format!(r#"{{"model":"m{n}","messages":[]}}"#))
            .collect();
        for _ in 0..2 {
            for (n, body) in bodies.iter().enumerate() {
                let fingerprint = memo.fingerprint(body.as_bytes()).expect("valid");
                assert_eq!(fingerprint.model.as_deref(), Some(format!("m{n}").as_str()));
                assert_eq!(
                    fingerprint.hash,
                    Fingerprint::of(body.as_bytes()).unwrap().hash
                );
            }
        }
    }

    #[test]
    fn invalid_bodies_are_rejected_every_time() {
        let memo = FingerprintMemo::default();
        for _ in 0..2 {
            assert!(memo.fingerprint(b"{\"model\":").is_err());
        }
    }
}
