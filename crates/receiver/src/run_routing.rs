//! Routes a stored batch to the run-manager shards. Done on the ack path's threads (in parallel
//! across requests): trace records are split by trace with the lazy wire walk (spans located,
//! not decoded), logs records decoded and split by trace, and each shard gets only its traces.
//! The shards never see the batch's bytes: they read spans back from the raw store.

use crate::retention_floor::PendingRecord;
use crate::run_manager::{RunMsg, Shard};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::sync::Arc;
use traj_assemble::{split_encoded_by_trace, split_logs_by_trace, EncodedSpan, LogEntry};
use traj_schema::ids::TraceId;
use traj_store::RecordKind;

/// One shard's part of a batch (the record's sequence number is added once it is stored).
#[derive(Debug)]
pub(crate) enum ShardLoad {
    Spans(Vec<(TraceId, Vec<EncodedSpan>)>),
    Logs(Vec<(TraceId, Vec<LogEntry>)>),
}

impl ShardLoad {
    pub fn into_msg(self, seq: u64, hold: Arc<PendingRecord>) -> RunMsg {
        match self {
            ShardLoad::Spans(traces) => RunMsg::Spans { seq, traces, hold },
            ShardLoad::Logs(traces) => RunMsg::Logs { seq, traces, hold },
        }
    }
}

/// A batch routed: (shard, its load) for every shard with at least one trace.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    pub loads: Vec<(usize, ShardLoad)>,
    /// Distinct traces in the batch (each may open a run).
    pub traces: u64,
}

/// The checked batch does not parse (unreachable: the ack path checked or encoded it itself).
#[derive(Debug, thiserror::Error)]
#[error("stored batch does not parse: {0}")]
pub(crate) struct RouteError(String);

/// Splits a `kind` batch's traces over `shards` shards.
pub(crate) fn route(kind: RecordKind, bytes: &[u8], shards: usize) -> Result<Routed, RouteError> {
    match kind {
        RecordKind::Traces => {
            let split = split_encoded_by_trace(bytes).map_err(|e| RouteError(e.to_string()))?;
            Ok(distribute(split.traces, shards, ShardLoad::Spans))
        }
        RecordKind::Logs => {
            let req =
                ExportLogsServiceRequest::decode(bytes).map_err(|e| RouteError(e.to_string()))?;
            Ok(distribute(
                split_logs_by_trace(req).traces,
                shards,
                ShardLoad::Logs,
            ))
        }
    }
}

fn distribute<T>(
    traces: Vec<(TraceId, Vec<T>)>,
    shards: usize,
    load: impl Fn(Vec<(TraceId, Vec<T>)>) -> ShardLoad,
) -> Routed {
    let count = traces.len() as u64;
    let mut per: Vec<Vec<(TraceId, Vec<T>)>> = (0..shards.max(1)).map(|_| Vec::new()).collect();
    for (trace, items) in traces {
        if let Some(slot) = per.get_mut(Shard::of(&trace, shards)) {
            slot.push((trace, items));
        }
    }
    Routed {
        loads: per
            .into_iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
            .map(|(i, t)| (i, load(t)))
            .collect(),
        traces: count,
    }
}
