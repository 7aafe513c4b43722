//! The run manager: holds open runs (trace id → spans and OTLP log records) off the ack path,
//! dedups both, and finalizes a run (assemble with its logs + atomic write of `runs/<run_id>/`)
//! once its root has ended and the grace period passed, or after the idle timeout without a
//! root. Late spans and late log records re-open a finalized run from the raw store; at startup a
//! scan of the raw store (trace and logs records) re-opens runs that are missing or incomplete on
//! disk. A trace that has log records but no span is dropped from memory after the idle timeout
//! (its records stay in raw and join the run if spans arrive later).
//!
//! It runs on its own OS thread (assembly, store reads and file writes are blocking work) fed by a
//! bounded channel; ingest reserves a slot before appending to the store, so the queue never grows
//! without bound.

use crate::receiver_metrics::ReceiverMetrics;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use traj_assemble::{
    assemble_with_logs, split_by_trace, split_encoded_by_trace, split_logs_by_trace, EncodedSpan,
    LogEntry, MappingRules, SpanRecord,
};
use traj_schema::ids::{self, SpanId, TraceId};
use traj_store::{Record, RecordKind, Store};

/// What ingest sends to the run manager.
#[derive(Debug)]
pub enum RunMsg {
    /// A batch durably stored under `seq` (only valid spans or log records).
    Batch {
        seq: u64,
        /// What `bytes` encodes: an `ExportTraceServiceRequest` (split lazily, spans held
        /// encoded) or an `ExportLogsServiceRequest`.
        kind: RecordKind,
        /// The batch as stored.
        bytes: bytes::Bytes,
        /// The batch's share of the in-flight cap, released once the manager took it.
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// Time to check the finalization deadlines.
    Tick,
    /// Stop now (shutdown); open runs are left for the next start.
    Stop,
}

/// Timers and paths of the run manager.
#[derive(Debug, Clone)]
pub struct RunManagerConfig {
    pub runs_dir: PathBuf,
    pub grace_period: Duration,
    pub idle_timeout: Duration,
    pub durability: traj_runs::Durability,
}

/// What the startup scan of the raw store found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    /// Raw records scanned (trace and logs records).
    pub records: u64,
    /// Traces with at least one span.
    pub traces: u64,
    /// Traces whose run directory was missing or held fewer spans (or, when the run records it,
    /// fewer log records) than raw storage.
    pub reopened: u64,
    /// Raw records that could not be read or decoded (skipped, logged).
    pub bad_records: u64,
    /// Log records with a trace id found in logs records.
    pub log_records: u64,
    /// Log records without a trace id (they never join a run).
    pub untraced_log_records: u64,
    /// Traces that have log records but no span: indexed, not re-opened.
    pub log_only_traces: u64,
}

/// A span held by an open run, protobuf-encoded: a decoded `Span` costs ~3-4x its encoding in
/// heap (one allocation per attribute key and value), and open runs are most of the receiver's
/// memory under load (`docs/benchmarks.md`). Decoded again once, when the run is finalized.
struct HeldSpan {
    encoded: Vec<u8>,
    service_name: Arc<str>,
}

/// A log record held by an open run, protobuf-encoded like [`HeldSpan`], with its resource's
/// service name and its scope name.
struct HeldLog {
    encoded: Vec<u8>,
    service_name: Arc<str>,
    scope_name: Arc<str>,
}

impl HeldLog {
    fn new(entry: &LogEntry) -> Self {
        HeldLog {
            encoded: entry.record.encode_to_vec(),
            service_name: Arc::clone(&entry.service_name),
            scope_name: Arc::clone(&entry.scope_name),
        }
    }

    /// Hash of everything that makes two held records the same record.
    fn key(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.encoded.hash(&mut h);
        self.service_name.hash(&mut h);
        self.scope_name.hash(&mut h);
        h.finish()
    }

    fn same(&self, other: &HeldLog) -> bool {
        self.encoded == other.encoded
            && self.service_name == other.service_name
            && self.scope_name == other.scope_name
    }
}

struct OpenRun {
    spans: Vec<HeldSpan>,
    ids: HashSet<SpanId>,
    /// Log records of the trace, in arrival order, each once.
    logs: Vec<HeldLog>,
    /// [`HeldLog::key`] → indices into `logs` (a hit is confirmed byte by byte). Log records
    /// have no id; an identical record (same encoding, resource service and scope) is a
    /// duplicate, as a client retry after a lost acknowledgement produces.
    log_keys: HashMap<u64, Vec<usize>>,
    /// When the root span (no parent) arrived.
    root_at: Option<Instant>,
    last_activity: Instant,
}

impl OpenRun {
    fn new(now: Instant) -> Self {
        OpenRun {
            spans: Vec::new(),
            ids: HashSet::new(),
            logs: Vec::new(),
            log_keys: HashMap::new(),
            root_at: None,
            last_activity: now,
        }
    }

    /// Adds a log record unless an identical one is already held; returns whether it was new.
    fn add_log(&mut self, entry: &LogEntry) -> bool {
        let held = HeldLog::new(entry);
        let logs = &self.logs;
        let slot = self.log_keys.entry(held.key()).or_default();
        if slot
            .iter()
            .any(|&i| logs.get(i).is_some_and(|h| h.same(&held)))
        {
            return false;
        }
        slot.push(self.logs.len());
        self.logs.push(held);
        true
    }

    /// The held log records, decoded for assembly.
    fn log_entries(&self) -> Vec<LogEntry> {
        self.logs
            .iter()
            .filter_map(|h| {
                decode_held::<LogRecord>(&h.encoded, "log record").map(|record| LogEntry {
                    record,
                    service_name: Arc::clone(&h.service_name),
                    scope_name: Arc::clone(&h.scope_name),
                })
            })
            .collect()
    }

    /// Adds a span unless its id is already held; returns whether it was new.
    fn add(&mut self, rec: SpanRecord, now: Instant) -> bool {
        let Some(id) = ids::span_id(&rec.span.span_id) else {
            return false;
        };
        if !self.ids.insert(id) {
            return false;
        }
        if ids::is_root(&rec.span.parent_span_id) && self.root_at.is_none() {
            self.root_at = Some(now);
        }
        self.spans.push(HeldSpan {
            encoded: rec.span.encode_to_vec(),
            service_name: rec.service_name,
        });
        true
    }

    /// [`OpenRun::add`] for a span still encoded in `batch` (copied out, not decoded).
    fn add_encoded(&mut self, batch: &[u8], span: EncodedSpan, now: Instant) -> bool {
        if !self.ids.insert(span.span_id) {
            return false;
        }
        if span.is_root && self.root_at.is_none() {
            self.root_at = Some(now);
        }
        self.spans.push(HeldSpan {
            encoded: batch[span.range].to_vec(),
            service_name: span.service_name,
        });
        true
    }

    /// The held spans, decoded for assembly.
    fn records(&self) -> Vec<SpanRecord> {
        self.spans
            .iter()
            .filter_map(|h| {
                decode_held::<Span>(&h.encoded, "span").map(|span| SpanRecord {
                    span,
                    service_name: Arc::clone(&h.service_name),
                })
            })
            .collect()
    }

    fn due(&self, now: Instant, cfg: &RunManagerConfig) -> bool {
        let quiet = now.saturating_duration_since(self.last_activity);
        match self.root_at {
            Some(_) => quiet >= cfg.grace_period,
            None => quiet >= cfg.idle_timeout,
        }
    }
}

/// The raw records of one trace.
#[derive(Debug, Default)]
struct TraceRecords {
    /// Sequence numbers of the records holding its spans or log records, ascending.
    seqs: Vec<u64>,
    /// Whether any of them holds a span: only then was (or is) there a run.
    has_spans: bool,
}

impl TraceRecords {
    fn push(&mut self, seq: u64) {
        if self.seqs.last() != Some(&seq) {
            self.seqs.push(seq);
        }
    }
}

/// A decoded raw record.
enum RawBatch {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

fn decode_raw(kind: RecordKind, bytes: &[u8]) -> Result<RawBatch, prost::DecodeError> {
    Ok(match kind {
        RecordKind::Traces => RawBatch::Traces(ExportTraceServiceRequest::decode(bytes)?),
        RecordKind::Logs => RawBatch::Logs(ExportLogsServiceRequest::decode(bytes)?),
    })
}

/// The state owned by the run-manager thread.
pub struct RunManager {
    cfg: RunManagerConfig,
    store: Store,
    rules: Arc<MappingRules>,
    metrics: Arc<ReceiverMetrics>,
    open: HashMap<TraceId, OpenRun>,
    /// Every trace in the raw store → the records holding its spans or log records.
    index: HashMap<TraceId, TraceRecords>,
    /// The highest sequence number the startup scan read. The listeners accept (and the store
    /// commits) batches while the scan runs, so a batch can be both in the scan and in the
    /// queue; a queued batch at or below this mark was already applied by the scan.
    recovered_through: Option<u64>,
}

impl RunManager {
    pub fn new(
        cfg: RunManagerConfig,
        store: Store,
        rules: Arc<MappingRules>,
        metrics: Arc<ReceiverMetrics>,
    ) -> Self {
        RunManager {
            cfg,
            store,
            rules,
            metrics,
            open: HashMap::new(),
            index: HashMap::new(),
            recovered_through: None,
        }
    }

    /// Runs until every sender is gone: recovery first, then batches and ticks. Open runs are
    /// not finalized at exit; their spans are in the raw store and the next start re-opens them.
    pub fn run(mut self, mut rx: mpsc::Receiver<RunMsg>) {
        let summary = self.recover();
        tracing::info!(
            records = summary.records,
            traces = summary.traces,
            reopened = summary.reopened,
            bad_records = summary.bad_records,
            "raw store scanned"
        );
        let mut last_check = Instant::now();
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                RunMsg::Batch {
                    seq,
                    kind,
                    bytes,
                    permit,
                } => {
                    match kind {
                        RecordKind::Traces => self.on_encoded_batch(seq, &bytes, Instant::now()),
                        RecordKind::Logs => self.on_logs_batch(seq, &bytes, Instant::now()),
                    }
                    // Its in-flight share is free once the queue no longer counts it.
                    drop(permit);
                    self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                }
                RunMsg::Tick => {}
                RunMsg::Stop => break,
            }
            let now = Instant::now();
            if now.duration_since(last_check) >= tick_interval(&self.cfg) {
                self.finalize_due(now);
                last_check = now;
            }
        }
        tracing::info!(
            open_runs = self.open.len(),
            "run manager stopped; open runs resume at the next start"
        );
    }

    /// Adds the spans of one stored batch, as stored (encoded): spans are located by a lazy walk
    /// of the wire format and held encoded, so no attribute is decoded until assembly.
    pub fn on_encoded_batch(&mut self, seq: u64, bytes: &[u8], now: Instant) {
        if self.recovered_through.is_some_and(|through| seq <= through) {
            tracing::debug!(seq, "batch already applied by the startup scan");
            return;
        }
        let split = match split_encoded_by_trace(bytes) {
            Ok(s) => s,
            Err(e) => {
                // Unreachable in practice: ingest encoded these bytes itself.
                tracing::error!(seq, error = %e, "stored batch does not parse; skipped");
                return;
            }
        };
        for (trace, spans) in split.traces {
            let records = self.index.entry(trace).or_default();
            let known_before = !records.seqs.is_empty();
            let had_run = records.has_spans;
            records.has_spans = true;
            records.push(seq);
            if !self.open.contains_key(&trace) && known_before {
                // Late span for a finalized run (or the first spans of a trace whose log records
                // were dropped from memory): rebuild it from the raw store, then add these.
                let mut run = self.load_from_raw(&trace, Some(seq), now);
                let mut new = 0;
                for span in spans {
                    if run.add_encoded(bytes, span, now) {
                        new += 1;
                    } else {
                        ReceiverMetrics::add(&self.metrics.spans_duplicate, 1);
                    }
                }
                if new > 0 {
                    if had_run {
                        ReceiverMetrics::add(&self.metrics.runs_rematerialized, 1);
                    }
                    if run.root_at.is_some() {
                        run.root_at = Some(now);
                    }
                    run.last_activity = now;
                    self.open.insert(trace, run);
                }
                continue;
            }
            let run = self.open.entry(trace).or_insert_with(|| OpenRun::new(now));
            for span in spans {
                if !run.add_encoded(bytes, span, now) {
                    ReceiverMetrics::add(&self.metrics.spans_duplicate, 1);
                }
            }
            run.last_activity = now;
        }
        self.metrics
            .open_runs
            .store(self.open.len() as u64, Ordering::Relaxed);
    }

    /// Adds the log records of one stored logs batch (an encoded `ExportLogsServiceRequest`)
    /// to the open runs of their traces, opening one when needed. A log record for a finalized
    /// run re-opens it from the raw store, like a late span. Records without a trace id were
    /// counted at ingest and are skipped here.
    pub fn on_logs_batch(&mut self, seq: u64, bytes: &[u8], now: Instant) {
        if self.recovered_through.is_some_and(|through| seq <= through) {
            tracing::debug!(seq, "logs batch already applied by the startup scan");
            return;
        }
        let req = match ExportLogsServiceRequest::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                // Unreachable in practice: ingest decoded these bytes itself.
                tracing::error!(seq, error = %e, "stored logs batch does not decode; skipped");
                return;
            }
        };
        for (trace, entries) in split_logs_by_trace(req).traces {
            let records = self.index.entry(trace).or_default();
            let known_before = !records.seqs.is_empty();
            let had_run = records.has_spans;
            records.push(seq);
            if !self.open.contains_key(&trace) && known_before {
                // A late log record: rebuild the trace from the raw store, then add these.
                let mut run = self.load_from_raw(&trace, Some(seq), now);
                let new = self.add_logs(&mut run, &entries);
                if new > 0 {
                    if had_run {
                        ReceiverMetrics::add(&self.metrics.runs_rematerialized, 1);
                    }
                    if run.root_at.is_some() {
                        run.root_at = Some(now);
                    }
                    run.last_activity = now;
                    self.open.insert(trace, run);
                }
                continue;
            }
            let mut run = self
                .open
                .remove(&trace)
                .unwrap_or_else(|| OpenRun::new(now));
            self.add_logs(&mut run, &entries);
            run.last_activity = now;
            self.open.insert(trace, run);
        }
        self.metrics
            .open_runs
            .store(self.open.len() as u64, Ordering::Relaxed);
    }

    /// Adds log records to `run`, counting duplicates; returns how many were new.
    fn add_logs(&self, run: &mut OpenRun, entries: &[LogEntry]) -> u64 {
        let mut new = 0;
        for entry in entries {
            if run.add_log(entry) {
                new += 1;
            } else {
                ReceiverMetrics::add(&self.metrics.log_records_duplicate, 1);
            }
        }
        new
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

    /// Finalizes every open run whose deadline passed (a trace with log records only is
    /// dropped from memory instead: no run without spans).
    pub fn finalize_due(&mut self, now: Instant) {
        let due: Vec<TraceId> = self
            .open
            .iter()
            .filter(|(_, r)| r.due(now, &self.cfg))
            .map(|(t, _)| *t)
            .collect();
        for trace in due {
            if let Some(mut run) = self.open.remove(&trace) {
                if run.spans.is_empty() {
                    self.drop_log_only(&trace, &run);
                } else if !self.finalize(&trace, &run) {
                    // Disk full or similar: keep the run and try again after another quiet
                    // period, instead of leaving it missing on disk until the next restart.
                    run.last_activity = now;
                    self.open.insert(trace, run);
                }
                self.metrics
                    .open_runs
                    .store(self.open.len() as u64, Ordering::Relaxed);
            }
        }
    }

    pub fn open_runs(&self) -> usize {
        self.open.len()
    }

    /// Assembles (with its log records) and writes one run; `false` when the write failed
    /// (counted and logged).
    fn finalize(&self, trace: &TraceId, run: &OpenRun) -> bool {
        let logs = run.log_entries();
        let assembled = assemble_with_logs(*trace, &run.records(), &logs, &self.rules);
        let run_id = hex::encode(trace);
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

    /// Rebuilds a run from every raw record holding its spans or log records (skipping
    /// `except`, the batch being added now).
    fn load_from_raw(&self, trace: &TraceId, except: Option<u64>, now: Instant) -> OpenRun {
        let mut run = OpenRun::new(now);
        let Some(records) = self.index.get(trace) else {
            return run;
        };
        for &seq in &records.seqs {
            if Some(seq) == except {
                continue;
            }
            match self.read_record(seq) {
                Some(RawBatch::Traces(req)) => {
                    for (t, spans) in split_by_trace(req).traces {
                        if &t == trace {
                            for rec in spans {
                                run.add(rec, now);
                            }
                        }
                    }
                }
                Some(RawBatch::Logs(req)) => {
                    for (t, entries) in split_logs_by_trace(req).traces {
                        if &t == trace {
                            for entry in &entries {
                                run.add_log(entry);
                            }
                        }
                    }
                }
                None => {}
            }
        }
        run
    }

    fn read_record(&self, seq: u64) -> Option<RawBatch> {
        let record = match self.store.read_record(seq) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(seq, error = %e, "raw record unreadable");
                return None;
            }
        };
        match decode_raw(record.kind, &record.payload) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(seq, kind = %record.kind, error = %e, "raw record does not decode");
                None
            }
        }
    }

    /// Scans the raw store (trace and logs records): builds the trace → records index and
    /// re-opens every trace with spans whose run directory is missing or holds fewer spans than
    /// raw storage has, or, when the run records `lineage.log_records`, fewer log records.
    /// Traces with log records only are indexed but not re-opened.
    pub fn recover(&mut self) -> RecoverySummary {
        let mut summary = RecoverySummary::default();
        let mut span_ids: HashMap<TraceId, HashSet<SpanId>> = HashMap::new();
        let mut log_keys: HashMap<TraceId, HashSet<u64>> = HashMap::new();
        for item in self.store.scan(0) {
            let Record { seq, kind, payload } = match item {
                Ok(x) => x,
                Err(e) => {
                    summary.bad_records += 1;
                    tracing::error!(error = %e, "raw record unreadable during scan");
                    continue;
                }
            };
            summary.records += 1;
            self.recovered_through = Some(self.recovered_through.map_or(seq, |t| t.max(seq)));
            match decode_raw(kind, &payload) {
                Err(e) => {
                    summary.bad_records += 1;
                    tracing::error!(seq, %kind, error = %e, "raw record does not decode");
                }
                Ok(RawBatch::Traces(req)) => {
                    for (trace, spans) in split_by_trace(req).traces {
                        let records = self.index.entry(trace).or_default();
                        records.push(seq);
                        records.has_spans = true;
                        let ids = span_ids.entry(trace).or_default();
                        for rec in spans {
                            if let Some(id) = ids::span_id(&rec.span.span_id) {
                                ids.insert(id);
                            }
                        }
                    }
                }
                Ok(RawBatch::Logs(req)) => {
                    let split = split_logs_by_trace(req);
                    summary.untraced_log_records += split.untraced;
                    for (trace, entries) in split.traces {
                        self.index.entry(trace).or_default().push(seq);
                        summary.log_records += entries.len() as u64;
                        let keys = log_keys.entry(trace).or_default();
                        for entry in &entries {
                            keys.insert(HeldLog::new(entry).key());
                        }
                    }
                }
            }
        }
        summary.traces = span_ids.len() as u64;
        summary.log_only_traces = log_keys
            .keys()
            .filter(|t| !span_ids.contains_key(*t))
            .count() as u64;
        let now = Instant::now();
        let mut traces: Vec<(TraceId, usize)> =
            span_ids.into_iter().map(|(t, s)| (t, s.len())).collect();
        traces.sort_unstable();
        for (trace, raw_spans) in traces {
            let raw_logs = log_keys.get(&trace).map_or(0, HashSet::len) as u64;
            let run_dir = traj_runs::run_path(&self.cfg.runs_dir, &hex::encode(trace));
            let complete = traj_runs::written_lineage(&run_dir).is_some_and(|d| {
                d.spans >= raw_spans as u64 && d.log_records.is_none_or(|n| n >= raw_logs)
            });
            if complete {
                continue;
            }
            let mut run = self.load_from_raw(&trace, None, now);
            if run.root_at.is_some() {
                run.root_at = Some(now);
            }
            self.open.insert(trace, run);
            summary.reopened += 1;
        }
        self.metrics
            .open_runs
            .store(self.open.len() as u64, Ordering::Relaxed);
        summary
    }
}

/// How often deadlines are checked: a tenth of the shorter timer, between 10 ms and 1 s.
pub fn tick_interval(cfg: &RunManagerConfig) -> Duration {
    (cfg.grace_period.min(cfg.idle_timeout) / 10)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Decodes a held span or log record (bytes already checked when they were received); a failure
/// is unreachable in practice, and is logged and skipped rather than fatal.
fn decode_held<M: Message + Default>(encoded: &[u8], what: &str) -> Option<M> {
    M::decode(encoded)
        .map_err(|e| tracing::error!(error = %e, "held {what} does not decode; skipped"))
        .ok()
}
