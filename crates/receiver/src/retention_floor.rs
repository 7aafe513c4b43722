//! The retention floor: the lowest raw record sequence number retention must keep, because a run
//! that needs it is not written yet. Two things hold records up: batches stored (or being stored)
//! that a run-manager shard has not taken into its open runs yet (`pending`), and each shard's
//! open runs (published by the shard at every tick). Retention drops only segments wholly below.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Shared by the ack path (which registers batches before their append), the shards (which
/// publish their open runs' lowest record) and the retention task (which reads the minimum).
#[derive(Debug)]
pub struct RetentionFloor {
    /// Lower bounds of the seqs of batches not yet taken by every shard they go to → how many.
    pending: Mutex<BTreeMap<u64, usize>>,
    /// Per shard: the lowest seq its open runs hold (`u64::MAX` when none); 0 until the shard
    /// finished its startup scan, so nothing is dropped before every shard knows its runs.
    shards: Vec<AtomicU64>,
}

/// A batch that is held up until every shard it was handed to has taken it and published a floor
/// covering it. Dropped (every clone) → released.
#[derive(Debug)]
pub struct PendingRecord {
    floor: Arc<RetentionFloor>,
    lower: u64,
}

impl RetentionFloor {
    pub fn new(shards: usize) -> Arc<RetentionFloor> {
        Arc::new(RetentionFloor {
            pending: Mutex::new(BTreeMap::new()),
            shards: (0..shards.max(1)).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Registers a batch about to be appended; every seq it gets is ≥ `lower` (the store's next
    /// seq when this is called).
    pub fn pending(self: &Arc<Self>, lower: u64) -> Arc<PendingRecord> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        *pending.entry(lower).or_default() += 1;
        Arc::new(PendingRecord {
            floor: Arc::clone(self),
            lower,
        })
    }

    /// Shard `shard`'s open runs hold no record below `lowest`.
    pub fn publish(&self, shard: usize, lowest: u64) {
        if let Some(slot) = self.shards.get(shard) {
            slot.store(lowest, Ordering::Release);
        }
    }

    /// The lowest seq a batch being stored or not yet taken by every shard may have.
    pub fn pending_min(&self) -> Option<u64> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.keys().next().copied()
    }

    /// The lowest seq that must stay.
    pub fn floor(&self) -> u64 {
        let shards = self
            .shards
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(0);
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .keys()
            .next()
            .map_or(shards, |&lowest| lowest.min(shards))
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        let mut pending = self
            .floor
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = pending.get_mut(&self.lower) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.lower);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_lowest_of_pending_batches_and_open_runs() {
        let floor = RetentionFloor::new(2);
        assert_eq!(
            floor.floor(),
            0,
            "nothing may go before the shards published"
        );
        floor.publish(0, u64::MAX);
        floor.publish(1, 40);
        assert_eq!(floor.floor(), 40);
        let a = floor.pending(30);
        let b = floor.pending(30);
        let c = floor.pending(50);
        assert_eq!(floor.floor(), 30);
        drop(a);
        assert_eq!(floor.floor(), 30, "one batch at 30 is still pending");
        drop(b);
        assert_eq!(floor.floor(), 40);
        floor.publish(1, u64::MAX);
        assert_eq!(floor.floor(), 50);
        drop(c);
        assert_eq!(floor.floor(), u64::MAX);
    }
}
