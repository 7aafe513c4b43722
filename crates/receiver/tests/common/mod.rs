//! Shared helpers of the receiver's integration tests: an in-process receiver on 127.0.0.1:0, a
//! minimal HTTP/1.1 client over a real socket, span and log record builders, raw store reads and
//! run polling.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traj_receiver::{Fsync, Receiver, ReceiverConfig};

pub fn test_config(dir: &Path) -> ReceiverConfig {
    let mut cfg = ReceiverConfig::new(dir);
    cfg.grpc_addr = Some("127.0.0.1:0".parse().unwrap());
    cfg.http_addr = Some("127.0.0.1:0".parse().unwrap());
    cfg.fsync = Fsync::Never;
    cfg.grace_period = Duration::from_millis(200);
    cfg.idle_timeout = Duration::from_secs(30);
    cfg
}

pub async fn start(cfg: ReceiverConfig) -> Receiver {
    Receiver::start(cfg).await.expect("receiver starts")
}

pub fn trace_id(n: u8) -> Vec<u8> {
    let mut t = vec![0xab; 16];
    t[15] = n;
    t
}

pub fn span_id(n: u8) -> Vec<u8> {
    let mut s = vec![0x01; 8];
    s[7] = n;
    s
}

pub fn str_attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A span `s` of trace `t` with parent `p` (0 = root), timed by its id.
pub fn span(t: u8, s: u8, p: u8) -> Span {
    let base = 1_764_000_000_000_000_000u64;
    Span {
        trace_id: trace_id(t),
        span_id: span_id(s),
        parent_span_id: if p == 0 { vec![] } else { span_id(p) },
        name: format!("span {s}"),
        kind: 1,
        start_time_unix_nano: base + u64::from(s) * 1_000_000,
        end_time_unix_nano: base + u64::from(s) * 1_000_000 + 500_000,
        attributes: vec![str_attr("test.attr", "x")],
        ..Default::default()
    }
}

pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_attr("service.name", "test-agent")],
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

/// OTLP/JSON of a request, written by hand the way the spec shows it (hex ids, string int64s).
pub fn request_json(spans: &[Span]) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            serde_json::json!({
                "traceId": hex::encode(&s.trace_id),
                "spanId": hex::encode(&s.span_id),
                "parentSpanId": hex::encode(&s.parent_span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano,
                "attributes": [{"key": "test.attr", "value": {"stringValue": "x"}}],
                "someFutureField": {"ignored": true}
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "test-agent"}}]},
            "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]
        }]
    })
    .to_string()
}

/// Log record `n` of trace `t` tied to span `s` (0 = no span), in the shape the GenAI
/// instrumentations use (event name, body with the message content); its time and body are
/// derived from `n`, so records with different `n` differ.
pub fn log_record(t: u8, s: u8, n: u8) -> LogRecord {
    let base = 1_764_000_000_000_000_000u64;
    LogRecord {
        time_unix_nano: base + u64::from(n) * 1_000,
        observed_time_unix_nano: base + u64::from(n) * 1_000 + 7,
        severity_number: 9,
        trace_id: trace_id(t),
        span_id: if s == 0 { vec![] } else { span_id(s) },
        event_name: "gen_ai.user.message".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![str_attr("content", &format!("message {n}"))],
                },
            )),
        }),
        attributes: vec![str_attr("gen_ai.system", "openai")],
        ..Default::default()
    }
}

/// A log record without trace context.
pub fn untraced_log_record(n: u8) -> LogRecord {
    let mut r = log_record(0, 0, n);
    r.trace_id.clear();
    r
}

pub fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![str_attr("service.name", "test-agent")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai_v2".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP/JSON of a logs request, written by hand the way the spec shows it (hex ids, string
/// int64s, camelCase) with an unknown field.
pub fn logs_request_json(records: &[LogRecord]) -> String {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let content = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(any_value::Value::KvlistValue(kv)) => match kv.values[0]
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            serde_json::json!({
                "timeUnixNano": r.time_unix_nano.to_string(),
                "observedTimeUnixNano": r.observed_time_unix_nano,
                "severityNumber": r.severity_number,
                "traceId": hex::encode(&r.trace_id),
                "spanId": hex::encode(&r.span_id),
                "eventName": r.event_name,
                "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": content}}]}},
                "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}],
                "someFutureField": {"ignored": true}
            })
        })
        .collect();
    serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "test-agent"}}]},
            "scopeLogs": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "logRecords": records}]
        }]
    })
    .to_string()
}

/// Every record of the raw store under `data` (the receiver must be stopped): kind and payload.
pub fn raw_records(data: &Path) -> Vec<traj_store::Record> {
    let (store, _) = traj_store::Store::open(traj_store::StoreConfig::new(data)).unwrap();
    store
        .scan(0)
        .map(|r| r.expect("raw record readable"))
        .collect()
}

/// The log records of every logs record in the raw store, in order.
pub fn raw_log_records(data: &Path) -> Vec<LogRecord> {
    use prost::Message;
    raw_records(data)
        .into_iter()
        .filter(|r| r.kind == traj_store::RecordKind::Logs)
        .flat_map(|r| {
            ExportLogsServiceRequest::decode(r.payload.as_ref())
                .expect("a logs record decodes")
                .resource_logs
        })
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .collect()
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading the whole body; ignore write errors then.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response head");
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
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn run_dir(data: &Path, t: u8) -> PathBuf {
    data.join("runs").join(hex::encode(trace_id(t)))
}

/// Waits (up to 20 s) until run `t` exists with at least `spans` spans; returns its session.
pub async fn wait_run(data: &Path, t: u8, spans: u64) -> traj_schema::Session {
    let path = run_dir(data, t).join("session.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(s) = serde_json::from_str::<traj_schema::Session>(&text) {
                if s.lineage.spans >= spans {
                    return s;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "run {} with {spans} spans did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (up to 20 s) for a condition on the receiver's metrics.
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks the run on disk against schema v2.
pub fn assert_run_valid(data: &Path, t: u8) {
    let dir = run_dir(data, t);
    let s = std::fs::read_to_string(dir.join("session.json")).unwrap();
    let e = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let check = traj_schema::validate::validate_run(&s, &e);
    assert!(check.is_valid(), "{:?}", check.violations);
}
