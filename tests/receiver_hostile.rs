//! Hostile and broken input against a real in-process receiver on 127.0.0.1: one table of cases
//! (transport, headers, body, expected status, runs that must survive), each followed by a
//! valid request and `/healthz` to prove the process is alive. The case list is documented in
//! `docs/reliability.md` ("Hostile input").

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use traj_receiver::{Fsync, Receiver, ReceiverConfig};

/// The request size limit of the suite (after decompression).
const LIMIT: usize = 8 << 20;
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// ---------------------------------------------------------------------------------------------
// Span and body builders
// ---------------------------------------------------------------------------------------------

fn trace_id(t: u8) -> Vec<u8> {
    let mut v = vec![0xab; 16];
    v[15] = t;
    v
}

fn span_id(s: u32) -> Vec<u8> {
    let mut v = vec![0x01; 8];
    v[4..].copy_from_slice(&s.to_be_bytes());
    v
}

fn str_attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Span `s` of trace `t` with parent `p` (0 = root).
fn span(t: u8, s: u32, p: u32) -> Span {
    let base = 1_764_000_000_000_000_000u64;
    Span {
        trace_id: trace_id(t),
        span_id: span_id(s),
        parent_span_id: if p == 0 { vec![] } else { span_id(p) },
        name: format!("span {s}"),
        kind: 1,
        start_time_unix_nano: base + u64::from(s) * 1_000,
        end_time_unix_nano: base + u64::from(s) * 1_000 + 500,
        attributes: vec![str_attr("test.attr", "x")],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_attr("service.name", "hostile-test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn pb(spans: Vec<Span>) -> Vec<u8> {
    request(spans).encode_to_vec()
}

/// OTLP/JSON with the given raw `traceId` string for every span.
fn json_with_trace_id(trace_id: &str, spans: &[Span]) -> Vec<u8> {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            serde_json::json!({
                "traceId": trace_id,
                "spanId": hex::encode(&s.span_id),
                "parentSpanId": hex::encode(&s.parent_span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hostile-test"}}]},
            "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]
        }]
    })
    .to_string()
    .into_bytes()
}

fn json(spans: &[Span]) -> Vec<u8> {
    let id = hex::encode(&spans[0].trace_id);
    json_with_trace_id(&id, spans)
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An `AnyValue` nested `depth` levels deep (alternating arrayValue / kvlistValue), encoded
/// without recursion: lengths bottom-up, then headers top-down.
fn nested_any_value(depth: usize) -> Vec<u8> {
    let leaf = [0x0a, 0x01, b'x']; // AnyValue { string_value: "x" }
    let mut headers: Vec<Vec<u8>> = Vec::with_capacity(depth);
    let mut inner = leaf.len();
    for level in 0..depth {
        let mut h = Vec::new();
        if level % 2 == 0 {
            // AnyValue { array_value: ArrayValue { values: [inner] } }
            let mut arr = vec![0x0a];
            put_varint(&mut arr, inner);
            h.push(0x2a);
            put_varint(&mut h, arr.len() + inner);
            h.extend(arr);
        } else {
            // AnyValue { kvlist_value: KeyValueList { values: [KeyValue { key: "k", value: inner }] } }
            let mut kv = vec![0x0a, 0x01, b'k', 0x12];
            put_varint(&mut kv, inner);
            let kv_len = kv.len() + inner;
            let mut kvl = vec![0x0a];
            put_varint(&mut kvl, kv_len);
            h.push(0x32);
            put_varint(&mut h, kvl.len() + kv_len);
            h.extend(kvl);
            h.extend(kv);
        }
        inner += h.len();
        headers.push(h);
    }
    let mut out = Vec::with_capacity(inner);
    for h in headers.iter().rev() {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(&leaf);
    out
}

/// A request whose span `s` of trace `t` carries attribute `deep` nested `depth` levels.
fn pb_nested(t: u8, depth: usize) -> Vec<u8> {
    let value = nested_any_value(depth);
    let mut kv = vec![0x0a, 0x04];
    kv.extend_from_slice(b"deep");
    kv.push(0x12);
    put_varint(&mut kv, value.len());
    kv.extend(value);
    let mut span_bytes = span(t, 1, 0).encode_to_vec();
    span_bytes.push(0x4a); // Span.attributes (9), appended: repeated fields may come in any order
    put_varint(&mut span_bytes, kv.len());
    span_bytes.extend(kv);
    let wrap = |tag: u8, inner: Vec<u8>| {
        let mut o = vec![tag];
        put_varint(&mut o, inner.len());
        o.extend(inner);
        o
    };
    // ScopeSpans.spans (2) -> ResourceSpans.scope_spans (2) -> request.resource_spans (1)
    wrap(0x0a, wrap(0x12, wrap(0x12, span_bytes)))
}

/// OTLP/JSON with an attribute nested `depth` arrayValue levels deep.
fn json_nested(t: u8, depth: usize) -> Vec<u8> {
    let open = r#"{"arrayValue":{"values":["#;
    let close = "]}}";
    let mut v = String::with_capacity(depth * (open.len() + close.len()) + 32);
    for _ in 0..depth {
        v.push_str(open);
    }
    v.push_str(r#"{"stringValue":"x"}"#);
    for _ in 0..depth {
        v.push_str(close);
    }
    let s = span(t, 1, 0);
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"{}","name":"n","startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{{"key":"deep","value":{v}}}]}}]}}]}}]}}"#,
        hex::encode(&s.trace_id),
        hex::encode(&s.span_id),
        s.start_time_unix_nano,
        s.end_time_unix_nano
    )
    .into_bytes()
}

/// A valid request whose span name is then overwritten with invalid UTF-8 in place.
fn pb_non_utf8(t: u8) -> Vec<u8> {
    let mut s = span(t, 1, 0);
    s.name = "@@MARK@@".into();
    let mut bytes = pb(vec![s]);
    let at = bytes
        .windows(8)
        .position(|w| w == b"@@MARK@@")
        .expect("marker");
    bytes[at..at + 8].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28]);
    bytes
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A gRPC codec that sends and receives bytes as they are (to send broken messages).
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEnc;
struct RawDec;

impl Encoder for RawEnc {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

async fn grpc_channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Sends `body` as the Export request message; returns the response message bytes or status.
async fn grpc_raw(
    ch: &tonic::transport::Channel,
    body: Vec<u8>,
    gzip: bool,
    metadata: &[(&'static str, String)],
) -> Result<Vec<u8>, tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch.clone());
    if gzip {
        g = g.send_compressed(CompressionEncoding::Gzip);
    }
    g.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let mut req = tonic::Request::new(body);
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
    g.unary(req, path, RawCodec).await.map(|r| r.into_inner())
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection; the body is written while the response is read
/// (the server may answer before reading it all).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpResponse {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(&body).await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut raw = Vec::new();
    let _ = rd.read_to_end(&mut raw).await;
    let _ = writer.await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

enum Via {
    /// OTLP/gRPC, the message bytes as given (optionally gzip-compressed by the client).
    Grpc { gzip: bool },
    /// OTLP/HTTP with these Content-Type and Content-Encoding headers (`""`: header omitted).
    Http {
        content_type: &'static str,
        content_encoding: &'static str,
    },
}

const GRPC: Via = Via::Grpc { gzip: false };
const PROTO: Via = Via::Http {
    content_type: "application/x-protobuf",
    content_encoding: "",
};
const JSON: Via = Via::Http {
    content_type: "application/json",
    content_encoding: "",
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Accepted; the response's partial success names this many rejected spans.
    Ok { rejected: i64 },
    /// HTTP status (for HTTP cases).
    Http(u16),
    /// gRPC status code (for gRPC cases).
    Grpc(tonic::Code),
}

struct Case {
    name: &'static str,
    via: Via,
    body: Vec<u8>,
    expect: Expect,
    /// Runs that must appear and validate: (trace, exact span count).
    keeps: Vec<(u8, u64)>,
}

fn case(name: &'static str, via: Via, body: Vec<u8>, expect: Expect, keeps: &[(u8, u64)]) -> Case {
    Case {
        name,
        via,
        body,
        expect,
        keeps: keeps.to_vec(),
    }
}

/// Every hostile case. Trace ids 1..=99 belong to cases; 100 + i to the follow-up of case i.
fn cases() -> Vec<Case> {
    use tonic::Code;
    let ok = Expect::Ok { rejected: 0 };
    let valid = pb(vec![span(1, 1, 0), span(1, 2, 1)]);
    let truncated = valid[..valid.len() / 2].to_vec();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    // Bad ids mixed with valid spans: one request, 3 valid + 5 invalid.
    let mut zero_trace = span(10, 3, 0);
    zero_trace.trace_id = vec![0; 16];
    let mut zero_span = span(10, 4, 1);
    zero_span.span_id = vec![0; 8];
    let mut short_trace = span(10, 5, 1);
    short_trace.trace_id = vec![0xab; 15];
    let mut long_span = span(10, 6, 1);
    long_span.span_id = vec![1; 9];
    let mut bad_parent = span(10, 7, 1);
    bad_parent.parent_span_id = vec![1; 4];
    let mixed = pb(vec![
        span(10, 1, 0),
        zero_trace,
        zero_span,
        span(10, 2, 1),
        short_trace,
        long_span,
        bad_parent,
        span(10, 8, 2),
    ]);

    // Huge attribute value (6 MiB, under the 8 MiB limit).
    let mut huge_attr = span(20, 1, 0);
    huge_attr
        .attributes
        .push(str_attr("huge", &"y".repeat(6 << 20)));

    // 20 000 spans in one request: a root and a wide fan-out.
    let mut many = vec![span(21, 1, 0)];
    many.extend((2..=20_000u32).map(|s| span(21, s, 1)));

    // A trace with 3 000 roots.
    let roots: Vec<Span> = (1..=3_000u32).map(|s| span(22, s, 0)).collect();

    // Duplicates: the same two spans three times in one request.
    let dups = vec![
        span(23, 1, 0),
        span(23, 2, 1),
        span(23, 1, 0),
        span(23, 2, 1),
        span(23, 2, 1),
    ];

    // A two-span cycle (no root) and a self-parented span.
    let cycle = vec![span(24, 1, 2), span(24, 2, 1)];
    let self_ref = vec![span(25, 1, 1)];
    // A longer cycle hanging below a real root.
    let rooted_cycle = vec![
        span(26, 1, 0),
        span(26, 2, 4),
        span(26, 3, 2),
        span(26, 4, 3),
    ];

    // Clock skew: end before start, start in 1970, end at u64::MAX.
    let mut skew_a = span(27, 1, 0);
    std::mem::swap(
        &mut skew_a.start_time_unix_nano,
        &mut skew_a.end_time_unix_nano,
    );
    skew_a.end_time_unix_nano -= 1_000_000_000;
    let mut skew_b = span(27, 2, 1);
    skew_b.start_time_unix_nano = 0;
    let mut skew_c = span(27, 3, 1);
    skew_c.end_time_unix_nano = u64::MAX;

    // Over the limit: 9 MiB attribute.
    let mut over = span(30, 1, 0);
    over.attributes.push(str_attr("huge", &"z".repeat(9 << 20)));
    let over = pb(vec![over]);

    // Gzip bombs: 64 MiB (HTTP) and 32 MiB (gRPC) of zeros.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);

    // "../../etc/passwd" as 16 raw bytes: a legal id that becomes a hex directory name.
    let traversal_bytes = b"../../etc/passwd".to_vec();
    let mut traversal_span = span(0, 1, 0);
    traversal_span.trace_id = traversal_bytes.clone();

    vec![
        case(
            "grpc: truncated protobuf",
            GRPC,
            truncated.clone(),
            Expect::Grpc(Code::InvalidArgument),
            &[],
        ),
        case(
            "http/proto: truncated protobuf",
            PROTO,
            truncated,
            Expect::Http(400),
            &[],
        ),
        case(
            "grpc: garbage bytes",
            GRPC,
            garbage.clone(),
            Expect::Grpc(Code::InvalidArgument),
            &[],
        ),
        case(
            "http/proto: garbage bytes",
            PROTO,
            garbage.clone(),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: not JSON",
            JSON,
            b"{\"resourceSpans\": [".to_vec(),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: wrong types",
            JSON,
            br#"{"resourceSpans": 5}"#.to_vec(),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: protobuf body",
            JSON,
            valid.clone(),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: bad hex id",
            JSON,
            json_with_trace_id("zz", &[span(2, 1, 0)]),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: traceId ../../etc",
            JSON,
            json_with_trace_id("../../etc", &[span(2, 1, 0)]),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: traceId hex of ../../etc/passwd",
            JSON,
            json(&[traversal_span]),
            ok,
            &[],
        ),
        case(
            "http/json: 20-byte traceId, one valid span",
            JSON,
            {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&json(&[span(3, 1, 0), span(3, 2, 1)])).unwrap();
                v["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] =
                    "ab".repeat(20).into();
                v.to_string().into_bytes()
            },
            Expect::Ok { rejected: 1 },
            &[(3, 1)],
        ),
        case(
            "http: text/plain",
            Via::Http {
                content_type: "text/plain",
                content_encoding: "",
            },
            valid.clone(),
            Expect::Http(415),
            &[],
        ),
        case(
            "http: no content type",
            Via::Http {
                content_type: "",
                content_encoding: "",
            },
            valid.clone(),
            Expect::Http(415),
            &[],
        ),
        case(
            "http: content-encoding br",
            Via::Http {
                content_type: "application/x-protobuf",
                content_encoding: "br",
            },
            valid.clone(),
            Expect::Http(415),
            &[],
        ),
        case(
            "http: gzip header, plain body",
            Via::Http {
                content_type: "application/x-protobuf",
                content_encoding: "gzip",
            },
            valid.clone(),
            Expect::Http(400),
            &[],
        ),
        case("http/proto: empty body", PROTO, vec![], ok, &[]),
        case(
            "grpc: bad and all-zero ids mixed with valid spans",
            GRPC,
            mixed.clone(),
            Expect::Ok { rejected: 5 },
            &[(10, 3)],
        ),
        case(
            "http/proto: bad ids mixed (same spans again)",
            PROTO,
            mixed,
            Expect::Ok { rejected: 5 },
            &[(10, 3)],
        ),
        case(
            "grpc: 100 000 nested attribute levels",
            GRPC,
            pb_nested(4, 100_000),
            Expect::Grpc(Code::InvalidArgument),
            &[],
        ),
        case(
            "http/proto: 100 000 nested attribute levels",
            PROTO,
            pb_nested(4, 100_000),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: 100 000 nested arrays",
            JSON,
            json_nested(4, 100_000),
            Expect::Http(400),
            &[],
        ),
        case(
            "grpc: 30 nested levels (under prost's limit)",
            GRPC,
            pb_nested(11, 30),
            ok,
            &[(11, 1)],
        ),
        case(
            "http/json: 30 nested arrays (under serde_json's limit)",
            JSON,
            json_nested(12, 30),
            ok,
            &[(12, 1)],
        ),
        case(
            "grpc: non-UTF-8 string",
            GRPC,
            pb_non_utf8(5),
            Expect::Grpc(Code::InvalidArgument),
            &[],
        ),
        case(
            "http/proto: non-UTF-8 string",
            PROTO,
            pb_non_utf8(5),
            Expect::Http(400),
            &[],
        ),
        case(
            "http/json: invalid UTF-8 in JSON",
            JSON,
            {
                let mut b = json(&[span(5, 1, 0)]);
                let at = b.windows(6).position(|w| w == b"span 1").unwrap();
                b[at] = 0xff;
                b
            },
            Expect::Http(400),
            &[],
        ),
        case(
            "grpc: 6 MiB attribute value",
            GRPC,
            pb(vec![huge_attr.clone()]),
            ok,
            &[(20, 1)],
        ),
        case(
            "http/proto: 20 000 spans in one request",
            PROTO,
            pb(many),
            ok,
            &[(21, 20_000)],
        ),
        case(
            "grpc: 3 000 roots in one trace",
            GRPC,
            pb(roots),
            ok,
            &[(22, 3_000)],
        ),
        case(
            "http/json: duplicate spans",
            JSON,
            json(&dups),
            ok,
            &[(23, 2)],
        ),
        case(
            "grpc: two-span parent cycle",
            GRPC,
            pb(cycle),
            ok,
            &[(24, 2)],
        ),
        case(
            "http/proto: self-parented span",
            PROTO,
            pb(self_ref),
            ok,
            &[(25, 1)],
        ),
        case(
            "grpc: cycle below a root",
            GRPC,
            pb(rooted_cycle),
            ok,
            &[(26, 4)],
        ),
        case(
            "http/proto: clock skew",
            PROTO,
            pb(vec![skew_a, skew_b, skew_c]),
            ok,
            &[(27, 3)],
        ),
        case(
            "grpc: over the size limit",
            GRPC,
            over.clone(),
            Expect::Grpc(Code::ResourceExhausted),
            &[],
        ),
        case(
            "http/proto: over the size limit",
            PROTO,
            over,
            Expect::Http(413),
            &[],
        ),
        case(
            "http/proto: gzip bomb",
            Via::Http {
                content_type: "application/x-protobuf",
                content_encoding: "gzip",
            },
            bomb,
            Expect::Http(413),
            &[],
        ),
        case(
            "grpc: gzip bomb",
            Via::Grpc { gzip: true },
            vec![0u8; 32 << 20],
            Expect::Grpc(Code::ResourceExhausted),
            &[],
        ),
    ]
}

fn test_config(dir: &Path) -> ReceiverConfig {
    let mut cfg = ReceiverConfig::new(dir);
    cfg.grpc_addr = Some("127.0.0.1:0".parse().unwrap());
    cfg.http_addr = Some("127.0.0.1:0".parse().unwrap());
    cfg.fsync = Fsync::Never;
    cfg.max_request_bytes = LIMIT;
    cfg.grace_period = Duration::from_millis(200);
    // Rootless (cyclic) traces are finalized by the idle timeout.
    cfg.idle_timeout = Duration::from_secs(1);
    cfg
}

fn rejected_in(resp: &ExportTraceServiceResponse) -> i64 {
    resp.partial_success
        .as_ref()
        .map_or(0, |p| p.rejected_spans)
}

/// Sends one case and checks the documented outcome; returns a description on mismatch.
async fn send_case(rx: &Receiver, i: usize, c: &Case) -> Result<(), String> {
    let follow_up = 100 + u8::try_from(i).map_err(|e| e.to_string())?;
    match &c.via {
        Via::Grpc { gzip } => {
            let ch = grpc_channel(rx.grpc_addr().unwrap()).await;
            let got = grpc_raw(&ch, c.body.clone(), *gzip, &[]).await;
            match (got, c.expect) {
                (Ok(bytes), Expect::Ok { rejected }) => {
                    let resp = ExportTraceServiceResponse::decode(bytes.as_slice())
                        .map_err(|e| format!("bad response: {e}"))?;
                    if rejected_in(&resp) != rejected {
                        return Err(format!(
                            "rejected {} != {rejected}: {resp:?}",
                            rejected_in(&resp)
                        ));
                    }
                }
                (Err(st), Expect::Grpc(code)) if st.code() == code => {}
                (got, want) => return Err(format!("got {got:?}, want {want:?}")),
            }
            // Follow-up on the same channel: the connection and the process still work.
            let t = follow_up;
            let bytes = grpc_raw(&ch, pb(vec![span(t, 1, 0)]), false, &[])
                .await
                .map_err(|e| format!("follow-up failed: {e}"))?;
            ExportTraceServiceResponse::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
        }
        Via::Http {
            content_type,
            content_encoding,
        } => {
            let mut headers = Vec::new();
            if !content_type.is_empty() {
                headers.push(("Content-Type", *content_type));
            }
            if !content_encoding.is_empty() {
                headers.push(("Content-Encoding", *content_encoding));
            }
            let addr = rx.http_addr().unwrap();
            let r = http(addr, "POST", "/v1/traces", &headers, c.body.clone()).await;
            let text = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).to_string();
            match c.expect {
                Expect::Ok { rejected } => {
                    if r.status != 200 {
                        return Err(format!("status {} ({text}), want 200", r.status));
                    }
                    let got = if *content_type == "application/json" {
                        let v: serde_json::Value =
                            serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                        v["partialSuccess"]["rejectedSpans"]
                            .as_str()
                            .map_or(0, |s| s.parse().unwrap())
                    } else {
                        rejected_in(
                            &ExportTraceServiceResponse::decode(r.body.as_slice())
                                .map_err(|e| e.to_string())?,
                        )
                    };
                    if got != rejected {
                        return Err(format!("rejected {got} != {rejected}: {text}"));
                    }
                }
                Expect::Http(code) => {
                    if r.status != code {
                        return Err(format!("status {} ({text}), want {code}", r.status));
                    }
                    if r.header("content-type").is_none() || r.body.is_empty() {
                        return Err("an error response without a typed status body".into());
                    }
                }
                Expect::Grpc(_) => return Err("gRPC expectation on an HTTP case".into()),
            }
            let t = follow_up;
            let r = http(
                addr,
                "POST",
                "/v1/traces",
                &PROTO_HEADERS,
                pb(vec![span(t, 1, 0)]),
            )
            .await;
            if r.status != 200 {
                return Err(format!("follow-up got {}", r.status));
            }
        }
    }
    let h = http(rx.http_addr().unwrap(), "GET", "/healthz", &[], vec![]).await;
    if h.status != 200 || h.body != b"ok\n" {
        return Err(format!("/healthz answered {}", h.status));
    }
    Ok(())
}

const PROTO_HEADERS: [(&str, &str); 1] = [("Content-Type", "application/x-protobuf")];

/// Waits (up to 30 s) for run `t` with exactly `spans` spans, then validates it.
async fn check_run(data: &Path, t: u8, spans: u64) -> Result<(), String> {
    check_run_dir(&data.join("runs").join(hex::encode(trace_id(t))), spans).await
}

async fn check_run_dir(dir: &Path, spans: u64) -> Result<(), String> {
    let path = dir.join("session.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(s) = serde_json::from_str::<traj_schema::Session>(&text) {
                if s.lineage.spans == spans {
                    let events = std::fs::read_to_string(dir.join("events.jsonl"))
                        .map_err(|e| e.to_string())?;
                    let check = traj_schema::validate::validate_run(&text, &events);
                    return if check.is_valid() {
                        Ok(())
                    } else {
                        Err(format!("{}: {:?}", dir.display(), check.violations))
                    };
                }
                if s.lineage.spans > spans {
                    return Err(format!(
                        "{}: {} spans, want {spans}",
                        dir.display(),
                        s.lineage.spans
                    ));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{}: no run with {spans} spans", dir.display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rx = Receiver::start(test_config(&data)).await.unwrap();
    let table = cases();
    assert!(table.len() < 100);

    let mut failures = Vec::new();
    for (i, c) in table.iter().enumerate() {
        if let Err(e) = send_case(&rx, i, c).await {
            failures.push(format!("{}: {e}", c.name));
        }
    }

    // Valid data kept: every case's surviving runs and every follow-up run appear and validate.
    let mut expected: std::collections::BTreeMap<u8, u64> = Default::default();
    for (i, c) in table.iter().enumerate() {
        for &(t, n) in &c.keeps {
            expected.insert(t, n); // the "same spans again" case is idempotent
        }
        expected.insert(100 + i as u8, 1);
    }
    for (&t, &n) in &expected {
        if let Err(e) = check_run(&data, t, n).await {
            failures.push(format!("run {t}: {e}"));
        }
    }
    // The "../../etc/passwd" id is a hex directory inside runs/.
    let traversal = data.join("runs").join(hex::encode(b"../../etc/passwd"));
    if let Err(e) = check_run_dir(&traversal, 1).await {
        failures.push(format!("traversal run: {e}"));
    }
    // Nothing was written outside raw/, runs/, index/ (the late-span index) and receiver.json;
    // every run dir is 32 hex digits.
    let mut top: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["index", "raw", "receiver.json", "runs"]);
    for e in std::fs::read_dir(data.join("runs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let hex_ok = name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(
            hex_ok || name.starts_with('.'),
            "unexpected entry runs/{name}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
    rx.shutdown().await;
}
