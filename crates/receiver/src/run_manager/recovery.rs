//! The startup scan: every shard walks the raw store from its checkpoint (records below it are
//! accounted for in the on-disk index; 0 on a first start or without `index/`), with the lazy
//! wire walk for trace records and logs records decoded. It indexes its own traces, completes
//! them with their older records from the on-disk index, and re-opens each trace with spans
//! whose run directory is missing or holds fewer spans than raw has, or, when the run records
//! `lineage.log_records`, fewer log records. Traces with log records only are indexed.

use super::open_run::log_key;
use super::trace_index::TraceRecords;
use super::RunManager;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;
use traj_assemble::{split_encoded_by_trace, split_logs_by_trace};
use traj_schema::ids::{SpanId, TraceId};
use traj_store::{Record, RecordKind};

/// What the startup scan of the raw store found (for this shard's traces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    /// The seq the scan started at: the shard's checkpoint (records below it are accounted for
    /// in the on-disk index), 0 on a first start.
    pub scanned_from: u64,
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

/// What the scan collects per trace before deciding which to re-open.
#[derive(Default)]
struct Seen {
    records: HashMap<TraceId, TraceRecords>,
    span_ids: HashMap<TraceId, HashSet<SpanId>>,
    log_keys: HashMap<TraceId, HashSet<u64>>,
}

impl RunManager {
    /// Where this shard's startup scan starts (0, a full scan, when the index cannot say).
    fn checkpoint(&self) -> u64 {
        let shard = self.cfg.shard;
        self.index
            .checkpoint(shard.index, shard.count)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no checkpoint readable; scanning all of raw");
                0
            })
    }

    /// Scans the raw store from the checkpoint, indexes this shard's traces and re-opens the
    /// incomplete ones.
    pub fn recover(&mut self) -> RecoverySummary {
        let mut summary = RecoverySummary {
            scanned_from: self.checkpoint(),
            ..RecoverySummary::default()
        };
        let mut seen = Seen::default();
        self.scan_raw(&mut summary, &mut seen);
        summary.traces = seen.span_ids.len() as u64;
        summary.log_only_traces = seen
            .log_keys
            .keys()
            .filter(|t| !seen.span_ids.contains_key(*t))
            .count() as u64;
        summary.reopened = self.reopen_incomplete(seen);
        self.metrics
            .open_runs
            .fetch_add(summary.reopened, Ordering::Relaxed);
        summary
    }

    /// Phase 1: every record once; the index and what each trace holds in raw.
    fn scan_raw(&mut self, summary: &mut RecoverySummary, seen: &mut Seen) {
        let shard = self.cfg.shard;
        for item in self.store.scan(summary.scanned_from) {
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
            match kind {
                RecordKind::Traces => match split_encoded_by_trace(&payload) {
                    Err(e) => {
                        summary.bad_records += 1;
                        tracing::error!(seq, error = %e, "raw trace record does not parse");
                    }
                    Ok(split) => {
                        for (trace, spans) in split.traces {
                            if !shard.owns(&trace) {
                                continue;
                            }
                            let records = seen.records.entry(trace).or_default();
                            records.push(seq);
                            records.has_spans = true;
                            let ids = seen.span_ids.entry(trace).or_default();
                            ids.extend(spans.iter().map(|s| s.span_id));
                        }
                    }
                },
                RecordKind::Logs => match ExportLogsServiceRequest::decode(payload.as_ref()) {
                    Err(e) => {
                        summary.bad_records += 1;
                        tracing::error!(seq, error = %e, "raw logs record does not decode");
                    }
                    Ok(req) => {
                        let split = split_logs_by_trace(req);
                        if shard.index == 0 {
                            summary.untraced_log_records += split.untraced;
                        }
                        for (trace, entries) in split.traces {
                            if !shard.owns(&trace) {
                                continue;
                            }
                            seen.records.entry(trace).or_default().push(seq);
                            summary.log_records += entries.len() as u64;
                            let keys = seen.log_keys.entry(trace).or_default();
                            keys.extend(entries.iter().map(log_key));
                        }
                    }
                },
            }
        }
    }

    /// Phase 2: completes each scanned trace's records with its older ones from the on-disk
    /// index (those below the checkpoint), then re-opens every trace with spans whose run on
    /// disk holds less than raw; returns how many.
    fn reopen_incomplete(&mut self, mut seen: Seen) -> u64 {
        let now = Instant::now();
        let extended = self.add_older_records(&mut seen.records);
        let mut traces: Vec<TraceId> = seen
            .records
            .iter()
            .filter(|(_, r)| r.has_spans)
            .map(|(t, _)| *t)
            .collect();
        traces.sort_unstable();
        let mut reopened = 0;
        for trace in traces {
            let seqs = seen
                .records
                .get(&trace)
                .map(|r| r.seqs.clone())
                .unwrap_or_default();
            // What raw holds for the trace: counted by the scan, or (when older records exist
            // below the checkpoint) by loading them all.
            let (raw_spans, raw_logs, loaded) = if extended.contains(&trace) {
                let Some(run) = self.load_from_raw(&trace, &seqs, now) else {
                    continue;
                };
                (run.spans.len() as u64, run.logs.len() as u64, Some(run))
            } else {
                let spans = seen.span_ids.get(&trace).map_or(0, HashSet::len) as u64;
                let logs = seen.log_keys.get(&trace).map_or(0, HashSet::len) as u64;
                (spans, logs, None)
            };
            let run_dir = traj_runs::run_path(&self.cfg.runs_dir, &hex::encode(trace));
            let complete = traj_runs::written_lineage(&run_dir).is_some_and(|d| {
                d.spans >= raw_spans && d.log_records.is_none_or(|n| n >= raw_logs)
            });
            if complete {
                continue;
            }
            let run = match loaded {
                Some(run) => Some(run),
                None => self.load_from_raw(&trace, &seqs, now),
            };
            let Some(mut run) = run else {
                continue;
            };
            seen.records.remove(&trace);
            if run.root_at.is_some() {
                run.root_at = Some(now);
            }
            self.deadlines.touch(trace, run.last_activity);
            self.held_bytes_changed(0, run.held_bytes());
            self.open.insert(trace, run);
            reopened += 1;
        }
        // The rest (complete runs, log-only traces) go to the index as if finalized long ago:
        // straight to disk at the first spill.
        let long_ago = now.checked_sub(self.cfg.late_window).unwrap_or(now);
        for (trace, records) in seen.records {
            self.index.insert(trace, records, long_ago);
            if self.index.in_memory() >= super::trace_index::MAX_IN_MEMORY {
                self.move_index_to_disk(now, self.cfg.late_window);
            }
        }
        self.move_index_to_disk(now, self.cfg.late_window);
        reopened
    }

    /// Prepends to each scanned trace the records the on-disk index knows from before the
    /// checkpoint; returns the traces that had some.
    fn add_older_records(&self, records: &mut HashMap<TraceId, TraceRecords>) -> HashSet<TraceId> {
        let mut extended = HashSet::new();
        for (trace, scanned) in records.iter_mut() {
            let older = match self.index.on_disk(trace) {
                Ok(Some(older)) => older,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(trace_id = %hex::encode(trace), error = %e, "trace index lookup failed during the startup scan");
                    continue;
                }
            };
            let mut seqs = older.seqs;
            seqs.extend_from_slice(&scanned.seqs);
            seqs.sort_unstable();
            seqs.dedup();
            scanned.seqs = seqs;
            scanned.has_spans |= older.has_spans;
            extended.insert(*trace);
        }
        extended
    }
}
