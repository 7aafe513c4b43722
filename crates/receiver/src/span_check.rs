//! Per-span validation of an export request: invalid spans (bad trace, span or parent span id)
//! are removed and counted with a message naming the first problems; the rest is kept.

use crate::rejections::Rejections;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use traj_schema::ids;

/// The outcome of [`check_request`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SpanCheck {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty when nothing was rejected; otherwise names the first problems with their location.
    pub message: String,
}

/// What is wrong with one span, if anything (the id rules of [`traj_schema::ids`]).
pub fn span_problem(span: &Span) -> Option<String> {
    ids::span_ids_problem(&span.trace_id, &span.span_id, &span.parent_span_id)
        .map(|p| p.to_string())
}

/// Removes invalid spans from `req` (and scopes/resources left empty by that), returning the
/// counts and a message such as
/// `2 spans rejected: resourceSpans[0].scopeSpans[0].spans[1]: span id has 3 bytes, expected 8; ...`.
pub fn check_request(req: &mut ExportTraceServiceRequest) -> SpanCheck {
    let mut out = SpanCheck::default();
    let mut rejections = Rejections::default();
    for (ri, rs) in req.resource_spans.iter_mut().enumerate() {
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut i = 0usize;
            ss.spans.retain(|span| {
                let idx = i;
                i += 1;
                match span_problem(span) {
                    None => {
                        out.accepted += 1;
                        true
                    }
                    Some(p) => {
                        rejections.add(
                            || format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{idx}]"),
                            &p,
                        );
                        false
                    }
                }
            });
        }
        if rejections.count() > 0 {
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
    }
    out.rejected = rejections.count();
    if out.rejected > 0 {
        req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    }
    out.message = rejections.message("span");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(t: u8, s: u8, parent: Vec<u8>) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            parent_span_id: parent,
            ..Default::default()
        }
    }

    fn req(spans: Vec<Vec<Span>>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: spans
                .into_iter()
                .map(|spans| ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn valid_spans_pass_untouched() {
        let mut r = req(vec![vec![span(1, 1, vec![]), span(1, 2, vec![1; 8])]]);
        let before = r.clone();
        let c = check_request(&mut r);
        assert_eq!((c.accepted, c.rejected), (2, 0));
        assert!(c.message.is_empty());
        assert_eq!(r, before);
    }

    #[test]
    fn invalid_spans_are_removed_and_named() {
        let mut short_trace = span(1, 3, vec![]);
        short_trace.trace_id = vec![1; 15];
        let mut r = req(vec![
            vec![
                span(1, 1, vec![]),
                short_trace,
                span(0, 4, vec![]),
                span(1, 0, vec![]),
                span(1, 5, vec![1; 3]),
            ],
            vec![span(0, 1, vec![])],
        ]);
        let c = check_request(&mut r);
        assert_eq!((c.accepted, c.rejected), (1, 5));
        assert!(c.message.starts_with("5 spans rejected: "), "{}", c.message);
        assert!(
            c.message
                .contains("resourceSpans[0].scopeSpans[0].spans[1]: trace id has 15 bytes"),
            "{}",
            c.message
        );
        assert!(c.message.contains("spans[2]: trace id is all zeros"));
        assert!(c.message.contains("spans[3]: span id is all zeros"));
        assert!(c.message.ends_with("; and 2 more"), "{}", c.message);
        // The resource left without spans is dropped; the valid span is kept.
        assert_eq!(r.resource_spans.len(), 1);
        assert_eq!(r.resource_spans[0].scope_spans[0].spans.len(), 1);
        assert_eq!(
            r.resource_spans[0].scope_spans[0].spans[0].span_id,
            vec![1; 8]
        );
    }

    #[test]
    fn a_bad_parent_id_is_a_problem() {
        assert_eq!(
            span_problem(&span(1, 1, vec![9; 4])).as_deref(),
            Some("parent span id has 4 bytes, expected 0 or 8")
        );
    }
}
