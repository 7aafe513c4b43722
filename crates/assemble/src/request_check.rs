//! Strict read-only check of an *encoded* `ExportTraceServiceRequest`, for the receiver's ack
//! path: walks every field of every message of the OTLP trace schema without allocating, checks
//! what prost's decoder checks (wire types of known fields, lengths, varints, UTF-8 of strings,
//! nesting depth) and counts spans with valid and invalid ids. A request it accepts decodes with
//! prost; it may reject a few that prost accepts (unknown fields of the group wire types, nesting
//! deeper than prost's limit allows by a margin), so a caller falls back to a full decode on error.

use crate::encoded_spans::{Reader, WireError};
use std::ops::Range;
use traj_schema::ids;

/// Spans of a well-formed request, by whether their ids are acceptable (trace id 16 bytes, not
/// all zero; span id 8 bytes, not all zero; parent span id empty or 8 bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodedCheck {
    pub valid_spans: u64,
    pub invalid_spans: u64,
}

/// prost's default recursion limit.
const MAX_DEPTH: u32 = 100;

/// The messages of the OTLP trace request schema (opentelemetry-proto 1.x).
#[derive(Clone, Copy, PartialEq, Eq)]
enum M {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

/// What a known field holds.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Msg(M),
}

impl Kind {
    fn wire_type(self) -> u64 {
        match self {
            Kind::Varint => 0,
            Kind::Fixed64 => 1,
            Kind::Fixed32 => 5,
            Kind::Bytes | Kind::Str | Kind::Msg(_) => 2,
        }
    }
}

/// The kind of field `num` of `m`; `None` for unknown fields (skipped, as prost does).
fn kind(m: M, num: u64) -> Option<Kind> {
    use Kind::*;
    Some(match (m, num) {
        (M::Request, 1) => Msg(M::ResourceSpans),
        (M::ResourceSpans, 1) => Msg(M::Resource),
        (M::ResourceSpans, 2) => Msg(M::ScopeSpans),
        (M::ResourceSpans | M::ScopeSpans, 3) => Str,
        (M::Resource, 1) => Msg(M::KeyValue),
        (M::Resource, 2) => Varint,
        (M::Resource, 3) => Msg(M::EntityRef),
        (M::EntityRef, 1..=4) => Str,
        (M::ScopeSpans, 1) => Msg(M::Scope),
        (M::ScopeSpans, 2) => Msg(M::Span),
        (M::Scope, 1 | 2) => Str,
        (M::Scope, 3) => Msg(M::KeyValue),
        (M::Scope, 4) => Varint,
        (M::Span, 1 | 2 | 4) => Bytes,
        (M::Span, 3 | 5) => Str,
        (M::Span, 6 | 10 | 12 | 14) => Varint,
        (M::Span, 7 | 8) => Fixed64,
        (M::Span, 9) => Msg(M::KeyValue),
        (M::Span, 11) => Msg(M::Event),
        (M::Span, 13) => Msg(M::Link),
        (M::Span, 15) => Msg(M::Status),
        (M::Span, 16) => Fixed32,
        (M::Event, 1) => Fixed64,
        (M::Event, 2) => Str,
        (M::Event, 3) => Msg(M::KeyValue),
        (M::Event, 4) => Varint,
        (M::Link, 1 | 2) => Bytes,
        (M::Link, 3) => Str,
        (M::Link, 4) => Msg(M::KeyValue),
        (M::Link, 5) => Varint,
        (M::Link, 6) => Fixed32,
        (M::Status, 2) => Str,
        (M::Status, 3) => Varint,
        (M::KeyValue, 1) => Str,
        (M::KeyValue, 2) => Msg(M::AnyValue),
        (M::KeyValue, 3) => Varint,
        (M::AnyValue, 1) => Str,
        (M::AnyValue, 2 | 3 | 8) => Varint,
        (M::AnyValue, 4) => Fixed64,
        (M::AnyValue, 5) => Msg(M::ArrayValue),
        (M::AnyValue, 6) => Msg(M::KvList),
        (M::AnyValue, 7) => Bytes,
        (M::ArrayValue, 1) => Msg(M::AnyValue),
        (M::KvList, 1) => Msg(M::KeyValue),
        _ => return None,
    })
}

/// The id fields of one span (last occurrence wins, as in prost).
#[derive(Default)]
struct Ids {
    trace: Range<usize>,
    span: Range<usize>,
    parent: Range<usize>,
}

fn walk(
    buf: &[u8],
    range: Range<usize>,
    m: M,
    depth: u32,
    ids: &mut Ids,
    out: &mut EncodedCheck,
) -> Result<(), WireError> {
    let mut r = Reader {
        buf,
        pos: range.start,
        end: range.end,
    };
    if depth > MAX_DEPTH {
        return Err(r.err("recursion limit reached"));
    }
    while let Some((num, wt, payload)) = r.field_typed()? {
        let Some(k) = kind(m, num) else { continue };
        if k.wire_type() != wt {
            return Err(r.err("invalid wire type for a known field"));
        }
        let Some(p) = payload else { continue };
        match k {
            Kind::Str if std::str::from_utf8(&buf[p.clone()]).is_err() => {
                return Err(r.err("invalid UTF-8 in a string field"));
            }
            Kind::Bytes if m == M::Span => match num {
                1 => ids.trace = p,
                2 => ids.span = p,
                _ => ids.parent = p,
            },
            Kind::Msg(M::Span) => {
                let mut span = Ids::default();
                walk(buf, p, M::Span, depth + 1, &mut span, out)?;
                let ok =
                    ids::span_ids_problem(&buf[span.trace], &buf[span.span], &buf[span.parent])
                        .is_none();
                if ok {
                    out.valid_spans += 1;
                } else {
                    out.invalid_spans += 1;
                }
            }
            Kind::Msg(inner) => walk(buf, p, inner, depth + 1, &mut Ids::default(), out)?,
            _ => {}
        }
    }
    Ok(())
}

/// Checks an encoded `ExportTraceServiceRequest` without decoding it (see the module doc).
pub fn check_encoded_request(buf: &[u8]) -> Result<EncodedCheck, WireError> {
    let mut out = EncodedCheck::default();
    walk(
        buf,
        0..buf.len(),
        M::Request,
        0,
        &mut Ids::default(),
        &mut out,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(t: u8, s: u8, parent: Vec<u8>) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            parent_span_id: parent,
            name: "step".into(),
            kind: 2,
            start_time_unix_nano: 5,
            end_time_unix_nano: 9,
            attributes: vec![
                kv("s", Value::StringValue("héllo".into())),
                kv("i", Value::IntValue(-3)),
                kv("d", Value::DoubleValue(1.5)),
                kv("b", Value::BoolValue(true)),
                kv("x", Value::BytesValue(vec![0xff, 0])),
                kv(
                    "a",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::KvlistValue(KeyValueList {
                                values: vec![kv("n", Value::IntValue(1))],
                            })),
                        }],
                    }),
                ),
            ],
            events: vec![span::Event {
                time_unix_nano: 7,
                name: "e".into(),
                attributes: vec![kv("k", Value::StringValue("v".into()))],
                dropped_attributes_count: 1,
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                flags: 1,
                ..Default::default()
            }],
            status: Some(Status {
                message: "ok".into(),
                code: 1,
            }),
            flags: 257,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("agent".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    schema_url: "u".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn counts_valid_and_invalid_spans() {
        let mut zero_trace = span(0, 2, vec![]);
        zero_trace.trace_id = vec![0; 16];
        let bytes = request(vec![
            span(1, 1, vec![]),
            span(1, 2, vec![1; 8]),
            span(1, 3, vec![1; 3]),
            zero_trace,
            span(1, 0, vec![]),
        ])
        .encode_to_vec();
        let c = check_encoded_request(&bytes).unwrap();
        assert_eq!(
            c,
            EncodedCheck {
                valid_spans: 2,
                invalid_spans: 3
            }
        );
    }

    #[test]
    fn accepts_only_what_prost_accepts() {
        let good = request(vec![span(1, 1, vec![]), span(1, 2, vec![1; 8])]).encode_to_vec();
        assert!(check_encoded_request(&good).is_ok());
        // Every truncation and every single-byte corruption: if the walk accepts, prost must too.
        let mut accepted_mutants = 0;
        for cut in 0..good.len() {
            if check_encoded_request(&good[..cut]).is_ok() {
                assert!(
                    ExportTraceServiceRequest::decode(&good[..cut]).is_ok(),
                    "cut {cut}"
                );
            }
        }
        for i in 0..good.len() {
            for x in [0x00u8, 0x01, 0x07, 0x80, 0xc3, 0xff] {
                let mut b = good.clone();
                b[i] = x;
                if check_encoded_request(&b).is_ok() {
                    accepted_mutants += 1;
                    assert!(
                        ExportTraceServiceRequest::decode(b.as_slice()).is_ok(),
                        "byte {i} = {x:#x}"
                    );
                }
            }
        }
        assert!(accepted_mutants > 0, "some mutants are still well formed");
    }

    #[test]
    fn rejects_bad_utf8_and_wrong_wire_types() {
        let mut s = span(1, 1, vec![]);
        s.name = "NAME".into();
        let good = request(vec![s]).encode_to_vec();
        let at = good.windows(4).position(|w| w == b"NAME").unwrap();
        let mut bad = good.clone();
        bad[at] = 0xff;
        assert!(ExportTraceServiceRequest::decode(bad.as_slice()).is_err());
        let e = check_encoded_request(&bad).unwrap_err();
        assert!(e.what.contains("UTF-8"), "{e}");
        // Span.kind (field 6) sent as fixed32 instead of a varint.
        let bytes = [0x0a, 0x09, 0x12, 0x07, 0x12, 0x05, 0x35, 0, 0, 0, 0];
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
        assert!(check_encoded_request(&bytes).is_err());
        assert!(check_encoded_request(&[0x0b]).is_err(), "group wire type");
    }
}
