//! The index of traces that are not open: trace → the raw records holding its spans or log
//! records, kept so a late span can re-open a finalized run from the raw store. Traces finalized
//! within the late window (and at most [`MAX_IN_MEMORY`] of them) stay in memory; older ones are
//! moved to an on-disk table (`<data>/index/traces.redb`, shared by the shards), so the
//! receiver's memory is bounded by recent traffic instead of growing with all history. With each
//! move a shard also writes its checkpoint: every record below it that holds one of the shard's
//! traces is accounted for on disk, so the startup scan starts there instead of at seq 1.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use traj_schema::ids::TraceId;

use crate::receiver_metrics::ReceiverMetrics;

/// Entries kept in memory at most, whatever the window: ~100 B each.
pub const MAX_IN_MEMORY: usize = 200_000;
/// redb's page cache (its default is 1 GiB, which would count against the receiver's memory).
const DB_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// trace id → value: a flags byte (bit 0: holds a span) then the record seqs, u64 little-endian.
const TRACES: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("traces");
/// shard index → (shard count, checkpoint seq).
const CHECKPOINTS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("checkpoints");
/// Approximate heap cost of one in-memory entry beyond its seqs (key, map slot, queue slot).
const ENTRY_OVERHEAD: usize = 96;

/// A failure of the on-disk index.
#[derive(Debug, thiserror::Error)]
#[error("trace index {path}: {message}")]
pub struct IndexError {
    path: PathBuf,
    message: String,
}

/// The raw records of a trace that is not open (finalized, or log records only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TraceRecords {
    /// Sequence numbers of the records holding its spans or log records, ascending.
    pub seqs: Vec<u64>,
    /// Whether any of them holds a span: only then was (or is) there a run.
    pub has_spans: bool,
}

impl TraceRecords {
    /// Notes record `seq` (records arrive in order, so only the last needs checking).
    pub fn push(&mut self, seq: u64) {
        if self.seqs.last() != Some(&seq) {
            self.seqs.push(seq);
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.seqs.len() * 8);
        out.push(u8::from(self.has_spans));
        for seq in &self.seqs {
            out.extend_from_slice(&seq.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<TraceRecords> {
        let (&flags, rest) = bytes.split_first()?;
        if rest.len() % 8 != 0 {
            return None;
        }
        let seqs = rest
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        Some(TraceRecords {
            seqs,
            has_spans: flags & 1 == 1,
        })
    }

    fn heap_bytes(&self) -> usize {
        ENTRY_OVERHEAD + self.seqs.len() * 8
    }
}

/// The on-disk table, shared by every shard (redb allows one writer at a time; each shard
/// writes once per spill).
pub struct TraceIndexDb {
    db: redb::Database,
    path: PathBuf,
}

impl TraceIndexDb {
    /// Opens (or creates) the index at `path`.
    pub fn open(path: &Path) -> Result<Arc<TraceIndexDb>, IndexError> {
        let fail = |e: &dyn std::fmt::Display| IndexError {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let db = redb::Database::builder()
            .set_cache_size(DB_CACHE_BYTES)
            .create(path)
            .map_err(|e| fail(&e))?;
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        txn.open_table(TRACES).map_err(|e| fail(&e))?;
        txn.open_table(CHECKPOINTS).map_err(|e| fail(&e))?;
        txn.commit().map_err(|e| fail(&e))?;
        Ok(Arc::new(TraceIndexDb {
            db,
            path: path.to_path_buf(),
        }))
    }

    /// Where the index of the data dir `data_dir` lives.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("index").join("traces.redb")
    }

    fn error(&self, e: impl std::fmt::Display) -> IndexError {
        IndexError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn get(&self, trace: &TraceId) -> Result<Option<TraceRecords>, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TRACES).map_err(|e| self.error(e))?;
        let Some(value) = table.get(trace).map_err(|e| self.error(e))? else {
            return Ok(None);
        };
        match TraceRecords::decode(value.value()) {
            Some(records) => Ok(Some(records)),
            None => Err(self.error(format!(
                "entry of trace {} does not decode",
                hex::encode(trace)
            ))),
        }
    }

    /// Where shard `index` of `count` may start its startup scan: its checkpoint when the last
    /// run had as many shards; else the lowest checkpoint of any (still true for every trace);
    /// 0 (a full scan) when there is none.
    pub fn checkpoint(&self, index: usize, count: usize) -> Result<u64, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(CHECKPOINTS).map_err(|e| self.error(e))?;
        let mut all = Vec::new();
        for item in table.iter().map_err(|e| self.error(e))? {
            let (shard, value) = item.map_err(|e| self.error(e))?;
            let (was_count, seq) = value.value();
            all.push((shard.value(), was_count, seq));
        }
        let same = all.iter().all(|&(_, c, _)| c == count as u64);
        let mine = all.iter().find(|&&(s, _, _)| s == index as u64);
        Ok(match mine {
            Some(&(_, _, seq)) if same => seq,
            _ if all.is_empty() => 0,
            _ if same => 0,
            _ => all.iter().map(|&(_, _, seq)| seq).min().unwrap_or(0),
        })
    }

    /// Writes shard `index` of `count`'s checkpoint in a durable transaction (which makes every
    /// earlier non-durable commit durable too).
    pub fn write_checkpoint(&self, index: usize, count: usize, seq: u64) -> Result<(), IndexError> {
        self.put_all(&[], Some((index, count, seq))).map(|_| ())
    }

    /// Writes `entries` and, when given, shard `(index, count)`'s checkpoint, in one transaction;
    /// returns the table's entry count after. Only a checkpoint commit is durable (fsynced, and
    /// with it every commit before it): entries moved by a non-durable commit that a crash loses
    /// are at or above the last durable checkpoint, so the startup scan indexes them again.
    fn put_all(
        &self,
        entries: &[(TraceId, TraceRecords)],
        checkpoint: Option<(usize, usize, u64)>,
    ) -> Result<u64, IndexError> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        if checkpoint.is_none() {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.error(e))?;
        }
        if let Some((index, count, seq)) = checkpoint {
            let mut table = txn.open_table(CHECKPOINTS).map_err(|e| self.error(e))?;
            table
                .insert(index as u64, (count as u64, seq))
                .map_err(|e| self.error(e))?;
        }
        let len = {
            let mut table = txn.open_table(TRACES).map_err(|e| self.error(e))?;
            for (trace, records) in entries {
                table
                    .insert(trace, records.encode().as_slice())
                    .map_err(|e| self.error(e))?;
            }
            table.len().map_err(|e| self.error(e))?
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(len)
    }

    /// Entries on disk.
    pub fn entries(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TRACES).map_err(|e| self.error(e))?;
        table.len().map_err(|e| self.error(e))
    }
}

/// One shard's view of the index: its recent entries in memory, the rest on disk.
pub(crate) struct TraceIndex {
    recent: HashMap<TraceId, (TraceRecords, Instant)>,
    /// Insertion order of `recent`, for spilling the oldest; an entry whose time differs from
    /// the map's was replaced since and is skipped.
    order: VecDeque<(TraceId, Instant)>,
    heap_bytes: usize,
    db: Arc<TraceIndexDb>,
    metrics: Arc<ReceiverMetrics>,
}

impl TraceIndex {
    pub fn new(db: Arc<TraceIndexDb>, metrics: Arc<ReceiverMetrics>) -> Self {
        TraceIndex {
            recent: HashMap::new(),
            order: VecDeque::new(),
            heap_bytes: 0,
            db,
            metrics,
        }
    }

    /// Records that `trace` (not open now) is held by `records`, as of `at`.
    pub fn insert(&mut self, trace: TraceId, records: TraceRecords, at: Instant) {
        self.account(records.heap_bytes() as isize, 1);
        if let Some((old, _)) = self.recent.insert(trace, (records, at)) {
            self.account(-(old.heap_bytes() as isize), -1);
        }
        self.order.push_back((trace, at));
    }

    /// Where shard `index` of `count` may start its startup scan ([`TraceIndexDb::checkpoint`]).
    pub fn checkpoint(&self, index: usize, count: usize) -> Result<u64, IndexError> {
        self.db.checkpoint(index, count)
    }

    /// The on-disk table.
    pub fn db(&self) -> &Arc<TraceIndexDb> {
        &self.db
    }

    /// The entry of `trace` on disk, if any (memory not consulted).
    pub fn on_disk(&self, trace: &TraceId) -> Result<Option<TraceRecords>, IndexError> {
        self.db.get(trace)
    }

    /// The lowest record seq of the entries that stay in memory when `moving` goes to disk.
    pub fn lowest_staying(&self, moving: &[TraceId]) -> Option<u64> {
        let moving: std::collections::HashSet<&TraceId> = moving.iter().collect();
        self.recent
            .iter()
            .filter(|(trace, _)| !moving.contains(trace))
            .filter_map(|(_, (records, _))| records.seqs.first().copied())
            .min()
    }

    /// Takes the entry of `trace` out of memory, or reads it from disk (where it stays until
    /// overwritten: the trace is open now and comes back here when finalized again).
    pub fn take(&mut self, trace: &TraceId) -> Result<Option<TraceRecords>, IndexError> {
        if let Some((records, _)) = self.recent.remove(trace) {
            self.account(-(records.heap_bytes() as isize), -1);
            return Ok(Some(records));
        }
        self.db.get(trace)
    }

    /// Moves to disk every entry older than `window`, and the oldest ones beyond
    /// [`MAX_IN_MEMORY`]; returns how many moved. `checkpoint` (computed by the caller once the
    /// move is known, from what stays in memory) is written in the same transaction. On a write
    /// error nothing is lost: the entries stay in memory and the next spill tries again.
    /// `window` is the late window (zero at shutdown: everything goes to disk, so the last
    /// checkpoint waits only for the open runs).
    pub fn spill_older_than(
        &mut self,
        now: Instant,
        window: Duration,
        checkpoint: impl FnOnce(&TraceIndex, &[TraceId]) -> Option<(usize, usize, u64)>,
    ) -> Result<usize, IndexError> {
        let mut moving = Vec::new();
        while let Some(&(trace, at)) = self.order.front() {
            let old = now.saturating_duration_since(at) >= window;
            let over = self.recent.len() - moving.len() > MAX_IN_MEMORY;
            if !old && !over {
                break;
            }
            self.order.pop_front();
            if self.recent.get(&trace).is_some_and(|(_, t)| *t == at) {
                moving.push(trace);
            }
        }
        let checkpoint = checkpoint(self, &moving);
        if moving.is_empty() && checkpoint.is_none() {
            return Ok(0);
        }
        let entries: Vec<(TraceId, TraceRecords)> = moving
            .iter()
            .filter_map(|t| self.recent.get(t).map(|(r, _)| (*t, r.clone())))
            .collect();
        match self.db.put_all(&entries, checkpoint) {
            Ok(on_disk) => {
                for (trace, _) in &entries {
                    if let Some((records, _)) = self.recent.remove(trace) {
                        self.account(-(records.heap_bytes() as isize), -1);
                    }
                }
                self.metrics
                    .trace_index_disk_entries
                    .store(on_disk, Ordering::Relaxed);
                Ok(entries.len())
            }
            Err(e) => {
                for (trace, _) in &entries {
                    if let Some((_, at)) = self.recent.get(trace) {
                        self.order.push_front((*trace, *at));
                    }
                }
                Err(e)
            }
        }
    }

    /// Entries in memory.
    pub fn in_memory(&self) -> usize {
        self.recent.len()
    }

    fn account(&mut self, bytes: isize, entries: isize) {
        self.heap_bytes = self.heap_bytes.saturating_add_signed(bytes);
        move_gauge(&self.metrics.trace_index_bytes, bytes);
        move_gauge(&self.metrics.trace_index_entries, entries);
    }
}

/// Adds `delta` to a gauge shared by the shards, never below zero.
fn move_gauge(gauge: &std::sync::atomic::AtomicU64, delta: isize) {
    let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add_signed(delta as i64))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(n: u8) -> TraceId {
        let mut t = [0u8; 16];
        t[15] = n;
        t[0] = 1;
        t
    }

    #[test]
    fn records_round_trip_and_bad_bytes_do_not_decode() {
        let r = TraceRecords {
            seqs: vec![1, 7, u64::MAX],
            has_spans: true,
        };
        assert_eq!(TraceRecords::decode(&r.encode()), Some(r));
        assert_eq!(TraceRecords::decode(&[]), None);
        assert_eq!(TraceRecords::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn old_entries_move_to_disk_and_are_found_there_after_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = TraceIndexDb::path_in(tmp.path());
        let metrics = Arc::new(ReceiverMetrics::default());
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        {
            let db = TraceIndexDb::open(&path).unwrap();
            let mut index = TraceIndex::new(db, Arc::clone(&metrics));
            for n in 0..10 {
                let records = TraceRecords {
                    seqs: vec![u64::from(n), 100 + u64::from(n)],
                    has_spans: n % 2 == 0,
                };
                index.insert(trace(n), records, t0 + Duration::from_secs(u64::from(n)));
            }
            assert_eq!(ReceiverMetrics::get(&metrics.trace_index_entries), 10);
            assert!(ReceiverMetrics::get(&metrics.trace_index_bytes) >= 10 * 96);
            // At t0 + 64 s, traces 0..=4 are older than the window.
            assert_eq!(
                index
                    .spill_older_than(t0 + Duration::from_secs(64), window, |_, _| None)
                    .unwrap(),
                5
            );
            assert_eq!(index.in_memory(), 5);
            assert_eq!(ReceiverMetrics::get(&metrics.trace_index_entries), 5);
            assert_eq!(ReceiverMetrics::get(&metrics.trace_index_disk_entries), 5);
            // Nothing more is due yet.
            assert_eq!(
                index
                    .spill_older_than(t0 + Duration::from_secs(64), window, |_, _| None)
                    .unwrap(),
                0
            );
            // An entry in memory is taken out of it; one on disk is read.
            let taken = index.take(&trace(7)).unwrap().unwrap();
            assert_eq!(taken.seqs, vec![7, 107]);
            assert_eq!(index.in_memory(), 4);
            let on_disk = index.take(&trace(2)).unwrap().unwrap();
            assert_eq!((on_disk.seqs, on_disk.has_spans), (vec![2, 102], true));
            assert_eq!(index.take(&trace(99)).unwrap(), None);
        }
        // A later start (same file) still finds the spilled entries.
        let db = TraceIndexDb::open(&path).unwrap();
        assert_eq!(db.entries().unwrap(), 5);
        let mut index = TraceIndex::new(db, metrics);
        assert_eq!(index.take(&trace(3)).unwrap().unwrap().seqs, vec![3, 103]);
    }

    #[test]
    fn a_replaced_entry_is_spilled_once_with_its_latest_records() {
        let tmp = tempfile::tempdir().unwrap();
        let db = TraceIndexDb::open(&TraceIndexDb::path_in(tmp.path())).unwrap();
        let metrics = Arc::new(ReceiverMetrics::default());
        let mut index = TraceIndex::new(Arc::clone(&db), metrics);
        let t0 = Instant::now();
        let first = TraceRecords {
            seqs: vec![1],
            has_spans: true,
        };
        let second = TraceRecords {
            seqs: vec![1, 5],
            has_spans: true,
        };
        index.insert(trace(1), first, t0);
        index.insert(trace(1), second.clone(), t0 + Duration::from_millis(10));
        assert_eq!(index.in_memory(), 1);
        assert_eq!(
            index
                .spill_older_than(
                    t0 + Duration::from_secs(5),
                    Duration::from_secs(1),
                    |_, _| None
                )
                .unwrap(),
            1
        );
        assert_eq!(db.entries().unwrap(), 1);
        assert_eq!(index.take(&trace(1)).unwrap(), Some(second));
    }
}
