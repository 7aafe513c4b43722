//! What an open run holds until it is finalized: for each span only where it sits in the raw
//! store (record, byte range) and its id, so a run's memory does not grow with span sizes (a
//! 128 KB prompt costs the same as an empty span); log records, which arrive decoded, are held
//! encoded. Spans are read back and decoded once, at finalization.

use prost::Message;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use traj_assemble::{EncodedSpan, LogEntry};
use traj_schema::ids::SpanId;

/// A span held by an open run: its place in the raw store.
pub(crate) struct HeldSpan {
    pub seq: u64,
    pub range: Range<usize>,
    pub span_id: SpanId,
    pub service_name: Arc<str>,
}

/// A log record held by an open run, protobuf-encoded, with its resource's service name and its
/// scope name.
pub(crate) struct HeldLog {
    pub encoded: Vec<u8>,
    pub service_name: Arc<str>,
    pub scope_name: Arc<str>,
}

impl HeldLog {
    pub fn new(entry: &LogEntry) -> Self {
        HeldLog {
            encoded: entry.record.encode_to_vec(),
            service_name: Arc::clone(&entry.service_name),
            scope_name: Arc::clone(&entry.scope_name),
        }
    }

    /// Hash of everything that makes two held records the same record.
    pub fn key(&self) -> u64 {
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

/// [`HeldLog::key`] of a log record as received.
pub(crate) fn log_key(entry: &LogEntry) -> u64 {
    HeldLog::new(entry).key()
}

pub(crate) struct OpenRun {
    pub spans: Vec<HeldSpan>,
    ids: HashSet<SpanId>,
    /// Log records of the trace, in arrival order, each once.
    pub logs: Vec<HeldLog>,
    /// [`HeldLog::key`] → indices into `logs` (a hit is confirmed byte by byte). Log records
    /// have no id; an identical record (same encoding, resource service and scope) is a
    /// duplicate, as a client retry after a lost acknowledgement produces.
    log_keys: HashMap<u64, Vec<usize>>,
    /// Raw records holding the trace's spans or log records, ascending, each once.
    pub seqs: Vec<u64>,
    /// When the root span (no parent) arrived.
    pub root_at: Option<Instant>,
    pub last_activity: Instant,
}

impl OpenRun {
    pub fn new(now: Instant) -> Self {
        OpenRun {
            spans: Vec::new(),
            ids: HashSet::new(),
            logs: Vec::new(),
            log_keys: HashMap::new(),
            seqs: Vec::new(),
            root_at: None,
            last_activity: now,
        }
    }

    /// Notes that raw record `seq` holds some of the trace.
    pub fn saw(&mut self, seq: u64) {
        if let Err(at) = self.seqs.binary_search(&seq) {
            self.seqs.insert(at, seq);
        }
    }

    /// Adds a log record unless an identical one is already held; returns whether it was new.
    pub fn add_log(&mut self, entry: &LogEntry) -> bool {
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

    /// Adds a span of raw record `seq` unless its id is already held; returns whether it was new.
    pub fn add_span(&mut self, seq: u64, span: EncodedSpan, now: Instant) -> bool {
        if !self.ids.insert(span.span_id) {
            return false;
        }
        if span.is_root && self.root_at.is_none() {
            self.root_at = Some(now);
        }
        self.spans.push(HeldSpan {
            seq,
            range: span.range,
            span_id: span.span_id,
            service_name: span.service_name,
        });
        true
    }

    /// Heap bytes this run holds (approximate: what grows with the run).
    pub fn held_bytes(&self) -> usize {
        let spans = self.spans.len() * (std::mem::size_of::<HeldSpan>() + 16);
        let logs: usize = self.logs.iter().map(|l| l.encoded.len() + 48).sum();
        spans + logs + self.seqs.len() * 8
    }
}
