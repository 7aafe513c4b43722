//! Lazy split of an *encoded* `ExportTraceServiceRequest` by trace: walks the protobuf wire format
//! and returns, per span, its trace id, span id, whether it has a parent, and the byte range of its
//! encoding, without decoding attributes (no allocation per attribute). The receiver's run manager
//! holds spans this way until a run is finalized, then decodes each span once for assembly.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use traj_schema::ids::{self, SpanId, TraceId};

/// One span of an encoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSpan {
    /// Where the span's `Span` message sits in the request bytes.
    pub range: Range<usize>,
    pub span_id: SpanId,
    /// The span has no parent ([`ids::is_root`]: `parent_span_id` empty or all zero).
    pub is_root: bool,
    /// `service.name` of the span's resource ("" when absent).
    pub service_name: Arc<str>,
}

/// Spans of an encoded request grouped by trace, in first-seen order; spans with invalid ids
/// ([`ids::span_ids_problem`]) are counted in `invalid_spans` and left out (as [`crate::split_by_trace`] does).
#[derive(Debug, Default)]
pub struct EncodedTraces {
    pub traces: Vec<(TraceId, Vec<EncodedSpan>)>,
    pub invalid_spans: u64,
}

/// The bytes are not a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {at}: {what}")]
pub struct WireError {
    pub at: usize,
    pub what: &'static str,
}

/// A field's number and, for a length-delimited field, the range of its payload.
type Field = (u64, Option<Range<usize>>);

/// A field's number, wire type and, for a length-delimited field, the range of its payload.
pub(crate) type TypedField = (u64, u64, Option<Range<usize>>);

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn err(&self, what: &'static str) -> WireError {
        WireError { at: self.pos, what }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.end) else {
                return Err(self.err("truncated varint"));
            };
            if shift == 63 && b > 1 {
                // prost rejects a tenth byte above 1 (the value would overflow 64 bits).
                return Err(self.err("varint overflows 64 bits"));
            }
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    /// Next (field number, range of a length-delimited payload), or `None` at the end.
    fn field(&mut self) -> Result<Option<Field>, WireError> {
        Ok(self.field_typed()?.map(|(num, _, range)| (num, range)))
    }

    /// Next (field number, wire type, range of a length-delimited payload), or `None` at the end.
    /// Rejects field number 0 and numbers above 2^29 - 1, as prost does.
    pub(crate) fn field_typed(&mut self) -> Result<Option<TypedField>, WireError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wt) = (key >> 3, key & 7);
        if num == 0 || num > (1 << 29) - 1 {
            return Err(self.err("invalid field number"));
        }
        let skip = |r: &mut Self, n: usize| {
            if r.end - r.pos < n {
                return Err(r.err("truncated field"));
            }
            r.pos += n;
            Ok(None)
        };
        let range = match wt {
            0 => {
                self.varint()?;
                None
            }
            1 => skip(self, 8)?,
            5 => skip(self, 4)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.err("length"))?;
                if self.end - self.pos < len {
                    return Err(self.err("truncated length-delimited field"));
                }
                let r = self.pos..self.pos + len;
                self.pos += len;
                Some(r)
            }
            _ => return Err(self.err("unsupported wire type")),
        };
        Ok(Some((num, wt, range)))
    }
}

/// A reader over `r` of `buf`.
fn sub(buf: &[u8], r: Range<usize>) -> Reader<'_> {
    Reader {
        buf,
        pos: r.start,
        end: r.end,
    }
}

/// Fields of one message as (number, payload range) for its length-delimited fields.
fn each_len_field(
    r: &mut Reader<'_>,
    mut f: impl FnMut(u64, Range<usize>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    while let Some((num, range)) = r.field()? {
        if let Some(range) = range {
            f(num, range)?;
        }
    }
    Ok(())
}

/// `service.name` among a `Resource`'s attributes (field 1, `KeyValue`; its value's field 1 is
/// `string_value`).
fn service_name(buf: &[u8], resource: Range<usize>) -> Result<Option<String>, WireError> {
    let mut found = None;
    let mut r = Reader {
        buf,
        pos: resource.start,
        end: resource.end,
    };
    each_len_field(&mut r, |num, kv| {
        if num != 1 || found.is_some() {
            return Ok(());
        }
        let mut key: &[u8] = &[];
        let mut value = None;
        let mut k = Reader {
            buf,
            pos: kv.start,
            end: kv.end,
        };
        each_len_field(&mut k, |n, x| {
            match n {
                1 => key = &buf[x],
                2 => value = Some(x),
                _ => {}
            }
            Ok(())
        })?;
        if key == b"service.name" {
            if let Some(v) = value {
                let mut a = Reader {
                    buf,
                    pos: v.start,
                    end: v.end,
                };
                each_len_field(&mut a, |n, s| {
                    if n == 1 {
                        found = Some(String::from_utf8_lossy(&buf[s]).into_owned());
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// Splits an encoded `ExportTraceServiceRequest` by trace without decoding span contents.
pub fn split_encoded_by_trace(buf: &[u8]) -> Result<EncodedTraces, WireError> {
    let mut out = EncodedTraces::default();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    let mut top = Reader {
        buf,
        pos: 0,
        end: buf.len(),
    };
    each_len_field(&mut top, |num, rs| {
        if num != 1 {
            return Ok(());
        }
        // ResourceSpans: 1 resource, 2 scope_spans. The resource may follow the scopes on the
        // wire, so collect scope ranges first.
        let mut service: Option<String> = None;
        let mut scopes: Vec<Range<usize>> = Vec::new();
        let mut r = sub(buf, rs);
        each_len_field(&mut r, |n, x| {
            match n {
                1 => service = service_name(buf, x)?,
                2 => scopes.push(x),
                _ => {}
            }
            Ok(())
        })?;
        let service: Arc<str> = service.unwrap_or_default().into();
        for ss in scopes {
            let mut s = sub(buf, ss);
            each_len_field(&mut s, |n, span| {
                if n != 2 {
                    return Ok(());
                }
                let (mut tid, mut sid, mut parent) = (0..0, 0..0, 0..0);
                let mut f = sub(buf, span.clone());
                each_len_field(&mut f, |k, x| {
                    match k {
                        1 => tid = x,
                        2 => sid = x,
                        4 => parent = x,
                        _ => {}
                    }
                    Ok(())
                })?;
                let (tid, sid, parent) = (&buf[tid], &buf[sid], &buf[parent]);
                let valid = ids::span_ids_problem(tid, sid, parent).is_none();
                match (ids::trace_id(tid), ids::span_id(sid)) {
                    (Some(t), Some(span_id)) if valid => {
                        let slot = *index.entry(t).or_insert_with(|| {
                            out.traces.push((t, Vec::new()));
                            out.traces.len() - 1
                        });
                        out.traces[slot].1.push(EncodedSpan {
                            range: span,
                            span_id,
                            is_root: ids::is_root(parent),
                            service_name: Arc::clone(&service),
                        });
                    }
                    _ => out.invalid_spans += 1,
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split_by_trace;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn span(t: u8, s: u8, parent: u8, attrs: usize) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: format!("span {s}"),
            start_time_unix_nano: 17,
            attributes: (0..attrs)
                .map(|i| KeyValue {
                    key: format!("k{i}"),
                    value: Some(AnyValue {
                        value: Some(Value::IntValue(i as i64)),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let svc = |name: &str| Resource {
            attributes: vec![
                KeyValue {
                    key: "host".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("h".into())),
                    }),
                    ..Default::default()
                },
                KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(name.into())),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut bad = span(3, 9, 0, 0);
        bad.span_id = vec![1, 2, 3];
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(svc("agent")),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(1, 1, 0, 3), span(2, 2, 0, 0), span(1, 3, 1, 5), bad],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(2, 4, 2, 1), span(0, 5, 0, 0)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn agrees_with_the_decoding_split() {
        let req = request();
        let bytes = req.encode_to_vec();
        let lazy = split_encoded_by_trace(&bytes).unwrap();
        let full = split_by_trace(req);
        assert_eq!(lazy.invalid_spans, full.invalid_spans);
        assert_eq!(lazy.invalid_spans, 2);
        assert_eq!(lazy.traces.len(), full.traces.len());
        for ((lt, ls), (ft, fs)) in lazy.traces.iter().zip(&full.traces) {
            assert_eq!(lt, ft);
            assert_eq!(ls.len(), fs.len());
            for (l, f) in ls.iter().zip(fs) {
                assert_eq!(Span::decode(&bytes[l.range.clone()]).unwrap(), f.span);
                assert_eq!(l.service_name, f.service_name);
                assert_eq!(l.is_root, f.span.parent_span_id.is_empty());
                assert_eq!(l.span_id.to_vec(), f.span.span_id);
            }
        }
        assert_eq!(&*lazy.traces[0].1[0].service_name, "agent");
        assert_eq!(&*lazy.traces[1].1[1].service_name, "");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = request().encode_to_vec();
        for cut in 1..bytes.len() {
            // Every prefix either parses (a cut between top-level fields) or errors.
            let _ = split_encoded_by_trace(&bytes[..cut]);
        }
        let e = split_encoded_by_trace(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(e.to_string().contains("malformed protobuf"), "{e}");
        assert!(split_encoded_by_trace(&[0x0b]).is_err(), "group wire type");
    }
}
