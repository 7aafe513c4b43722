//! The run manager: turns stored batches into runs off the ack path. It is sharded by trace id:
//! each shard runs on its own OS thread (assembly, store reads and file writes are blocking
//! work), owns the open runs of its traces and finalizes them itself, so finalization uses every
//! core and no lock is shared between shards. A shard is fed by a bounded channel; the ack path
//! reserves a slot in each shard it routes to before appending to the store.
//!
//! An open run holds only where its spans sit in the raw store (`open_run`), so memory does not
//! grow with span sizes. A run is finalized (its spans read back and decoded, assembled with its
//! log records, written atomically to `runs/<run_id>/`) once its root has ended and the grace
//! period passed, or after the idle timeout without a root (`deadlines`); a few due runs are
//! finalized after every batch, so the queue keeps draining. Late spans and late log records
//! re-open a finalized run from the raw store; at startup a scan of the raw store (`recovery`)
//! re-opens runs that are missing or incomplete on disk. A trace with log records but no span
//! is dropped from memory after the idle timeout (its records stay in raw and join the run if
//! spans arrive later).

mod deadlines;
mod open_run;
mod recovery;
mod trace_index;

pub use recovery::RecoverySummary;
pub use trace_index::{IndexError, TraceIndexDb};

use crate::receiver_metrics::ReceiverMetrics;
use crate::retention_floor::{PendingRecord, RetentionFloor};
use deadlines::{Candidate, Deadlines};
use open_run::{HeldSpan, OpenRun};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trace_index::{TraceIndex, TraceRecords};
use traj_assemble::{
    assemble_with_logs, split_encoded_by_trace, split_logs_by_trace, EncodedSpan, LogEntry,
    MappingRules, SpanRecord,
};
use traj_schema::ids::{self, TraceId};
use traj_store::{RangeReader, RecordKind, Store};

/// Due runs finalized after each batch (more at each tick): enough to keep up, few enough that
/// the queue is never left waiting long.
const FINALIZE_PER_BATCH: usize = 8;
/// How often the index moves entries older than the late window to disk.
const SPILL_EVERY: Duration = Duration::from_secs(1);
/// How often a spill also writes the shard's checkpoint (after a `syncfs` of the runs, and
/// durably). Each costs a flush of the whole file system, which delays the raw store's fsyncs
/// (and so the acks) behind it: at every 10 s, p99 export latency at half load went from ~30 to
/// ~215 ms. Every 5 minutes the startup scan still covers only the last minutes of traffic.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);
/// Spans of one record read back with one `pread` when they lie closer than this.
const COALESCE_GAP: usize = 4096;

/// What the ack path sends to a run-manager shard: the part of one stored batch whose traces
/// the shard owns.
#[derive(Debug)]
pub enum RunMsg {
    /// Spans of trace record `seq`, by trace, located in the record's payload.
    Spans {
        seq: u64,
        traces: Vec<(TraceId, Vec<EncodedSpan>)>,
        /// Holds the record against retention until a published floor covers it.
        hold: Arc<PendingRecord>,
    },
    /// Log records of logs record `seq`, by trace.
    Logs {
        seq: u64,
        traces: Vec<(TraceId, Vec<LogEntry>)>,
        hold: Arc<PendingRecord>,
    },
    /// Time to check the finalization deadlines.
    Tick,
    /// Stop now (shutdown); open runs are left for the next start.
    Stop,
}

/// Which traces a shard owns: those whose id maps to `index` among `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The only shard: owns every trace.
    pub const ONLY: Shard = Shard { index: 0, count: 1 };

    /// The shard (among `count`) that owns `trace`: W3C trace ids are random, so their low
    /// eight bytes spread traces evenly.
    pub fn of(trace: &TraceId, count: usize) -> usize {
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace[8..]);
        (u64::from_le_bytes(low) % count.max(1) as u64) as usize
    }

    pub fn owns(&self, trace: &TraceId) -> bool {
        Shard::of(trace, self.count) == self.index
    }
}

/// Timers, paths and the shard of one run manager.
#[derive(Debug, Clone)]
pub struct RunManagerConfig {
    pub runs_dir: PathBuf,
    pub grace_period: Duration,
    pub idle_timeout: Duration,
    /// Finalized traces stay indexed in memory this long (late spans find them fastest), then
    /// move to the on-disk index.
    pub late_window: Duration,
    pub durability: traj_runs::Durability,
    pub shard: Shard,
}

/// Where the run a batch adds to came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// It was open.
    Open,
    /// Rebuilt from the raw store: a finalized run (`had_spans`) or a log-only trace.
    Reopened { had_spans: bool },
    /// First seen now.
    New,
}

/// What one batch did to a run, for [`RunManager::settle`].
struct Added {
    origin: Origin,
    /// Spans or log records that were not duplicates.
    new: u64,
    /// What the run held before, as counted in `open_run_bytes`.
    held_before: usize,
}

/// The state owned by one run-manager thread.
pub struct RunManager {
    cfg: RunManagerConfig,
    store: Store,
    reader: RangeReader,
    rules: Arc<MappingRules>,
    metrics: Arc<ReceiverMetrics>,
    open: HashMap<TraceId, OpenRun>,
    deadlines: Deadlines,
    /// Traces seen before that are not open → the records holding their spans or log records.
    index: TraceIndex,
    /// When the index last moved old entries to disk.
    last_spill: Instant,
    /// When the shard last started writing its checkpoint (in the past at start, so the first
    /// spill does).
    last_checkpoint: Instant,
    /// The checkpoint being written, if any.
    checkpoint_job: Option<std::thread::JoinHandle<()>>,
    /// Where this shard publishes the lowest record its open runs hold (for retention).
    floor: Arc<RetentionFloor>,
    /// Batches taken since the last publication: held against retention until then.
    held: Vec<Arc<PendingRecord>>,
    /// The highest sequence number the startup scan read. The listeners accept (and the store
    /// commits) batches while the scan runs, so a batch can be both in the scan and in the
    /// queue; a queued batch at or below this mark was already applied by the scan.
    recovered_through: Option<u64>,
}

impl RunManager {
    pub fn new(
        cfg: RunManagerConfig,
        store: Store,
        index_db: Arc<TraceIndexDb>,
        floor: Arc<RetentionFloor>,
        rules: Arc<MappingRules>,
        metrics: Arc<ReceiverMetrics>,
    ) -> Self {
        RunManager {
            floor,
            held: Vec::new(),
            index: TraceIndex::new(index_db, Arc::clone(&metrics)),
            last_spill: Instant::now(),
            last_checkpoint: Instant::now()
                .checked_sub(CHECKPOINT_EVERY)
                .unwrap_or_else(Instant::now),
            checkpoint_job: None,
            cfg,
            reader: store.range_reader(),
            store,
            rules,
            metrics,
            open: HashMap::new(),
            deadlines: Deadlines::default(),
            recovered_through: None,
        }
    }

    /// Runs until every sender is gone: recovery first, then batches and ticks. Open runs are
    /// not finalized at exit; their spans are in the raw store and the next start re-opens them.
    pub fn run(mut self, mut rx: mpsc::Receiver<RunMsg>) {
        let summary = self.recover();
        tracing::info!(
            shard = self.cfg.shard.index,
            scanned_from = summary.scanned_from,
            records = summary.records,
            traces = summary.traces,
            reopened = summary.reopened,
            bad_records = summary.bad_records,
            "raw store scanned"
        );
        self.publish_floor();
        while let Some(msg) = rx.blocking_recv() {
            let now = Instant::now();
            match msg {
                RunMsg::Spans { seq, traces, hold } => {
                    self.on_spans(seq, traces, now);
                    self.held.push(hold);
                }
                RunMsg::Logs { seq, traces, hold } => {
                    self.on_logs(seq, traces, now);
                    self.held.push(hold);
                }
                RunMsg::Tick => {
                    self.tick(now);
                    continue;
                }
                RunMsg::Stop => break,
            }
            self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.finalize_some(Instant::now(), FINALIZE_PER_BATCH);
        }
        // Every index entry to disk and a last checkpoint, so the next start scans only what is
        // still open.
        self.finish_checkpoint();
        let now = Instant::now();
        self.last_checkpoint = now.checked_sub(CHECKPOINT_EVERY).unwrap_or(now);
        self.spill_index_older_than(now, Duration::ZERO);
        self.finish_checkpoint();
        tracing::info!(
            shard = self.cfg.shard.index,
            open_runs = self.open.len(),
            "run manager stopped; open runs resume at the next start"
        );
    }

    /// Whether the startup scan already applied record `seq` (it was also queued).
    fn already_applied(&self, seq: u64) -> bool {
        self.recovered_through.is_some_and(|through| seq <= through)
    }

    /// The open run of `trace` to add to: the open one, else a finalized (or log-only) trace
    /// re-opened from the raw store, else a new one. `None` when the trace's earlier records
    /// were dropped by retention: its run on disk stays as it is (the new records stay in raw).
    fn run_for(&mut self, trace: TraceId, now: Instant) -> Option<(OpenRun, Origin)> {
        if let Some(run) = self.open.remove(&trace) {
            return Some((run, Origin::Open));
        }
        let found = self.index.take(&trace).unwrap_or_else(|e| {
            // The run is rebuilt from this batch alone; the startup scan finds it incomplete
            // against raw and rebuilds it whole.
            tracing::error!(trace_id = %hex::encode(trace), error = %e, "trace index lookup failed");
            None
        });
        match found {
            Some(records) => match self.load_from_raw(&trace, &records.seqs, now) {
                Some(run) => Some((
                    run,
                    Origin::Reopened {
                        had_spans: records.has_spans,
                    },
                )),
                None => {
                    self.index.insert(trace, records, now);
                    None
                }
            },
            None => Some((OpenRun::new(now), Origin::New)),
        }
    }

    /// Counts and logs records of `trace` that arrived after retention dropped its earlier ones,
    /// and gives back the open-run slot the ack path reserved for it.
    fn past_retention(&self, trace: &TraceId, seq: u64, items: usize) {
        ReceiverMetrics::add(&self.metrics.late_records_past_retention, items as u64);
        tracing::warn!(
            trace_id = %hex::encode(trace),
            seq,
            items,
            "late spans or log records for a run whose earlier raw records retention dropped: \
             kept in raw, the run on disk is left as it is"
        );
        self.release_slot();
    }

    /// Puts `run`, after a batch's additions, back as open; or, when a re-opened trace got only
    /// duplicates, back into the index. Keeps the open-run slots exact: the ack path reserved one
    /// for every trace of the batch, and only a trace that opens a run keeps it.
    fn settle(&mut self, trace: TraceId, mut run: OpenRun, added: Added, now: Instant) {
        let Added {
            origin,
            new,
            held_before,
        } = added;
        match origin {
            Origin::Open => self.release_slot(),
            Origin::Reopened { had_spans } if new == 0 => {
                let records = TraceRecords {
                    has_spans: had_spans,
                    seqs: run.seqs,
                };
                self.index.insert(trace, records, now);
                self.release_slot();
                return;
            }
            Origin::Reopened { had_spans } => {
                if had_spans {
                    ReceiverMetrics::add(&self.metrics.runs_rematerialized, 1);
                }
                if run.root_at.is_some() {
                    run.root_at = Some(now);
                }
            }
            Origin::New => {}
        }
        run.last_activity = now;
        self.deadlines.touch(trace, now);
        self.held_bytes_changed(held_before, run.held_bytes());
        self.open.insert(trace, run);
    }

    /// Moves the `open_run_bytes` gauge by one run's change.
    fn held_bytes_changed(&self, before: usize, after: usize) {
        let gauge = &self.metrics.open_run_bytes;
        if after >= before {
            gauge.fetch_add((after - before) as u64, Ordering::Relaxed);
        } else {
            let less = (before - after) as u64;
            let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(less))
            });
        }
    }

    /// Adds the spans of trace record `seq` (as located by the ack path) to their runs.
    pub fn on_spans(&mut self, seq: u64, traces: Vec<(TraceId, Vec<EncodedSpan>)>, now: Instant) {
        if self.already_applied(seq) {
            tracing::debug!(seq, "batch already applied by the startup scan");
            self.release_slots(traces.len());
            return;
        }
        for (trace, spans) in traces {
            let Some((mut run, origin)) = self.run_for(trace, now) else {
                self.past_retention(&trace, seq, spans.len());
                continue;
            };
            let held_before = run_bytes_before(&run, origin);
            run.saw(seq);
            let mut new = 0;
            for span in spans {
                if run.add_span(seq, span, now) {
                    new += 1;
                } else {
                    ReceiverMetrics::add(&self.metrics.spans_duplicate, 1);
                }
            }
            let added = Added {
                origin,
                new,
                held_before,
            };
            self.settle(trace, run, added, now);
        }
    }

    /// Adds the log records of logs record `seq` to the open runs of their traces, opening one
    /// when needed. Records without a trace id were counted at ingest and never get here.
    pub fn on_logs(&mut self, seq: u64, traces: Vec<(TraceId, Vec<LogEntry>)>, now: Instant) {
        if self.already_applied(seq) {
            tracing::debug!(seq, "logs batch already applied by the startup scan");
            self.release_slots(traces.len());
            return;
        }
        for (trace, entries) in traces {
            let Some((mut run, origin)) = self.run_for(trace, now) else {
                self.past_retention(&trace, seq, entries.len());
                continue;
            };
            let held_before = run_bytes_before(&run, origin);
            run.saw(seq);
            let mut new = 0;
            for entry in &entries {
                if run.add_log(entry) {
                    new += 1;
                } else {
                    ReceiverMetrics::add(&self.metrics.log_records_duplicate, 1);
                }
            }
            let added = Added {
                origin,
                new,
                held_before,
            };
            self.settle(trace, run, added, now);
        }
    }

    /// Finalizes every open run whose deadline passed (a trace with log records only is
    /// dropped from memory instead: no run without spans).
    pub fn finalize_due(&mut self, now: Instant) {
        self.finalize_some(now, usize::MAX);
    }

    /// What a tick does: finalizes every due run, publishes the retention floor, and moves old
    /// index entries to disk (at most once a second).
    pub fn tick(&mut self, now: Instant) {
        self.finalize_some(now, usize::MAX);
        self.publish_floor();
        if now.saturating_duration_since(self.last_spill) >= SPILL_EVERY {
            self.spill_index(now);
        }
    }

    /// Finalizes up to `budget` due runs, oldest deadline first.
    fn finalize_some(&mut self, now: Instant, budget: usize) {
        let open = &self.open;
        let due = self.deadlines.due(
            now,
            self.cfg.grace_period,
            self.cfg.idle_timeout,
            budget,
            |trace, at| match open.get(trace) {
                Some(run) if run.last_activity == at && run.root_at.is_some() => Candidate::Due,
                Some(run) if run.last_activity == at => Candidate::NoRoot,
                _ => Candidate::Stale,
            },
        );
        for trace in due {
            let Some(mut run) = self.open.remove(&trace) else {
                continue;
            };
            // What the run holds was counted when it was built; `settle` counts it again if
            // a later batch re-opens it.
            if run.spans.is_empty() {
                self.drop_log_only(&trace, &run);
            } else if !self.finalize(&trace, &run) {
                // Disk full or similar: keep the run and try again after another quiet
                // period, instead of leaving it missing on disk until the next restart.
                run.last_activity = now;
                self.deadlines.touch(trace, now);
                self.open.insert(trace, run);
                continue;
            }
            self.held_bytes_changed(run.held_bytes(), 0);
            let records = TraceRecords {
                has_spans: !run.spans.is_empty(),
                seqs: run.seqs,
            };
            self.index.insert(trace, records, now);
            self.release_slot();
        }
    }

    /// Publishes the lowest raw record this shard's open runs hold, then lets go of the batches
    /// taken since the last publication (the floor covers what they added).
    fn publish_floor(&mut self) {
        let lowest = self
            .open
            .values()
            .filter_map(|run| run.seqs.first().copied())
            .min()
            .unwrap_or(u64::MAX);
        self.floor.publish(self.cfg.shard.index, lowest);
        self.held.clear();
    }

    /// Open runs of this shard.
    pub fn open_runs(&self) -> usize {
        self.open.len()
    }

    /// Moves index entries older than the late window to disk (logged, and retried at the next
    /// spill, when the disk write fails).
    fn spill_index(&mut self, now: Instant) {
        self.spill_index_older_than(now, self.cfg.late_window);
    }

    /// [`RunManager::spill_index`] for the entries older than `window`.
    fn spill_index_older_than(&mut self, now: Instant, window: Duration) {
        self.move_index_to_disk(now, window);
        if now.saturating_duration_since(self.last_checkpoint) >= CHECKPOINT_EVERY {
            self.start_checkpoint(now);
        }
    }

    /// Moves index entries older than `window` to disk (a non-durable commit), no checkpoint.
    fn move_index_to_disk(&mut self, now: Instant, window: Duration) {
        self.last_spill = now;
        if let Err(e) = self.index.spill_older_than(now, window, |_, _| None) {
            tracing::error!(error = %e, "trace index entries could not be moved to disk; kept in memory");
        }
    }

    /// The checkpoint as of now: no record below it holds a trace of this shard that is open, in
    /// the in-memory index, or not yet taken. The store's next seq is read before the pending
    /// batches, so a batch appended in between is seen as pending.
    fn checkpoint_seq(&self) -> u64 {
        let next_seq = self.store.stats().last_seq.map_or(0, |last| last + 1);
        let pending = self.floor.pending_min();
        let open = self
            .open
            .values()
            .filter_map(|run| run.seqs.first().copied())
            .min();
        let in_memory = self.index.lowest_staying(&[]);
        [Some(next_seq), pending, open, in_memory]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_seq)
    }

    /// Writes the checkpoint on a background thread: a `syncfs` first (the runs below it are
    /// written rename-only and must be durable before the checkpoint passes them), then one
    /// durable index commit. The flush can take seconds on a busy disk; the shard keeps
    /// finalizing meanwhile. One at a time: while one is running, the next spill tries again.
    fn start_checkpoint(&mut self, now: Instant) {
        if self
            .checkpoint_job
            .as_ref()
            .is_some_and(|job| !job.is_finished())
        {
            return;
        }
        self.finish_checkpoint();
        self.last_checkpoint = now;
        let job = CheckpointJob {
            seq: self.checkpoint_seq(),
            shard: self.cfg.shard,
            runs_dir: self.cfg.runs_dir.clone(),
            db: Arc::clone(self.index.db()),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("traj-ckpt-{}", self.cfg.shard.index))
            .spawn(move || job.write());
        match spawned {
            Ok(handle) => self.checkpoint_job = Some(handle),
            Err(e) => tracing::warn!(error = %e, "checkpoint thread not started; retried later"),
        }
    }

    /// Waits for a running checkpoint to be written.
    fn finish_checkpoint(&mut self) {
        if let Some(job) = self.checkpoint_job.take() {
            let _ = job.join();
        }
    }

    /// Frees one open-run slot (a run was finalized, or a batch's trace did not open one).
    fn release_slot(&self) {
        self.release_slots(1);
    }

    fn release_slots(&self, n: usize) {
        let n = n as u64;
        // Saturating: the startup scan's re-opened runs are counted by the scan itself.
        let _ = self
            .metrics
            .open_runs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Forgets a trace that has log records but no span (its raw records stay).
    fn drop_log_only(&self, trace: &TraceId, run: &OpenRun) {
        ReceiverMetrics::add(&self.metrics.log_traces_dropped, 1);
        tracing::warn!(
            trace_id = %hex::encode(trace),
            log_records = run.logs.len(),
            idle_timeout = ?self.cfg.idle_timeout,
            "log records of a trace without spans dropped from memory after the idle timeout; \
             they stay in the raw store and join the run if its spans arrive"
        );
    }

    /// Reads back, decodes, assembles (with its log records) and writes one run; `false` when
    /// a read or the write failed (counted and logged).
    fn finalize(&mut self, trace: &TraceId, run: &OpenRun) -> bool {
        let run_id = hex::encode(trace);
        let spans = match self.read_spans(&run.spans) {
            Ok(spans) => spans,
            Err(e) => {
                ReceiverMetrics::add(&self.metrics.run_write_failures, 1);
                tracing::error!(run_id, error = %e, "held spans could not be read back; will retry");
                return false;
            }
        };
        let logs = decode_logs(run);
        let assembled = assemble_with_logs(*trace, &spans, &logs, &self.rules);
        match traj_runs::write_run_with(
            &self.cfg.runs_dir,
            &assembled.session,
            &assembled.events,
            self.cfg.durability,
        ) {
            Ok(dir) => {
                ReceiverMetrics::add(&self.metrics.runs_finalized, 1);
                ReceiverMetrics::add(&self.metrics.log_records_joined, logs.len() as u64);
                tracing::debug!(
                    run_id,
                    spans = run.spans.len(),
                    log_records = logs.len(),
                    events = assembled.events.len(),
                    root = run.root_at.is_some(),
                    dir = %dir.display(),
                    "run finalized"
                );
                true
            }
            Err(e) => {
                ReceiverMetrics::add(&self.metrics.run_write_failures, 1);
                tracing::error!(run_id, error = %e, "run could not be written; will retry");
                false
            }
        }
    }

    /// The held spans, read back from the raw store (neighbours in one record with one read)
    /// and decoded. A span whose bytes do not decode to the id it was held under is logged and
    /// skipped (unreachable unless the store was changed under us).
    fn read_spans(&mut self, held: &[HeldSpan]) -> Result<Vec<SpanRecord>, traj_store::StoreError> {
        let mut out = Vec::with_capacity(held.len());
        let mut i = 0;
        while i < held.len() {
            let first = &held[i];
            let mut end = first.range.end;
            let mut j = i + 1;
            while let Some(next) = held.get(j) {
                if next.seq != first.seq
                    || next.range.start < end
                    || next.range.start - end > COALESCE_GAP
                {
                    break;
                }
                end = next.range.end;
                j += 1;
            }
            let buf = self.reader.read(first.seq, first.range.start..end)?;
            for h in &held[i..j] {
                let local = h.range.start - first.range.start..h.range.end - first.range.start;
                let Some(bytes) = buf.get(local) else {
                    continue;
                };
                match Span::decode(bytes) {
                    Ok(span) if ids::span_id(&span.span_id) == Some(h.span_id) => {
                        out.push(SpanRecord {
                            span,
                            service_name: Arc::clone(&h.service_name),
                        })
                    }
                    _ => tracing::error!(
                        seq = h.seq,
                        range = ?h.range,
                        "held span does not read back as the span it was; skipped"
                    ),
                }
            }
            i = j;
        }
        Ok(out)
    }

    /// Rebuilds a trace from the raw records `seqs` (its spans located, its log records held);
    /// `None` when retention dropped one of them (a rebuilt run would lack its spans).
    fn load_from_raw(&mut self, trace: &TraceId, seqs: &[u64], now: Instant) -> Option<OpenRun> {
        let mut run = OpenRun::new(now);
        for &seq in seqs {
            let record = match self.store.read_record(seq) {
                Ok(r) => r,
                Err(traj_store::StoreError::NotFound { .. }) => return None,
                Err(e) => {
                    tracing::error!(seq, error = %e, "raw record unreadable");
                    continue;
                }
            };
            run.saw(seq);
            match record.kind {
                RecordKind::Traces => match split_encoded_by_trace(&record.payload) {
                    Ok(split) => {
                        for (t, spans) in split.traces {
                            if &t == trace {
                                for span in spans {
                                    run.add_span(seq, span, now);
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(seq, error = %e, "raw record does not parse"),
                },
                RecordKind::Logs => match ExportLogsServiceRequest::decode(record.payload.as_ref())
                {
                    Ok(req) => {
                        for (t, entries) in split_logs_by_trace(req).traces {
                            if &t == trace {
                                for entry in &entries {
                                    run.add_log(entry);
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(seq, error = %e, "raw logs record does not decode"),
                },
            }
        }
        Some(run)
    }
}

/// What `run` held before a batch was added, as counted in `open_run_bytes`: only a run that was
/// open is counted there.
fn run_bytes_before(run: &OpenRun, origin: Origin) -> usize {
    match origin {
        Origin::Open => run.held_bytes(),
        Origin::Reopened { .. } | Origin::New => 0,
    }
}

/// A checkpoint to write off the shard's thread.
struct CheckpointJob {
    seq: u64,
    shard: Shard,
    runs_dir: PathBuf,
    db: Arc<TraceIndexDb>,
}

impl CheckpointJob {
    fn write(self) {
        if let Err(e) = traj_runs::sync_written_runs(&self.runs_dir) {
            tracing::warn!(error = %e, "runs not synced; checkpoint not advanced");
            return;
        }
        if let Err(e) = self
            .db
            .write_checkpoint(self.shard.index, self.shard.count, self.seq)
        {
            tracing::error!(error = %e, "checkpoint not written; retried later");
        }
    }
}

impl Drop for RunManager {
    /// A checkpoint being written is finished first (it holds the index open).
    fn drop(&mut self) {
        self.finish_checkpoint();
    }
}

/// How often deadlines are checked: a tenth of the shorter timer, between 10 ms and 1 s.
pub fn tick_interval(cfg: &RunManagerConfig) -> Duration {
    (cfg.grace_period.min(cfg.idle_timeout) / 10)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The held log records of `run`, decoded for assembly (bytes already checked when they were
/// received; a failure is unreachable in practice, and is logged and skipped rather than fatal).
fn decode_logs(run: &OpenRun) -> Vec<LogEntry> {
    run.logs
        .iter()
        .filter_map(|h| match LogRecord::decode(h.encoded.as_slice()) {
            Ok(record) => Some(LogEntry {
                record,
                service_name: Arc::clone(&h.service_name),
                scope_name: Arc::clone(&h.scope_name),
            }),
            Err(e) => {
                tracing::error!(error = %e, "held log record does not decode; skipped");
                None
            }
        })
        .collect()
}
