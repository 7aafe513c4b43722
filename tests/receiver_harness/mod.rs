//! Shared by the receiver reliability tests (`receiver_crash.rs`, `receiver_flood.rs`): spawning
//! the real `traj serve` binary, native Planner/Worker span traces with ids that name their trace,
//! and exact checks of acknowledged spans against the raw store and the runs on disk.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// Marks the trace ids of these tests.
const TRACE_TAG: u64 = 0x7a1_c4a5_4e11;
/// Worker spans per trace (plus one root span).
pub const WORKERS: u8 = 5;
/// Generous bound on every wait (the machine may be loaded).
pub const WAIT: Duration = Duration::from_secs(60);

/// splitmix64: small, seeded, good enough for test choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---- the spawned receiver ------------------------------------------------------------------

/// `target/debug/traj`, next to `target/debug/deps/<this test>`.
pub fn traj_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("traj{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p traj-cli`; `cargo test --workspace` does)",
        bin.display()
    );
    bin
}

pub struct Server {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Starts `traj serve` on `data` (ports 0, default durable fsync) and waits until it wrote
/// `receiver.json` with its own pid.
pub async fn spawn_server(data: &Path, log: &Path, extra: &[&str]) -> Server {
    let info = data.join("receiver.json");
    let _ = std::fs::remove_file(&info);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(traj_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--grace-period", "200ms"])
        .args(if extra.contains(&"--idle-timeout") {
            &[][..]
        } else {
            &["--idle-timeout", "60s"][..]
        })
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "traj serve exited at start ({status}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(text) = std::fs::read_to_string(&info) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if v["pid"].as_u64() == Some(u64::from(child.id())) {
                    let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                    return Server {
                        grpc: addr("grpc"),
                        http: addr("http"),
                        child,
                    };
                }
            }
        }
        assert!(Instant::now() < deadline, "traj serve did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Server {
    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "traj serve stopped with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "traj serve did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---- spans ---------------------------------------------------------------------------------

pub fn attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn trace_id(client: u8, n: u32) -> TraceId {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&TRACE_TAG.to_be_bytes());
    t[8] = 0xc0 | client;
    t[12..].copy_from_slice(&n.to_be_bytes());
    t
}

/// Span `i` of a trace (0 = the root), unique over all traces.
pub fn span_id(client: u8, n: u32, i: u8) -> SpanId {
    let mut s = [0u8; 8];
    s[0] = 0x50 | client;
    s[1..5].copy_from_slice(&n.to_be_bytes());
    s[7] = i + 1;
    s
}

/// A native run: span 0 is the root (`traj.role = run`, ends last), 1..=WORKERS are worker
/// steps. Each worker span becomes 3 events, the root 1 (`episode_end`).
pub fn trace_spans(client: u8, n: u32, pad: usize) -> Vec<Span> {
    let base = 1_764_000_000_000_000_000u64 + u64::from(n) * 1_000_000_000;
    let root = span_id(client, n, 0);
    (0..=WORKERS)
        .map(|i| {
            let (attributes, parent, start, end) = if i == 0 {
                (
                    vec![
                        attr("traj.role", "run"),
                        attr("traj.schema_version", "2"),
                        attr("traj.goal", "crash test goal"),
                        attr("traj.goal_family", "crash"),
                        attr("traj.outcome", "success"),
                    ],
                    vec![],
                    base,
                    base + 900_000_000,
                )
            } else {
                let s = base + u64::from(i) * 10_000_000;
                (
                    vec![
                        attr("traj.role", "worker"),
                        attr("traj.step", &i.to_string()),
                        attr("traj.worker.output", &"x".repeat(pad)),
                    ],
                    root.to_vec(),
                    s,
                    s + 5_000_000,
                )
            };
            Span {
                trace_id: trace_id(client, n).to_vec(),
                span_id: span_id(client, n, i).to_vec(),
                parent_span_id: parent,
                name: if i == 0 {
                    "run".into()
                } else {
                    "worker".into()
                },
                kind: 1,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                ..Default::default()
            }
        })
        .collect()
}

pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "crash-test")],
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

pub fn ids_of(spans: &[Span]) -> Vec<(TraceId, SpanId)> {
    spans
        .iter()
        .map(|s| {
            (
                s.trace_id.as_slice().try_into().unwrap(),
                s.span_id.as_slice().try_into().unwrap(),
            )
        })
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- checks --------------------------------------------------------------------------------

/// Every (trace, span) in the raw store, with how many times it is stored. Panics on any
/// unreadable or undecodable record: a crash must not leave corruption behind.
pub fn raw_spans(data: &Path) -> (u64, HashMap<(TraceId, SpanId), u32>) {
    let (store, _report) = traj_store::Store::open(traj_store::StoreConfig::new(data)).unwrap();
    let mut out = HashMap::new();
    let mut records = 0;
    for item in store.scan(0) {
        let traj_store::Record { seq, kind, payload } = item.expect("raw record readable");
        records += 1;
        if kind != traj_store::RecordKind::Traces {
            continue;
        }
        let req = ExportTraceServiceRequest::decode(payload.as_ref())
            .unwrap_or_else(|e| panic!("raw record {seq} does not decode: {e}"));
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                for (t, s) in ids_of(&ss.spans) {
                    *out.entry((t, s)).or_insert(0) += 1;
                }
            }
        }
    }
    (records, out)
}

/// `k` log records of trace `(client, n)`, each with a body that names it (`log <n>/<k>`),
/// attached to the trace's root span.
pub fn trace_logs(client: u8, n: u32, k: u8) -> Vec<LogRecord> {
    let root = span_id(client, n, 0);
    (0..k)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("log {n}/{i}"))),
            }),
            trace_id: trace_id(client, n).to_vec(),
            span_id: root.to_vec(),
            ..Default::default()
        })
        .collect()
}

/// An OTLP logs export request holding `records`.
pub fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "crash-test")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The (trace, body) of every log record with a trace id in the raw store, with how many times
/// it is stored. Panics on an unreadable or undecodable record.
pub fn raw_logs(data: &Path) -> HashMap<(TraceId, String), u32> {
    let (store, _report) = traj_store::Store::open(traj_store::StoreConfig::new(data)).unwrap();
    let mut out = HashMap::new();
    for item in store.scan(0) {
        let traj_store::Record { seq, kind, payload } = item.expect("raw record readable");
        if kind != traj_store::RecordKind::Logs {
            continue;
        }
        let req = ExportLogsServiceRequest::decode(payload.as_ref())
            .unwrap_or_else(|e| panic!("raw logs record {seq} does not decode: {e}"));
        for record in req
            .resource_logs
            .into_iter()
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
        {
            let Ok(trace) = TraceId::try_from(record.trace_id.as_slice()) else {
                continue;
            };
            let body = match record.body.and_then(|b| b.value) {
                Some(any_value::Value::StringValue(s)) => s,
                _ => String::new(),
            };
            *out.entry((trace, body)).or_insert(0) += 1;
        }
    }
    out
}

/// One run on disk: `lineage.spans` and, per span id, how many events name it.
pub struct RunOnDisk {
    /// `lineage.log_records`: distinct log records assembled into the run.
    pub lineage_log_records: u64,
    pub lineage_spans: u64,
    pub events_per_span: BTreeMap<String, u32>,
}

pub fn runs_on_disk(data: &Path) -> BTreeMap<String, RunOnDisk> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(data.join("runs")) else {
        return out;
    };
    for entry in dir {
        let path = entry.unwrap().path();
        let Ok(session) = std::fs::read_to_string(path.join("session.json")) else {
            continue;
        };
        let Ok(events) = std::fs::read_to_string(path.join("events.jsonl")) else {
            continue;
        };
        let Ok(session) = serde_json::from_str::<traj_schema::Session>(&session) else {
            continue;
        };
        let mut events_per_span = BTreeMap::new();
        for line in events.lines() {
            let e: traj_schema::Event = serde_json::from_str(line).unwrap();
            *events_per_span.entry(e.span_id).or_insert(0) += 1;
        }
        out.insert(
            session.run_id.clone(),
            RunOnDisk {
                lineage_log_records: session.lineage.log_records,
                lineage_spans: session.lineage.spans,
                events_per_span,
            },
        );
    }
    out
}

/// What is wrong between the acknowledged spans, the raw store's spans and the runs on disk
/// (empty when every acknowledged span is in the run of its trace exactly once and every run
/// holds exactly the distinct spans raw storage has for its trace).
pub fn run_problems(
    acked: &BTreeSet<(TraceId, SpanId)>,
    raw: &HashMap<(TraceId, SpanId), u32>,
    runs: &BTreeMap<String, RunOnDisk>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut raw_by_trace: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (t, s) in raw.keys() {
        raw_by_trace.entry(hex(t)).or_default().insert(hex(s));
    }
    // Each span id names its trace (see `span_id`), so "in exactly one run" is: in its own
    // trace's run, and no run holds a span of another trace.
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (run_id, run) in runs {
        for s in run.events_per_span.keys() {
            if let Some(other) = owner.insert(s, run_id) {
                problems.push(format!("span {s} is in runs {other} and {run_id}"));
            }
        }
    }
    for (t, s) in acked {
        let (t, s) = (hex(t), hex(s));
        match runs.get(&t) {
            None => problems.push(format!("acknowledged span {s}: run {t} missing")),
            Some(r) if !r.events_per_span.contains_key(&s) => {
                problems.push(format!("acknowledged span {s} not in run {t}"))
            }
            Some(_) => {}
        }
    }
    for (run_id, run) in runs {
        let expected = raw_by_trace.get(run_id).cloned().unwrap_or_default();
        let held: BTreeSet<String> = run.events_per_span.keys().cloned().collect();
        if held != expected {
            problems.push(format!(
                "run {run_id} holds {} spans, raw has {}",
                held.len(),
                expected.len()
            ));
        }
        if run.lineage_spans != expected.len() as u64 {
            problems.push(format!(
                "run {run_id}: lineage.spans {} != {} distinct raw spans",
                run.lineage_spans,
                expected.len()
            ));
        }
        for (s, n) in &run.events_per_span {
            // The root (last byte 1) gives episode_end; a worker gives input, action, output.
            let want = if s.ends_with("01") { 1 } else { 3 };
            if *n != want {
                problems.push(format!("run {run_id}: span {s} has {n} events, not {want}"));
            }
        }
    }
    for t in raw_by_trace.keys() {
        if !runs.contains_key(t) {
            problems.push(format!("trace {t} is in raw storage but has no run"));
        }
    }
    problems
}

/// `traj validate DIR` exits 0.
pub fn assert_validate_passes(data: &Path) {
    let out = Command::new(traj_bin())
        .args(["validate", "--quiet"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "traj validate failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of one Prometheus metric from `GET /metrics`.
pub async fn metric(http: SocketAddr, name: &str) -> Option<u64> {
    let r = http_request(http, "GET", "/metrics", &[], b"").await?;
    let text = String::from_utf8_lossy(&r.2).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One HTTP/1.1 request (`Connection: close`): status, headers, body; `None` on I/O errors.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, raw[split + 4..].to_vec()))
}
