//! The unit assembly works on ([`SpanRecord`]: a span plus what its resource says about it) and
//! the split of an OTLP export request into per-trace span lists.

use crate::attributes::attr_str;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::HashMap;
use std::sync::Arc;
use traj_schema::ids::{self, TraceId};

/// One span with the resource facts assembly needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub span: Span,
    /// `service.name` of the resource that sent the span (empty when the resource had none).
    pub service_name: Arc<str>,
}

/// The spans of one export request grouped by trace id, in order of first appearance.
#[derive(Debug, Default)]
pub struct SplitTraces {
    pub traces: Vec<(TraceId, Vec<SpanRecord>)>,
    /// Spans skipped because their ids were invalid ([`ids::span_ids_problem`]).
    pub invalid_spans: u64,
}

/// Splits an export request into per-trace span lists. Spans with invalid ids (the rule of
/// [`traj_schema::ids`], as the receiver applies it) are skipped and counted, never a panic.
/// Consumes the request so spans move, not copy.
pub fn split_by_trace(req: ExportTraceServiceRequest) -> SplitTraces {
    let mut out = SplitTraces::default();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for rs in req.resource_spans {
        let service: Arc<str> = rs
            .resource
            .as_ref()
            .and_then(|r| attr_str(&r.attributes, "service.name"))
            .unwrap_or("")
            .into();
        for ss in rs.scope_spans {
            for span in ss.spans {
                let problem =
                    ids::span_ids_problem(&span.trace_id, &span.span_id, &span.parent_span_id);
                let (None, Some(tid)) = (problem, ids::trace_id(&span.trace_id)) else {
                    out.invalid_spans += 1;
                    continue;
                };
                let slot = *index.entry(tid).or_insert_with(|| {
                    out.traces.push((tid, Vec::new()));
                    out.traces.len() - 1
                });
                out.traces[slot].1.push(SpanRecord {
                    span,
                    service_name: Arc::clone(&service),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(t: u8, s: u8) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_trace_and_skips_bad_ids() {
        let mut bad_len = span(1, 9);
        bad_len.span_id = vec![1, 2, 3];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue("agent".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(1, 1),
                        span(2, 1),
                        span(1, 2),
                        span(0, 3),
                        bad_len,
                        span(2, 0),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let split = split_by_trace(req);
        assert_eq!(split.invalid_spans, 3);
        assert_eq!(split.traces.len(), 2);
        assert_eq!(split.traces[0].0, [1u8; 16]);
        assert_eq!(split.traces[0].1.len(), 2);
        assert_eq!(split.traces[1].1.len(), 1);
        assert_eq!(&*split.traces[0].1[0].service_name, "agent");
    }
}
