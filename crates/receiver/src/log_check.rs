//! Per-record validation of a logs export request: a log record whose trace id or span id has a
//! length OTLP does not allow (trace id: none or 16 bytes, span id: none or 8 bytes) is removed
//! and counted with a message naming the first problems; the rest is kept. Records without a
//! trace id (empty or all zeros) are valid OTLP and kept, but counted as untraced: they can never
//! join a run.

use crate::rejections::Rejections;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use traj_schema::ids;

/// The outcome of [`check_logs_request`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Records kept (untraced ones included).
    pub accepted: u64,
    pub rejected: u64,
    /// Kept records without a trace id (empty or all zeros).
    pub untraced: u64,
    /// Empty when nothing was rejected; otherwise names the first problems with their location.
    pub message: String,
}

/// What is wrong with one log record, if anything.
pub fn log_record_problem(record: &LogRecord) -> Option<String> {
    let t = record.trace_id.len();
    if t != 0 && t != ids::TRACE_ID_LEN {
        return Some(format!("trace id has {t} bytes, expected 16 (or none)"));
    }
    let s = record.span_id.len();
    if s != 0 && s != ids::SPAN_ID_LEN {
        return Some(format!("span id has {s} bytes, expected 8 (or none)"));
    }
    None
}

/// Whether a (valid) record names a trace: a 16-byte trace id that is not all zeros.
pub fn has_trace_id(record: &LogRecord) -> bool {
    ids::valid_trace_id(&record.trace_id)
}

/// Removes invalid records from `req` (and scopes/resources left empty by that), returning the
/// counts and a message such as
/// `2 log records rejected: resourceLogs[0].scopeLogs[0].logRecords[1]: span id has 3 bytes, expected 8 (or none); ...`.
pub fn check_logs_request(req: &mut ExportLogsServiceRequest) -> LogCheck {
    let mut out = LogCheck::default();
    let mut rejections = Rejections::default();
    for (ri, rl) in req.resource_logs.iter_mut().enumerate() {
        for (si, sl) in rl.scope_logs.iter_mut().enumerate() {
            let mut i = 0usize;
            sl.log_records.retain(|record| {
                let idx = i;
                i += 1;
                match log_record_problem(record) {
                    None => {
                        out.accepted += 1;
                        if !has_trace_id(record) {
                            out.untraced += 1;
                        }
                        true
                    }
                    Some(p) => {
                        rejections.add(
                            || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{idx}]"),
                            &p,
                        );
                        false
                    }
                }
            });
        }
        if rejections.count() > 0 {
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
    }
    out.rejected = rejections.count();
    if out.rejected > 0 {
        req.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
    }
    out.message = rejections.message("log record");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

    fn rec(trace: Vec<u8>, span: Vec<u8>) -> LogRecord {
        LogRecord {
            trace_id: trace,
            span_id: span,
            ..Default::default()
        }
    }

    fn req(groups: Vec<Vec<LogRecord>>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: groups
                .into_iter()
                .map(|log_records| ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn valid_records_pass_untouched_and_untraced_ones_are_counted() {
        let mut r = req(vec![vec![
            rec(vec![1; 16], vec![2; 8]),
            rec(vec![1; 16], vec![]),
            rec(vec![], vec![]),
            rec(vec![0; 16], vec![2; 8]),
        ]]);
        let before = r.clone();
        let c = check_logs_request(&mut r);
        assert_eq!((c.accepted, c.rejected, c.untraced), (4, 0, 2));
        assert!(c.message.is_empty());
        assert_eq!(r, before);
    }

    #[test]
    fn bad_id_lengths_are_removed_and_named() {
        let mut r = req(vec![
            vec![
                rec(vec![1; 16], vec![2; 8]),
                rec(vec![1; 15], vec![2; 8]),
                rec(vec![1; 16], vec![2; 3]),
                rec(vec![1; 17], vec![]),
                rec(vec![1; 16], vec![2; 9]),
            ],
            vec![rec(vec![1; 4], vec![])],
        ]);
        let c = check_logs_request(&mut r);
        assert_eq!((c.accepted, c.rejected, c.untraced), (1, 5, 0));
        assert!(
            c.message.starts_with("5 log records rejected: "),
            "{}",
            c.message
        );
        assert!(
            c.message.contains(
                "resourceLogs[0].scopeLogs[0].logRecords[1]: trace id has 15 bytes, expected 16 (or none)"
            ),
            "{}",
            c.message
        );
        assert!(c
            .message
            .contains("logRecords[2]: span id has 3 bytes, expected 8 (or none)"));
        assert!(c.message.ends_with("; and 2 more"), "{}", c.message);
        assert_eq!(r.resource_logs.len(), 1, "the emptied resource is dropped");
        assert_eq!(r.resource_logs[0].scope_logs[0].log_records.len(), 1);
        assert_eq!(
            r.resource_logs[0].scope_logs[0].log_records[0].span_id,
            vec![2; 8]
        );
    }

    #[test]
    fn one_rejection_is_singular() {
        let mut r = req(vec![vec![rec(vec![1; 2], vec![])]]);
        let c = check_logs_request(&mut r);
        assert_eq!(
            c.message,
            "1 log record rejected: resourceLogs[0].scopeLogs[0].logRecords[0]: trace id has 2 bytes, expected 16 (or none)"
        );
        assert!(r.resource_logs.is_empty());
    }
}
