//! The receiver's counters and gauges, rendered by hand in the Prometheus text exposition format
//! for `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters are monotonic; gauges (`queue_depth`, `open_runs`, `open_run_bytes`, `trace_index_*`,
/// `spans_in_flight`) go up and down.
#[derive(Debug, Default)]
pub struct ReceiverMetrics {
    pub requests: AtomicU64,
    pub requests_refused: AtomicU64,
    pub spans_received: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_duplicate: AtomicU64,
    pub log_records_received: AtomicU64,
    pub log_records_rejected: AtomicU64,
    pub log_records_untraced: AtomicU64,
    pub log_records_duplicate: AtomicU64,
    pub log_records_joined: AtomicU64,
    pub log_traces_dropped: AtomicU64,
    pub runs_finalized: AtomicU64,
    pub runs_rematerialized: AtomicU64,
    pub run_write_failures: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub forward_sent: AtomicU64,
    pub forward_failures: AtomicU64,
    pub forward_dropped: AtomicU64,
    pub queue_depth: AtomicU64,
    pub open_runs: AtomicU64,
    pub open_run_bytes: AtomicU64,
    pub trace_index_entries: AtomicU64,
    pub trace_index_bytes: AtomicU64,
    pub trace_index_disk_entries: AtomicU64,
    pub late_records_past_retention: AtomicU64,
    pub raw_segments_dropped: AtomicU64,
    pub raw_bytes_dropped: AtomicU64,
    pub raw_first_seq: AtomicU64,
    pub spans_in_flight: AtomicU64,
}

impl ReceiverMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Renders every metric as `traj_receiver_*` in the Prometheus text format.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 29] = [
            (
                "requests_total",
                "counter",
                "Export requests received (gRPC and HTTP).",
                &self.requests,
            ),
            (
                "requests_refused_total",
                "counter",
                "Export requests refused for backpressure (429/503/UNAVAILABLE).",
                &self.requests_refused,
            ),
            (
                "spans_received_total",
                "counter",
                "Valid spans accepted and stored.",
                &self.spans_received,
            ),
            (
                "spans_rejected_total",
                "counter",
                "Spans rejected by validation (bad ids).",
                &self.spans_rejected,
            ),
            (
                "spans_duplicate_total",
                "counter",
                "Spans whose (trace id, span id) was already held by an open run.",
                &self.spans_duplicate,
            ),
            (
                "log_records_received_total",
                "counter",
                "Valid log records accepted and stored (untraced ones included).",
                &self.log_records_received,
            ),
            (
                "log_records_rejected_total",
                "counter",
                "Log records rejected by validation (bad trace or span id length).",
                &self.log_records_rejected,
            ),
            (
                "log_records_untraced_total",
                "counter",
                "Stored log records without a trace id: they can never join a run.",
                &self.log_records_untraced,
            ),
            (
                "log_records_duplicate_total",
                "counter",
                "Log records identical to one already held for their trace (ignored).",
                &self.log_records_duplicate,
            ),
            (
                "log_records_joined_total",
                "counter",
                "Log records handed to assembly with their run (summed over finalizations).",
                &self.log_records_joined,
            ),
            (
                "log_traces_dropped_total",
                "counter",
                "Traces with log records but no span, dropped from memory after the idle timeout (raw records stay).",
                &self.log_traces_dropped,
            ),
            (
                "runs_finalized_total",
                "counter",
                "Runs assembled and written to runs/.",
                &self.runs_finalized,
            ),
            (
                "runs_rematerialized_total",
                "counter",
                "Finalized runs re-opened from the raw store by a late span.",
                &self.runs_rematerialized,
            ),
            (
                "run_write_failures_total",
                "counter",
                "Runs whose assembly or write failed.",
                &self.run_write_failures,
            ),
            (
                "late_records_past_retention_total",
                "counter",
                "Late spans or log records for runs whose earlier raw records retention dropped (kept in raw; the run is not rewritten).",
                &self.late_records_past_retention,
            ),
            (
                "raw_segments_dropped_total",
                "counter",
                "Raw segments dropped by retention.",
                &self.raw_segments_dropped,
            ),
            (
                "raw_bytes_dropped_total",
                "counter",
                "Raw bytes dropped by retention.",
                &self.raw_bytes_dropped,
            ),
            (
                "raw_first_seq",
                "gauge",
                "Oldest raw record kept, as of the last retention pass (0 before any).",
                &self.raw_first_seq,
            ),
            (
                "bytes_stored_total",
                "counter",
                "Bytes appended to the raw store.",
                &self.bytes_stored,
            ),
            (
                "forward_sent_total",
                "counter",
                "Batches delivered to forward targets.",
                &self.forward_sent,
            ),
            (
                "forward_failures_total",
                "counter",
                "Failed forward attempts (each retry counts).",
                &self.forward_failures,
            ),
            (
                "forward_dropped_total",
                "counter",
                "Batches dropped for a forward target (queue full or retries exhausted).",
                &self.forward_dropped,
            ),
            (
                "queue_depth",
                "gauge",
                "Batches waiting for the run manager.",
                &self.queue_depth,
            ),
            (
                "open_runs",
                "gauge",
                "Runs held open in memory.",
                &self.open_runs,
            ),
            (
                "open_run_bytes",
                "gauge",
                "Heap bytes the open runs hold (span locations, encoded log records, record lists).",
                &self.open_run_bytes,
            ),
            (
                "trace_index_entries",
                "gauge",
                "Traces not open whose raw records the run manager keeps in memory (for late spans).",
                &self.trace_index_entries,
            ),
            (
                "trace_index_bytes",
                "gauge",
                "Heap bytes of those in-memory trace index entries (approximate).",
                &self.trace_index_bytes,
            ),
            (
                "trace_index_disk_entries",
                "gauge",
                "Traces in the on-disk index (index/traces.redb), moved there after the late window.",
                &self.trace_index_disk_entries,
            ),
            (
                "spans_in_flight",
                "gauge",
                "Spans accepted but not yet durably stored (the in-flight cap also covers the run-manager queue).",
                &self.spans_in_flight,
            ),
        ];
        let mut out = String::with_capacity(2048);
        for (name, kind, help, v) in rows {
            let _ = writeln!(out, "# HELP traj_receiver_{name} {help}");
            let _ = writeln!(out, "# TYPE traj_receiver_{name} {kind}");
            let _ = writeln!(out, "traj_receiver_{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_help_type_and_value() {
        let m = ReceiverMetrics::default();
        ReceiverMetrics::add(&m.spans_received, 5);
        let text = m.render();
        assert!(text.contains("# TYPE traj_receiver_spans_received_total counter\n"));
        assert!(text.contains("\ntraj_receiver_spans_received_total 5\n"));
        assert!(text.contains("\ntraj_receiver_open_runs 0\n"));
        ReceiverMetrics::add(&m.log_records_untraced, 2);
        let text = m.render();
        assert!(text.contains("# TYPE traj_receiver_log_records_untraced_total counter\n"));
        assert!(text.contains("\ntraj_receiver_log_records_untraced_total 2\n"));
        // Every sample line is `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 2, "{line}");
            parts[1].parse::<u64>().unwrap();
        }
    }
}
