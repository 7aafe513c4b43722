//! The dedicated writer thread: drains the bounded append queue into commit groups, writes each
//! group with one positional write and (under `FsyncPolicy::Always`) one `fdatasync`, assigns
//! sequence numbers, rolls segments, repairs the file after write errors, and publishes committed
//! records to the shared index before resolving the appends.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::config::FsyncPolicy;
use crate::error::{StoreError, WriteOp};
use crate::fault_injection::Faults;
use crate::record_format::{encode_into, RecordKind, HEADER_LEN};
use crate::segment_files::{segment_name, sync_dir};
use crate::segment_index::{is_anchor, SegmentInfo};
use crate::store_handle::Shared;

/// One queued append.
pub(crate) struct AppendReq {
    pub kind: RecordKind,
    pub payload: Bytes,
    pub reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// What travels through the queue.
pub(crate) enum Msg {
    Append(AppendReq),
    /// Flush everything queued, sync, reply, stop.
    Shutdown(oneshot::Sender<Result<(), StoreError>>),
}

enum Stop {
    Requested(oneshot::Sender<Result<(), StoreError>>),
    Disconnected,
}

/// A failed step of a commit.
struct GroupFailure {
    op: WriteOp,
    path: PathBuf,
    err: io::Error,
}

pub(crate) struct WriterSetup {
    pub shared: Arc<Shared>,
    pub rx: Receiver<Msg>,
    pub policy: FsyncPolicy,
    pub segment_bytes: u64,
    pub max_batch_bytes: usize,
    pub active: File,
    pub active_path: PathBuf,
    pub active_first_seq: u64,
    pub active_len: u64,
    pub next_seq: u64,
    pub faults: Faults,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    policy: FsyncPolicy,
    segment_bytes: u64,
    max_batch_bytes: usize,
    file: File,
    path: PathBuf,
    seg_first_seq: u64,
    /// Committed length of the active segment; every write starts here.
    committed: u64,
    next_seq: u64,
    /// The file may hold bytes past `committed` (a failed write whose truncate failed too).
    dirty: bool,
    /// A roll created the next segment file but did not finish; the next group must roll.
    roll_pending: bool,
    /// Time of the first write not yet fsynced (Interval / Never).
    unsynced_since: Option<Instant>,
    buf: Vec<u8>,
    anchors: Vec<u64>,
    batch: Vec<AppendReq>,
    pending: Option<AppendReq>,
    #[cfg_attr(not(test), allow(dead_code))]
    faults: Faults,
}

impl Writer {
    pub(crate) fn new(s: WriterSetup) -> Self {
        Writer {
            shared: s.shared,
            rx: s.rx,
            policy: s.policy,
            segment_bytes: s.segment_bytes,
            max_batch_bytes: s.max_batch_bytes,
            file: s.active,
            path: s.active_path,
            seg_first_seq: s.active_first_seq,
            committed: s.active_len,
            next_seq: s.next_seq,
            dirty: false,
            roll_pending: false,
            unsynced_since: None,
            buf: Vec::with_capacity(s.max_batch_bytes.min(16 * 1024 * 1024)),
            anchors: Vec::new(),
            batch: Vec::new(),
            pending: None,
            faults: s.faults,
        }
    }

    /// The thread body: serve until asked to stop or every handle is gone, then flush.
    pub(crate) fn run(mut self, done: watch::Sender<bool>) {
        let stop = self.serve();
        self.drain();
        let result = self.final_sync();
        self.shared.closing.store(true, Ordering::Release);
        match stop {
            Stop::Requested(tx) => {
                let _ = tx.send(result);
            }
            Stop::Disconnected => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "final fsync of the raw store failed");
                }
            }
        }
        // Appends that raced with the shutdown: refuse them explicitly.
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Append(r) => {
                    self.dequeued();
                    let _ = r.reply.send(Err(StoreError::Closed));
                }
                Msg::Shutdown(tx) => {
                    let _ = tx.send(Ok(()));
                }
            }
        }
        let _ = done.send(true);
        tracing::debug!("raw store writer stopped");
    }

    fn serve(&mut self) -> Stop {
        loop {
            let first = match self.pending.take() {
                Some(r) => r,
                None => match self.recv() {
                    Some(Msg::Append(r)) => r,
                    Some(Msg::Shutdown(tx)) => return Stop::Requested(tx),
                    None => return Stop::Disconnected,
                },
            };
            let stop = self.gather(first);
            self.commit();
            self.maybe_interval_sync();
            if let Some(stop) = stop {
                return stop;
            }
        }
    }

    /// Commits whatever is still queued (appends accepted before the stop).
    fn drain(&mut self) {
        loop {
            let first = match self.pending.take() {
                Some(r) => r,
                None => match self.rx.try_recv() {
                    Ok(Msg::Append(r)) => {
                        self.dequeued();
                        r
                    }
                    Ok(Msg::Shutdown(tx)) => {
                        let _ = tx.send(Ok(()));
                        continue;
                    }
                    Err(_) => return,
                },
            };
            if let Some(Stop::Requested(tx)) = self.gather(first) {
                let _ = tx.send(Ok(()));
            }
            self.commit();
        }
    }

    /// Blocks for the next message; under `Interval` wakes up to fsync when due.
    fn recv(&mut self) -> Option<Msg> {
        loop {
            let msg = match (self.policy, self.unsynced_since) {
                (FsyncPolicy::Interval(every), Some(since)) => {
                    let now = Instant::now();
                    let due = since + every;
                    if now >= due {
                        self.background_sync();
                        continue;
                    }
                    match self.rx.recv_timeout(due - now) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.background_sync();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return None,
                    }
                }
                _ => self.rx.recv().ok()?,
            };
            if let Msg::Append(_) = msg {
                self.dequeued();
            }
            return Some(msg);
        }
    }

    fn dequeued(&self) {
        self.shared.queue_depth.fetch_sub(1, Ordering::AcqRel);
    }

    /// Adds queued appends to the group until it is `max_batch_bytes` or the queue is empty.
    fn gather(&mut self, first: AppendReq) -> Option<Stop> {
        let mut bytes = HEADER_LEN + first.payload.len();
        self.batch.push(first);
        while bytes < self.max_batch_bytes {
            match self.rx.try_recv() {
                Ok(Msg::Append(r)) => {
                    self.dequeued();
                    let size = HEADER_LEN + r.payload.len();
                    if bytes + size > self.max_batch_bytes {
                        self.pending = Some(r);
                        break;
                    }
                    bytes += size;
                    self.batch.push(r);
                }
                Ok(Msg::Shutdown(tx)) => return Some(Stop::Requested(tx)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Some(Stop::Disconnected),
            }
        }
        None
    }

    /// Writes the gathered group and resolves its appends.
    fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        #[cfg(test)]
        if let Some(f) = &self.faults {
            f.gate();
        }
        match self.write_group() {
            Ok(first_seq) => {
                for (i, r) in self.batch.drain(..).enumerate() {
                    let _ = r.reply.send(Ok(first_seq + i as u64));
                }
            }
            Err(f) => {
                tracing::error!(op = %f.op, file = %f.path.display(), error = %f.err, appends = self.batch.len(), "raw store commit failed");
                for r in self.batch.drain(..) {
                    let _ = r
                        .reply
                        .send(Err(StoreError::duplicate_write(&f.path, f.op, &f.err)));
                }
            }
        }
        // One oversized record must not pin a huge buffer forever.
        if self.buf.capacity() > 2 * self.max_batch_bytes.max(1024 * 1024) {
            self.buf = Vec::new();
        }
    }

    fn write_group(&mut self) -> Result<u64, GroupFailure> {
        if self.dirty {
            self.do_truncate()
                .map_err(|err| self.fail(WriteOp::Truncate, err))?;
            self.dirty = false;
        }
        let group_len: u64 = self
            .batch
            .iter()
            .map(|r| (HEADER_LEN + r.payload.len()) as u64)
            .sum();
        if self.roll_pending
            || (self.committed > 0 && self.committed + group_len > self.segment_bytes)
        {
            self.roll()?;
        }

        let first_seq = self.next_seq;
        self.buf.clear();
        self.anchors.clear();
        for (i, r) in self.batch.iter().enumerate() {
            let seq = first_seq + i as u64;
            if is_anchor(seq - self.seg_first_seq) {
                self.anchors.push(self.committed + self.buf.len() as u64);
            }
            encode_into(&mut self.buf, seq, r.kind, &r.payload);
        }

        if let Err(err) = self.do_write() {
            self.repair();
            return Err(self.fail(WriteOp::Write, err));
        }
        if self.policy == FsyncPolicy::Always {
            if let Err(err) = self.do_sync() {
                self.repair();
                return Err(self.fail(WriteOp::Sync, err));
            }
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }

        let n = self.batch.len() as u64;
        self.committed += group_len;
        self.next_seq += n;
        {
            let mut idx = self.shared.index_mut();
            if let Some(seg) = idx.segments.last_mut() {
                seg.records += n;
                seg.len = self.committed;
                seg.anchors.extend_from_slice(&self.anchors);
            }
            idx.records += n;
            idx.bytes += group_len;
        }
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        Ok(first_seq)
    }

    fn fail(&self, op: WriteOp, err: io::Error) -> GroupFailure {
        GroupFailure {
            op,
            path: self.path.clone(),
            err,
        }
    }

    /// After a failed write/fsync: cut the file back to the committed length. If even that
    /// fails, remember it; the next group truncates before writing.
    fn repair(&mut self) {
        self.dirty = true;
        match self.do_truncate() {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "truncate after failed write failed; will retry before the next write");
            }
        }
    }

    /// Closes the active segment (synced unless `Never`) and starts `seg-<next_seq>.log`.
    fn roll(&mut self) -> Result<(), GroupFailure> {
        // Under `Always` the segment is already synced; `Interval` owes an fsync before moving on.
        if self.policy != FsyncPolicy::Never && self.unsynced_since.is_some() {
            self.do_sync()
                .map_err(|err| self.fail(WriteOp::Sync, err))?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.unsynced_since = None;
        }
        let path = self.shared.raw_dir.join(segment_name(self.next_seq));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|err| GroupFailure {
                op: WriteOp::Roll,
                path: path.clone(),
                err,
            })?;
        self.roll_pending = true;
        if self.policy != FsyncPolicy::Never {
            sync_dir(&self.shared.raw_dir).map_err(|err| GroupFailure {
                op: WriteOp::Sync,
                path: self.shared.raw_dir.clone(),
                err,
            })?;
        }
        self.roll_pending = false;
        tracing::info!(file = %path.display(), previous_len = self.committed, "raw store rolled to a new segment");
        self.file = file;
        self.path = path.clone();
        self.seg_first_seq = self.next_seq;
        self.committed = 0;
        self.dirty = false;
        self.shared
            .index_mut()
            .segments
            .push(SegmentInfo::new(self.next_seq, path));
        Ok(())
    }

    fn maybe_interval_sync(&mut self) {
        if let (FsyncPolicy::Interval(every), Some(since)) = (self.policy, self.unsynced_since) {
            if since.elapsed() >= every {
                self.background_sync();
            }
        }
    }

    /// Interval fsync: the appends already resolved, so a failure can only be logged and counted.
    fn background_sync(&mut self) {
        match self.do_sync() {
            Ok(()) => {
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.unsynced_since = None;
            }
            Err(e) => {
                self.shared.sync_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %self.path.display(), error = %e, "interval fdatasync failed; acknowledged data may not be durable");
                self.unsynced_since = Some(Instant::now());
            }
        }
    }

    fn final_sync(&mut self) -> Result<(), StoreError> {
        if self.policy == FsyncPolicy::Never || self.unsynced_since.is_none() {
            return Ok(());
        }
        match self.do_sync() {
            Ok(()) => {
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.unsynced_since = None;
                Ok(())
            }
            Err(source) => Err(StoreError::Write {
                path: self.path.clone(),
                op: WriteOp::Sync,
                source,
            }),
        }
    }

    fn do_write(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(f) = &self.faults {
            use crate::fault_injection::FaultPlan;
            if FaultPlan::take(&f.fail_writes) {
                let n = f.partial_bytes.load(Ordering::Acquire).min(self.buf.len());
                self.file.write_all_at(&self.buf[..n], self.committed)?;
                return Err(FaultPlan::enospc());
            }
        }
        self.file.write_all_at(&self.buf, self.committed)
    }

    fn do_sync(&self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(f) = &self.faults {
            use crate::fault_injection::FaultPlan;
            if FaultPlan::take(&f.fail_syncs) {
                return Err(FaultPlan::eio());
            }
        }
        self.file.sync_data()
    }

    fn do_truncate(&self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(f) = &self.faults {
            use crate::fault_injection::FaultPlan;
            if FaultPlan::take(&f.fail_truncates) {
                return Err(FaultPlan::eio());
            }
        }
        self.file.set_len(self.committed)
    }
}
