//! The run manager: holds open runs (trace id → spans) off the ack path, dedups spans, and
//! finalizes a run (assemble + atomic write of `runs/<run_id>/`) once its root has ended and the
//! grace period passed, or after the idle timeout without a root. Late spans re-open a finalized
//! run from the raw store; at startup a scan of the raw store re-opens runs that are missing or
//! incomplete on disk.
//!
//! It runs on its own OS thread (assembly, store reads and file writes are blocking work) fed by a
//! bounded channel; ingest reserves a slot before appending to the store, so the queue never grows
//! without bound.

use crate::receiver_metrics::ReceiverMetrics;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use traj_assemble::{
    assemble, split_by_trace, split_encoded_by_trace, EncodedSpan, MappingRules, SpanRecord,
};
use traj_store::Store;

type TraceId = [u8; 16];
type SpanId = [u8; 8];

/// What ingest sends to the run manager.
#[derive(Debug)]
pub enum RunMsg {
    /// A batch durably stored under `seq` (only valid spans).
    Batch {
        seq: u64,
        /// The batch as stored: an encoded `ExportTraceServiceRequest`, split lazily.
        bytes: bytes::Bytes,
        /// The batch's share of the spans-in-flight cap, released once the manager took it.
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
    pub records: u64,
    pub traces: u64,
    /// Traces whose run directory was missing or held fewer spans than raw storage.
    pub reopened: u64,
    /// Raw records that could not be read or decoded (skipped, logged).
    pub bad_records: u64,
}

/// A span held by an open run, protobuf-encoded: a decoded `Span` costs ~3-4x its encoding in
/// heap (one allocation per attribute key and value), and open runs are most of the receiver's
/// memory under load (`docs/benchmarks.md`). Decoded again once, when the run is finalized.
struct HeldSpan {
    encoded: Vec<u8>,
    service_name: Arc<str>,
}

struct OpenRun {
    spans: Vec<HeldSpan>,
    ids: HashSet<SpanId>,
    /// When the root span (no parent) arrived.
    root_at: Option<Instant>,
    last_activity: Instant,
}

impl OpenRun {
    fn new(now: Instant) -> Self {
        OpenRun {
            spans: Vec::new(),
            ids: HashSet::new(),
            root_at: None,
            last_activity: now,
        }
    }

    /// Adds a span unless its id is already held; returns whether it was new.
    fn add(&mut self, rec: SpanRecord, now: Instant) -> bool {
        let Some(id) = span_id(&rec.span.span_id) else {
            return false;
        };
        if !self.ids.insert(id) {
            return false;
        }
        if rec.span.parent_span_id.is_empty() && self.root_at.is_none() {
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
            .filter_map(|h| match Span::decode(h.encoded.as_slice()) {
                Ok(span) => Some(SpanRecord {
                    span,
                    service_name: Arc::clone(&h.service_name),
                }),
                Err(e) => {
                    // Unreachable in practice: the bytes were encoded by `add`.
                    tracing::error!(error = %e, "held span does not decode; skipped");
                    None
                }
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

fn span_id(b: &[u8]) -> Option<SpanId> {
    b.try_into().ok()
}

/// The state owned by the run-manager thread.
pub struct RunManager {
    cfg: RunManagerConfig,
    store: Store,
    rules: Arc<MappingRules>,
    metrics: Arc<ReceiverMetrics>,
    open: HashMap<TraceId, OpenRun>,
    /// Every trace in the raw store → the sequence numbers of the records holding its spans.
    index: HashMap<TraceId, Vec<u64>>,
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
                RunMsg::Batch { seq, bytes, permit } => {
                    self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    self.on_encoded_batch(seq, &bytes, Instant::now());
                    drop(permit);
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
            let seqs = self.index.entry(trace).or_default();
            let known_before = !seqs.is_empty();
            if seqs.last() != Some(&seq) {
                seqs.push(seq);
            }
            if !self.open.contains_key(&trace) && known_before {
                // Late span for a finalized run: rebuild it from the raw store, then add these.
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
                    ReceiverMetrics::add(&self.metrics.runs_rematerialized, 1);
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

    /// Finalizes every open run whose deadline passed.
    pub fn finalize_due(&mut self, now: Instant) {
        let due: Vec<TraceId> = self
            .open
            .iter()
            .filter(|(_, r)| r.due(now, &self.cfg))
            .map(|(t, _)| *t)
            .collect();
        for trace in due {
            if let Some(mut run) = self.open.remove(&trace) {
                if !self.finalize(&trace, &run) {
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

    /// Finalizes every open run now (used by tests and tools, not by shutdown).
    pub fn finalize_all(&mut self) {
        let all: Vec<TraceId> = self.open.keys().copied().collect();
        for trace in all {
            if let Some(run) = self.open.remove(&trace) {
                let _ = self.finalize(&trace, &run);
            }
        }
        self.metrics.open_runs.store(0, Ordering::Relaxed);
    }

    pub fn open_runs(&self) -> usize {
        self.open.len()
    }

    /// Assembles and writes one run; `false` when the write failed (counted and logged).
    fn finalize(&self, trace: &TraceId, run: &OpenRun) -> bool {
        let assembled = assemble(*trace, &run.records(), &self.rules);
        let run_id = hex::encode(trace);
        match traj_runs::write_run_with(
            &self.cfg.runs_dir,
            &assembled.session,
            &assembled.events,
            self.cfg.durability,
        ) {
            Ok(dir) => {
                ReceiverMetrics::add(&self.metrics.runs_finalized, 1);
                tracing::debug!(
                    run_id,
                    spans = run.spans.len(),
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

    /// Rebuilds a run from every raw record holding its spans (skipping `except`, the batch
    /// being added now).
    fn load_from_raw(&self, trace: &TraceId, except: Option<u64>, now: Instant) -> OpenRun {
        let mut run = OpenRun::new(now);
        let Some(seqs) = self.index.get(trace) else {
            return run;
        };
        for &seq in seqs {
            if Some(seq) == except {
                continue;
            }
            let Some(req) = self.read_record(seq) else {
                continue;
            };
            for (t, spans) in split_by_trace(req).traces {
                if &t == trace {
                    for rec in spans {
                        run.add(rec, now);
                    }
                }
            }
        }
        run
    }

    fn read_record(&self, seq: u64) -> Option<ExportTraceServiceRequest> {
        let bytes = match self.store.read(seq) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(seq, error = %e, "raw record unreadable");
                return None;
            }
        };
        match ExportTraceServiceRequest::decode(bytes.as_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(seq, error = %e, "raw record is not an ExportTraceServiceRequest");
                None
            }
        }
    }

    /// Scans the raw store: builds the trace → records index and re-opens every trace whose run
    /// directory is missing or holds fewer spans than raw storage has.
    pub fn recover(&mut self) -> RecoverySummary {
        let mut summary = RecoverySummary::default();
        let mut span_ids: HashMap<TraceId, HashSet<SpanId>> = HashMap::new();
        for item in self.store.scan(0) {
            let traj_store::Record { seq, payload: bytes, .. } = match item {
                Ok(x) => x,
                Err(e) => {
                    summary.bad_records += 1;
                    tracing::error!(error = %e, "raw record unreadable during scan");
                    continue;
                }
            };
            summary.records += 1;
            self.recovered_through = Some(self.recovered_through.map_or(seq, |t| t.max(seq)));
            let req = match ExportTraceServiceRequest::decode(bytes.as_ref()) {
                Ok(r) => r,
                Err(e) => {
                    summary.bad_records += 1;
                    tracing::error!(seq, error = %e, "raw record is not an ExportTraceServiceRequest");
                    continue;
                }
            };
            for (trace, spans) in split_by_trace(req).traces {
                let seqs = self.index.entry(trace).or_default();
                if seqs.last() != Some(&seq) {
                    seqs.push(seq);
                }
                let ids = span_ids.entry(trace).or_default();
                for rec in spans {
                    if let Some(id) = span_id(&rec.span.span_id) {
                        ids.insert(id);
                    }
                }
            }
        }
        summary.traces = span_ids.len() as u64;
        let now = Instant::now();
        let mut traces: Vec<(TraceId, usize)> =
            span_ids.into_iter().map(|(t, s)| (t, s.len())).collect();
        traces.sort_unstable();
        for (trace, raw_spans) in traces {
            let on_disk = spans_on_disk(&self.cfg.runs_dir, &trace);
            if on_disk.is_some_and(|n| n >= raw_spans as u64) {
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

/// `lineage.spans` of `runs/<run_id>/session.json`, or `None` when the run is missing,
/// unreadable, or its `events.jsonl` does not hold `lineage.events` lines (a torn write).
fn spans_on_disk(runs_dir: &Path, trace: &TraceId) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Lineage {
        spans: u64,
        #[serde(default)]
        events: u64,
    }
    #[derive(serde::Deserialize)]
    struct SessionLineage {
        lineage: Lineage,
    }
    let dir = runs_dir.join(hex::encode(trace));
    let text = std::fs::read_to_string(dir.join(traj_runs::SESSION_FILE)).ok()?;
    let s: SessionLineage = serde_json::from_str(&text).ok()?;
    let events = std::fs::read(dir.join(traj_runs::EVENTS_FILE)).ok()?;
    let complete_lines = events.iter().filter(|b| **b == b'\n').count() as u64;
    (complete_lines == s.lineage.events).then_some(s.lineage.spans)
}

/// How often deadlines are checked: a tenth of the shorter timer, between 10 ms and 1 s.
pub fn tick_interval(cfg: &RunManagerConfig) -> Duration {
    (cfg.grace_period.min(cfg.idle_timeout) / 10)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}
