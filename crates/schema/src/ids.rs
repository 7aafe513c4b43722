//! OTLP trace and span ids: the one definition of which ids are valid, shared by the receiver
//! (which rejects spans), the encoded-request walkers and assembly (which skip them), and the run
//! directory naming (a run id is the hex trace id).
//!
//! The rules follow the OTLP / W3C Trace Context specification:
//! - a trace id is 16 bytes, not all zero;
//! - a span id is 8 bytes, not all zero;
//! - a parent span id is empty (a root span) or 8 bytes. The all-zero 8-byte parent some
//!   exporters send for "no parent" is accepted and means the same as an empty one
//!   ([`parent_span_id`] returns `None` for both), so such spans are not dropped.
//!
//! Log records differ: there both ids are optional (empty, or all zero, means "none").

/// Length in bytes of an OTLP trace id.
pub const TRACE_ID_LEN: usize = 16;
/// Length in bytes of an OTLP span id.
pub const SPAN_ID_LEN: usize = 8;

/// A valid trace id.
pub type TraceId = [u8; TRACE_ID_LEN];
/// A valid span id.
pub type SpanId = [u8; SPAN_ID_LEN];

/// Whether `b` is a valid trace id: 16 bytes, not all zero.
pub fn valid_trace_id(b: &[u8]) -> bool {
    trace_id(b).is_some()
}

/// Whether `b` is a valid span id: 8 bytes, not all zero.
pub fn valid_span_id(b: &[u8]) -> bool {
    span_id(b).is_some()
}

/// Whether `b` is an acceptable parent span id: empty (a root) or 8 bytes.
pub fn valid_parent_span_id(b: &[u8]) -> bool {
    b.is_empty() || b.len() == SPAN_ID_LEN
}

/// `b` as a trace id, or `None` when it is not a valid one.
pub fn trace_id(b: &[u8]) -> Option<TraceId> {
    let id: TraceId = b.try_into().ok()?;
    (id != [0; TRACE_ID_LEN]).then_some(id)
}

/// `b` as a span id, or `None` when it is not a valid one.
pub fn span_id(b: &[u8]) -> Option<SpanId> {
    let id: SpanId = b.try_into().ok()?;
    (id != [0; SPAN_ID_LEN]).then_some(id)
}

/// The parent named by an (acceptable, see [`valid_parent_span_id`]) parent span id field:
/// `None` for a root (empty or all-zero field) and for a malformed one.
pub fn parent_span_id(b: &[u8]) -> Option<SpanId> {
    span_id(b)
}

/// Whether a span with this parent span id field is a root span (no parent).
pub fn is_root(parent_span_id_field: &[u8]) -> bool {
    parent_span_id(parent_span_id_field).is_none()
}

/// What makes the ids of a span invalid; its `Display` is the message the receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    #[error("trace id has {0} bytes, expected 16")]
    TraceIdLength(usize),
    #[error("trace id is all zeros")]
    TraceIdZero,
    #[error("span id has {0} bytes, expected 8")]
    SpanIdLength(usize),
    #[error("span id is all zeros")]
    SpanIdZero,
    #[error("parent span id has {0} bytes, expected 0 or 8")]
    ParentSpanIdLength(usize),
}

/// The first problem with a span's ids (trace id, span id, parent span id fields as carried by
/// OTLP), or `None` when the span may be kept.
pub fn span_ids_problem(trace: &[u8], span: &[u8], parent: &[u8]) -> Option<IdProblem> {
    if trace.len() != TRACE_ID_LEN {
        return Some(IdProblem::TraceIdLength(trace.len()));
    }
    if !valid_trace_id(trace) {
        return Some(IdProblem::TraceIdZero);
    }
    if span.len() != SPAN_ID_LEN {
        return Some(IdProblem::SpanIdLength(span.len()));
    }
    if !valid_span_id(span) {
        return Some(IdProblem::SpanIdZero);
    }
    if !valid_parent_span_id(parent) {
        return Some(IdProblem::ParentSpanIdLength(parent.len()));
    }
    None
}

/// The lowercase hex form of a valid trace id (which is also its run id), or `None`.
pub fn trace_id_hex(b: &[u8]) -> Option<String> {
    trace_id(b).map(hex::encode)
}

/// The lowercase hex form of a valid span id, or `None`.
pub fn span_id_hex(b: &[u8]) -> Option<String> {
    span_id(b).map(hex::encode)
}

/// Whether `s` is the hex form of a valid trace id: 32 lowercase hex digits, not all zero.
/// Run ids are exactly these (they name directories, so nothing else may pass).
pub fn valid_trace_id_hex(s: &str) -> bool {
    valid_hex(s, TRACE_ID_LEN)
}

/// Whether `s` is the hex form of a valid span id: 16 lowercase hex digits, not all zero.
pub fn valid_span_id_hex(s: &str) -> bool {
    valid_hex(s, SPAN_ID_LEN)
}

fn valid_hex(s: &str, bytes: usize) -> bool {
    s.len() == 2 * bytes
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids() {
        assert!(valid_trace_id(&[1; 16]));
        assert!(!valid_trace_id(&[0; 16]));
        assert!(!valid_trace_id(&[1; 15]));
        assert!(!valid_trace_id(&[1; 17]));
        assert!(!valid_trace_id(&[]));
        assert_eq!(trace_id(&[7; 16]), Some([7; 16]));
        assert_eq!(
            trace_id_hex(&[0xab; 16]).as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(trace_id_hex(&[0; 16]), None);
    }

    #[test]
    fn span_ids() {
        assert!(valid_span_id(&[1; 8]));
        assert!(!valid_span_id(&[0; 8]));
        assert!(!valid_span_id(&[1; 7]));
        assert!(!valid_span_id(&[]));
        assert_eq!(span_id(&[3; 8]), Some([3; 8]));
        assert_eq!(span_id_hex(&[0x0f; 8]).as_deref(), Some("0f0f0f0f0f0f0f0f"));
    }

    #[test]
    fn parent_span_ids() {
        assert!(valid_parent_span_id(&[]));
        assert!(valid_parent_span_id(&[2; 8]));
        assert!(valid_parent_span_id(&[0; 8]));
        assert!(!valid_parent_span_id(&[2; 4]));
        assert!(is_root(&[]));
        assert!(is_root(&[0; 8]));
        assert!(!is_root(&[2; 8]));
        assert_eq!(parent_span_id(&[2; 8]), Some([2; 8]));
    }

    #[test]
    fn span_problems_in_order_with_messages() {
        let ok = span_ids_problem(&[1; 16], &[1; 8], &[]);
        assert_eq!(ok, None);
        let cases = [
            (
                span_ids_problem(&[1; 15], &[0; 8], &[1]),
                "trace id has 15 bytes, expected 16",
            ),
            (
                span_ids_problem(&[0; 16], &[0; 8], &[]),
                "trace id is all zeros",
            ),
            (
                span_ids_problem(&[1; 16], &[1; 3], &[]),
                "span id has 3 bytes, expected 8",
            ),
            (
                span_ids_problem(&[1; 16], &[0; 8], &[]),
                "span id is all zeros",
            ),
            (
                span_ids_problem(&[1; 16], &[1; 8], &[9; 4]),
                "parent span id has 4 bytes, expected 0 or 8",
            ),
        ];
        for (problem, message) in cases {
            assert_eq!(problem.map(|p| p.to_string()).as_deref(), Some(message));
        }
    }

    #[test]
    fn hex_forms() {
        assert!(valid_trace_id_hex("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!valid_trace_id_hex("4BF92F3577B34DA6A3CE929D0E0E4736"));
        assert!(!valid_trace_id_hex("00000000000000000000000000000000"));
        assert!(!valid_trace_id_hex("4bf92f3577b34da6a3ce929d0e0e473"));
        assert!(!valid_trace_id_hex("../../etc"));
        assert!(valid_span_id_hex("00f067aa0ba902b7"));
        assert!(!valid_span_id_hex("0000000000000000"));
        assert!(!valid_span_id_hex("00f067aa0ba902b"));
    }
}
