//! The public `Store` handle: opening (recovery + writer thread), async appends with bounded-queue
//! backpressure, reads by sequence number, ordered scans, stats and close.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::fault_injection::Faults;
use crate::group_commit_writer::{AppendReq, Msg, Writer, WriterSetup};
use crate::record_format::{self as fmt, ReadFailure, Record, RecordKind, MAX_PAYLOAD};
use crate::recovery::{recover, RecoveryReport};
use crate::scan_iter::Scan;
use crate::segment_index::Index;

/// State shared by the handles, the scans and the writer thread.
pub(crate) struct Shared {
    pub raw_dir: PathBuf,
    pub index: RwLock<Index>,
    pub queue_depth: AtomicUsize,
    pub capacity: usize,
    pub commits: AtomicU64,
    pub fsyncs: AtomicU64,
    pub sync_errors: AtomicU64,
    pub closing: AtomicBool,
}

impl Shared {
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Inner {
    tx: SyncSender<Msg>,
    pub(crate) shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

/// Handle to an open raw store. Cheap to clone; `Send + Sync`. The writer thread stops (after
/// flushing) on [`Store::close`] or when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// A point-in-time view of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Committed records.
    pub records: u64,
    /// Committed bytes on disk (headers included).
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Appends waiting for the writer.
    pub queue_depth: usize,
    /// Commit groups written (one write, plus one fsync under `Always`, each).
    pub commits: u64,
    /// Successful `fdatasync` calls on segments.
    pub fsyncs: u64,
    /// Failed background (`Interval`) fsyncs.
    pub sync_errors: u64,
}

/// An append accepted into the queue; resolves to its sequence number once committed.
/// Dropping it does not cancel the append.
#[must_use = "the append is only known to be committed once the ticket resolves"]
pub struct AppendTicket {
    rx: oneshot::Receiver<Result<u64, StoreError>>,
}

impl Future for AppendTicket {
    type Output = Result<u64, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::Closed)))
    }
}

impl Store {
    /// Opens (creating if needed) the store under `cfg.dir/raw`, recovering from a crash: a torn
    /// tail of the last segment is truncated and reported; any other corruption is an error.
    pub fn open(cfg: StoreConfig) -> Result<(Store, RecoveryReport), StoreError> {
        Self::open_with_faults(cfg, Faults::default())
    }

    pub(crate) fn open_with_faults(
        cfg: StoreConfig,
        faults: Faults,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        cfg.validate()?;
        let raw_dir = cfg.raw_dir();
        let rec = recover(&cfg.dir, &raw_dir)?;
        let (active_path, active_first_seq, active_len) = match rec.index.segments.last() {
            Some(s) => (s.path.clone(), s.first_seq, s.len),
            None => return Err(StoreError::Config("no segment after recovery".into())),
        };
        let shared = Arc::new(Shared {
            raw_dir,
            index: RwLock::new(rec.index),
            queue_depth: AtomicUsize::new(0),
            capacity: cfg.queue_capacity,
            commits: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            sync_errors: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        });
        // One slot more than the append capacity: room for the single Shutdown message.
        let (tx, rx) = sync_channel(cfg.queue_capacity.saturating_add(1));
        let (done_tx, done_rx) = watch::channel(false);
        let writer = Writer::new(WriterSetup {
            shared: shared.clone(),
            rx,
            policy: cfg.fsync,
            segment_bytes: cfg.segment_bytes,
            max_batch_bytes: cfg.max_batch_bytes,
            active: rec.active,
            active_path,
            active_first_seq,
            active_len,
            next_seq: rec.next_seq,
            faults,
        });
        std::thread::Builder::new()
            .name("traj-store-writer".into())
            .spawn(move || writer.run(done_tx))
            .map_err(|e| StoreError::io(&cfg.dir, e))?;
        let store = Store {
            inner: Arc::new(Inner {
                tx,
                shared,
                done: done_rx,
            }),
        };
        Ok((store, rec.report))
    }

    /// Appends one trace record ([`RecordKind::Traces`]); resolves with its sequence number once
    /// committed (written, and under `FsyncPolicy::Always` fdatasynced). Fails at once with
    /// `Busy` when the queue is full.
    pub async fn append(&self, payload: Bytes) -> Result<u64, StoreError> {
        self.try_append(payload)?.await
    }

    /// [`Store::append`] for a record of any kind. Records of every kind share one sequence, one
    /// queue and the same group commit.
    pub async fn append_kind(&self, kind: RecordKind, payload: Bytes) -> Result<u64, StoreError> {
        self.try_append_kind(kind, payload)?.await
    }

    /// Queues one trace record without waiting: `Busy` when the queue is full, `Closed` after
    /// close, `TooLarge` over 4 GiB. The returned ticket resolves like [`Store::append`].
    pub fn try_append(&self, payload: Bytes) -> Result<AppendTicket, StoreError> {
        self.try_append_kind(RecordKind::Traces, payload)
    }

    /// [`Store::try_append`] for a record of any kind.
    pub fn try_append_kind(
        &self,
        kind: RecordKind,
        payload: Bytes,
    ) -> Result<AppendTicket, StoreError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let shared = &self.inner.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        // Reserve a queue slot first; the counter bounds the channel content to `capacity`.
        if shared.queue_depth.fetch_add(1, Ordering::AcqRel) >= shared.capacity {
            shared.queue_depth.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Busy {
                capacity: shared.capacity,
            });
        }
        let (reply, rx) = oneshot::channel();
        match self.inner.tx.try_send(Msg::Append(AppendReq {
            kind,
            payload,
            reply,
        })) {
            Ok(()) => Ok(AppendTicket { rx }),
            Err(TrySendError::Full(_)) => {
                shared.queue_depth.fetch_sub(1, Ordering::AcqRel);
                Err(StoreError::Busy {
                    capacity: shared.capacity,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                shared.queue_depth.fetch_sub(1, Ordering::AcqRel);
                Err(StoreError::Closed)
            }
        }
    }

    /// Ordered iterator over the records (of every kind) committed when it is created, starting
    /// at `from_seq` (or the first record). Stops after yielding the first error.
    pub fn scan(&self, from_seq: u64) -> Scan {
        Scan::new(self.inner.shared.clone(), from_seq)
    }

    /// The payload of committed record `seq` (CRC-checked), whatever its kind; see
    /// [`Store::read_record`] for the kind.
    pub fn read(&self, seq: u64) -> Result<Bytes, StoreError> {
        self.read_record(seq).map(|r| r.payload)
    }

    /// Committed record `seq` (CRC-checked) with its kind.
    pub fn read_record(&self, seq: u64) -> Result<Record, StoreError> {
        let loc = self
            .inner
            .shared
            .index()
            .locate(seq)
            .ok_or(StoreError::NotFound { seq })?;
        let file = File::open(&loc.path).map_err(|e| StoreError::io(&loc.path, e))?;
        let mut offset = loc.anchor_offset;
        let mut at = loc.anchor_seq;
        loop {
            let map = |f: ReadFailure, offset: u64| match f {
                ReadFailure::Io(e) => StoreError::io(&loc.path, e),
                ReadFailure::Corrupt(kind) => StoreError::Corrupt {
                    path: loc.path.clone(),
                    offset,
                    kind,
                },
            };
            let header =
                fmt::pread_header(&file, offset, loc.segment_len).map_err(|f| map(f, offset))?;
            if header.seq != at {
                return Err(map(
                    ReadFailure::Corrupt(crate::error::CorruptKind::SeqMismatch {
                        expected: at,
                        found: header.seq,
                    }),
                    offset,
                ));
            }
            if at == seq {
                let payload =
                    fmt::pread_payload(&file, offset, &header).map_err(|f| map(f, offset))?;
                return Ok(Record {
                    seq,
                    kind: header.kind,
                    payload,
                });
            }
            offset += header.record_len();
            at += 1;
        }
    }

    /// Counters and sizes right now.
    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        let idx = shared.index();
        StoreStats {
            records: idx.records,
            bytes: idx.bytes,
            segments: idx.segments.len(),
            first_seq: idx.first_seq(),
            last_seq: idx.last_seq(),
            queue_depth: shared.queue_depth.load(Ordering::Acquire),
            commits: shared.commits.load(Ordering::Relaxed),
            fsyncs: shared.fsyncs.load(Ordering::Relaxed),
            sync_errors: shared.sync_errors.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting appends, commits everything already queued, fsyncs (unless `Never`) and
    /// stops the writer. Every handle sees `Closed` afterwards. The first `close` reports the
    /// final fsync result; a concurrent second one just waits for the writer to stop.
    pub async fn close(self) -> Result<(), StoreError> {
        let first = !self.inner.shared.closing.swap(true, Ordering::AcqRel);
        if first {
            let (tx, rx) = oneshot::channel();
            if self.inner.tx.try_send(Msg::Shutdown(tx)).is_ok() {
                return rx.await.unwrap_or(Err(StoreError::Closed));
            }
        }
        let mut done = self.inner.done.clone();
        let stopped = done.wait_for(|d| *d).await.is_ok();
        if stopped {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }
    }
}
