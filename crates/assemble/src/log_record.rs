//! Content sent as OTLP logs: the unit assembly joins to spans ([`LogEntry`]: a log record plus
//! its resource's service name) and the split of a logs export request by trace id.

use crate::attributes::attr_str;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::collections::HashMap;
use std::sync::Arc;
use traj_schema::ids;

/// One log record with the resource facts assembly needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub record: LogRecord,
    /// `service.name` of the resource that sent the record (empty when none).
    pub service_name: Arc<str>,
    /// The instrumentation scope's name (e.g. `opentelemetry.instrumentation.openai_v2`).
    pub scope_name: Arc<str>,
}

impl LogEntry {
    /// The span the record is tied to, when it names one.
    pub fn span_id(&self) -> Option<[u8; 8]> {
        ids::span_id(&self.record.span_id)
    }
}

/// The log records of one export request grouped by trace id, in order of first appearance.
#[derive(Debug, Default)]
pub struct SplitLogs {
    pub traces: Vec<([u8; 16], Vec<LogEntry>)>,
    /// Records with no (or a malformed) trace id: kept in raw storage, never joined to a run.
    pub untraced: u64,
}

/// Splits a logs export request into per-trace record lists (records move, not copy).
pub fn split_logs_by_trace(req: ExportLogsServiceRequest) -> SplitLogs {
    let mut out = SplitLogs::default();
    let mut index: HashMap<[u8; 16], usize> = HashMap::new();
    for rl in req.resource_logs {
        let service: Arc<str> = rl
            .resource
            .as_ref()
            .and_then(|r| attr_str(&r.attributes, "service.name"))
            .unwrap_or("")
            .into();
        for sl in rl.scope_logs {
            let scope: Arc<str> = sl
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or("")
                .into();
            for record in sl.log_records {
                let Some(tid) = ids::trace_id(&record.trace_id) else {
                    out.untraced += 1;
                    continue;
                };
                let slot = *index.entry(tid).or_insert_with(|| {
                    out.traces.push((tid, Vec::new()));
                    out.traces.len() - 1
                });
                out.traces[slot].1.push(LogEntry {
                    record,
                    service_name: Arc::clone(&service),
                    scope_name: Arc::clone(&scope),
                });
            }
        }
    }
    out
}
