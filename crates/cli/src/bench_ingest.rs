//! `traj bench ingest`: an OTLP load generator that measures a running (or self-started) receiver.
//!
//! Requests are built once (realistic agent spans: nested run/planner/worker/tool/llm/verifier
//! spans, 10–20 attributes, JSON payloads of a few hundred bytes), encoded once, and re-sent with
//! fresh trace ids patched into the encoded bytes, so the generator spends its CPU on sending, not
//! on encoding, and every request carries new runs for the receiver to store and assemble.
//! `--content` adds captured LLM messages (what real agents send once prompt and completion
//! capture is on); `--compare-sink` runs the same load against a decode-only OTLP sink
//! (`tests/bench/decode_sink.py`, embedded) and reports traj's throughput as a ratio of it.

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
// The same duration syntax as `traj serve` flags (300ms, 2s, 1m, 1h).
use traj_receiver::config::parse_duration;

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Receiver to load: `grpc://HOST:PORT` or `http://HOST:PORT` (HTTP/protobuf). When absent,
    /// starts `traj serve` itself on a temporary data dir and measures its CPU and memory too.
    #[arg(long)]
    target: Option<String>,
    /// Protocol used against a self-started receiver.
    #[arg(long, default_value = "grpc", value_parser = ["grpc", "http"])]
    protocol: String,
    /// Concurrent connections (each sends one request at a time).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Spans per export request.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// How long to send.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Target request rate in spans/s over all connections (0 = as fast as accepted).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Extra arguments for the self-started `traj serve` (e.g. `--fsync never`).
    #[arg(long, allow_hyphen_values = true, num_args = 1..)]
    serve_args: Vec<String>,
    /// Data dir for the self-started receiver (default: a fresh temporary dir, removed after).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Captured LLM content: `none`; `heavy` = a 16 KiB `gen_ai.input.messages` on every third
    /// span (~5.5 KB/span); `128k` = a 128 KiB one on every third span.
    #[arg(long, default_value = "none", value_parser = ["none", "heavy", "128k"])]
    content: String,
    /// Afterwards, run the same load against a decode-only OTLP/gRPC sink (a Python process
    /// using `opentelemetry-proto`, run with this interpreter) and report the ratio.
    #[arg(long, value_name = "PYTHON")]
    compare_sink: Option<PathBuf>,
}

/// The decode-only sink `--compare-sink` starts (kept as a file for reading and testing).
const DECODE_SINK_PY: &str = include_str!("../../../tests/bench/decode_sink.py");

impl IngestArgs {
    /// Bytes of the captured message added to every third span (0 = none).
    fn content_bytes(&self) -> usize {
        match self.content.as_str() {
            "heavy" => 16 * 1024,
            "128k" => 128 * 1024,
            _ => 0,
        }
    }
}

/// One pre-encoded request and where its trace ids sit in the bytes.
struct Template {
    bytes: Vec<u8>,
    trace_id_offsets: Vec<(usize, usize)>, // (offset, trace index)
    spans: usize,
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_string()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// Deterministic 64-bit mixer (splitmix64) for ids.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn trace_id(n: u64) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&mix(n).to_be_bytes());
    t[8..].copy_from_slice(&mix(n ^ 0xdead_beef).to_be_bytes());
    t
}

/// Spans of one realistic run: root + 3 cycles of planner, worker (2 tools, 1 llm), verifier.
fn run_spans(tid: [u8; 16], salt: u64, content_bytes: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut next = 0u64;
    let mut sid = || {
        next += 1;
        mix(salt.wrapping_mul(131).wrapping_add(next))
            .max(1)
            .to_be_bytes()
            .to_vec()
    };
    let t0: u64 = 1_795_000_000_000_000_000 + salt * 1_000_000;
    let root_id = sid();
    let payload = |what: &str| {
        format!(
            r#"{{"goal":"Compute the total of the amount column in data/orders-{salt}.csv and write it to out/{what}.txt","observation":{{"files":["data/orders.csv","README.md"],"cwd":"/tmp/task"}},"history":["step 0: read_file data/orders.csv -> 24 rows","step 1: sum amount -> 1234.5"],"tool_mask":{{"read_file":true,"write_file":true,"calc":true,"search":false}}}}"#
        )
    };
    let mk = |span_id: Vec<u8>, parent: &[u8], name: &str, start: u64, attrs: Vec<KeyValue>| Span {
        trace_id: tid.to_vec(),
        span_id,
        parent_span_id: parent.to_vec(),
        name: name.to_string(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 900_000,
        attributes: attrs,
        status: Some(Status::default()),
        ..Default::default()
    };
    for cycle in 0..3u64 {
        let base = t0 + cycle * 10_000_000;
        let step = i("traj.step", cycle as i64);
        spans.push(mk(sid(), &root_id, "plan planner", base, vec![
            s("traj.role", "planner"), step.clone(), s("gen_ai.operation.name", "plan"), s("gen_ai.agent.name", "planner"),
            s("openinference.span.kind", "AGENT"), s("traj.planner.input", &payload("plan")),
            s("traj.planner.output", r#"{"plan":[{"index":0,"description":"read the csv","tool":"read_file"},{"index":1,"description":"sum the column","tool":"calc"}],"rationale":"read then sum","confidence":0.8}"#),
        ]));
        let worker_id = sid();
        spans.push(mk(worker_id.clone(), &root_id, "invoke_agent worker", base + 1_000_000, vec![
            s("traj.role", "worker"), step.clone(), s("gen_ai.operation.name", "invoke_agent"), s("gen_ai.agent.name", "worker"),
            s("openinference.span.kind", "AGENT"), s("traj.worker.input", &payload("work")),
            s("traj.worker.action", r#"{"action":"tool_call","tool":"read_file","arguments":{"path":"data/orders.csv"},"reasoning":"need the rows"}"#),
            s("traj.worker.output", r#"{"status":"ok","summary":"read 24 rows","retries":0}"#),
        ]));
        for t in 0..2u64 {
            spans.push(mk(
                sid(),
                &worker_id,
                "execute_tool read_file",
                base + 1_100_000 + t * 100_000,
                vec![
                    s("traj.role", "tool"),
                    s("gen_ai.operation.name", "execute_tool"),
                    s("gen_ai.tool.name", "read_file"),
                    s("gen_ai.tool.call.id", "call_0001"),
                    s(
                        "gen_ai.tool.call.arguments",
                        r#"{"path":"data/orders.csv"}"#,
                    ),
                    s(
                        "gen_ai.tool.call.result",
                        r#"{"rows":24,"head":"id,amount\n1,10.5\n2,20.0"}"#,
                    ),
                    s("traj.tool.status", "ok"),
                    i("traj.retry.attempt", 1),
                    s("openinference.span.kind", "TOOL"),
                ],
            ));
        }
        spans.push(mk(
            sid(),
            &worker_id,
            "chat sim-worker-1",
            base + 1_400_000,
            vec![
                s("traj.role", "llm"),
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.request.model", "sim-worker-1"),
                i("gen_ai.usage.input_tokens", 412),
                i("gen_ai.usage.output_tokens", 38),
                s("openinference.span.kind", "LLM"),
                s(
                    "traj.prompt_hash",
                    "sha256:8f14e45fceea167a5a36dedd4bea2543",
                ),
                s("traj.prompt.rendered", &payload("prompt")),
            ],
        ));
        spans.push(mk(sid(), &root_id, "invoke_agent verifier", base + 2_000_000, vec![
            s("traj.role", "verifier"), step, s("gen_ai.operation.name", "invoke_agent"), s("gen_ai.agent.name", "verifier"),
            s("openinference.span.kind", "EVALUATOR"),
            s("traj.verifier.input", r#"{"plan_progress":{"completed":1,"total":2},"action_traces":["read_file data/orders.csv -> ok"],"evidence":{"rows":24}}"#),
            s("traj.verifier.output", r#"{"verdict":"continue","feedback":"sum next","risk_flags":[]}"#), s("traj.verdict", "continue"),
        ]));
    }
    let mut root = mk(
        root_id.clone(),
        &[],
        "invoke_workflow bench-agent",
        t0,
        vec![
            s("traj.schema_version", "2"),
            s("traj.role", "run"),
            s("traj.goal", "Compute the total of the amount column"),
            s("traj.goal_family", "csv_sum"),
            i("traj.seed", salt as i64),
            s(
                "traj.config_hash",
                "sha256:c4ca4238a0b923820dcc509a6f75849b",
            ),
            s(
                "traj.prompt_hash",
                "sha256:c81e728d9d4c2f636f067f89cc14862c",
            ),
            s(
                "traj.toolset_hash",
                "sha256:eccbc87e4b5ce2fe28308fd9f2a7baf3",
            ),
            s(
                "traj.model_stack",
                r#"{"planner":{"model":"sim-planner-1","params":{"temperature":0.2}},"worker":{"model":"sim-worker-1","params":{}},"verifier":{"model":"sim-verifier-1","params":{}}}"#,
            ),
            s(
                "traj.runtime_config",
                r#"{"max_steps":8,"tool_mode":"real","prompt_sources":{"planner":"prompts/planner.txt"}}"#,
            ),
            s("traj.redaction.policy", "traj-source"),
            s("traj.redaction.version", "1"),
            s("traj.outcome", "success"),
            i("traj.spans_dropped", 0),
            s("gen_ai.operation.name", "invoke_workflow"),
            s("gen_ai.agent.name", "bench-agent"),
            s("openinference.span.kind", "CHAIN"),
        ],
    );
    root.end_time_unix_nano = t0 + 40_000_000;
    spans.push(root);
    if content_bytes > 0 {
        for (k, span) in spans.iter_mut().enumerate().filter(|(k, _)| k % 3 == 0) {
            let text =
                captured_messages(salt.wrapping_mul(31).wrapping_add(k as u64), content_bytes);
            span.attributes.push(s("gen_ai.input.messages", &text));
        }
    }
    spans
}

/// A `gen_ai.input.messages` value of about `bytes` bytes: a system and a user message whose
/// text is pseudo-random words (not one repeated byte, so it costs what real text costs).
fn captured_messages(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "amount", "column", "orders", "total", "read", "file", "rows", "sum", "write",
        "result", "step", "plan", "tool", "check", "value",
    ];
    let mut text = String::with_capacity(bytes + 16);
    let mut x = seed;
    while text.len() < bytes.saturating_sub(120) {
        x = mix(x);
        text.push_str(WORDS[(x % 16) as usize]);
        text.push(if x.is_multiple_of(11) { '\n' } else { ' ' });
    }
    serde_json::json!([
        {"role": "system", "parts": [{"type": "text", "content": "You are the worker of a CSV agent."}]},
        {"role": "user", "parts": [{"type": "text", "content": text}]},
    ])
    .to_string()
}

fn build_template(batch: usize, salt: u64, content_bytes: usize) -> Template {
    let mut spans = Vec::with_capacity(batch + 32);
    let mut traces = Vec::new();
    while spans.len() < batch {
        let tid = trace_id(
            salt.wrapping_mul(1_000_003)
                .wrapping_add(traces.len() as u64),
        );
        traces.push(tid);
        spans.extend(run_spans(
            tid,
            salt * 1000 + traces.len() as u64,
            content_bytes,
        ));
    }
    let n = spans.len();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", "traj-bench")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "traj-bench".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = req.encode_to_vec();
    let mut offsets = Vec::new();
    for (ti, tid) in traces.iter().enumerate() {
        let mut from = 0;
        while let Some(pos) = bytes[from..].windows(16).position(|w| w == tid) {
            offsets.push((from + pos, ti));
            from += pos + 16;
        }
    }
    Template {
        bytes,
        trace_id_offsets: offsets,
        spans: n,
    }
}

impl Template {
    /// The request bytes with fresh trace ids (unique per `serial`).
    fn instance(&self, serial: u64) -> Bytes {
        let mut b = self.bytes.clone();
        for &(off, ti) in &self.trace_id_offsets {
            b[off..off + 16].copy_from_slice(&trace_id(
                serial.wrapping_mul(4096).wrapping_add(ti as u64) ^ 0x5eed,
            ));
        }
        Bytes::from(b)
    }
}

/// Pass-through gRPC codec: sends pre-encoded bytes, decodes the OTLP response.
#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        let resp = ExportTraceServiceResponse::decode(&mut *src)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let rest = src.remaining();
        src.advance(rest);
        Ok(Some(resp))
    }
}

#[derive(Default)]
struct Counters {
    spans_ok: AtomicU64,
    requests_ok: AtomicU64,
    requests_retryable: AtomicU64,
    requests_failed: AtomicU64,
    spans_rejected: AtomicU64,
}

enum Sender {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http {
        stream: tokio::net::TcpStream,
        host: String,
        path: String,
        buf: Vec<u8>,
    },
}

enum Outcome {
    Ok { rejected: u64 },
    Retryable,
}

impl Sender {
    async fn connect(target: &Target) -> Result<Sender> {
        match target {
            Target::Grpc(addr) => {
                let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("connecting to grpc://{addr}"))?;
                Ok(Sender::Grpc(tonic::client::Grpc::new(ch)))
            }
            Target::Http(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to http://{addr}"))?;
                stream.set_nodelay(true)?;
                Ok(Sender::Http {
                    stream,
                    host: addr.clone(),
                    path: "/v1/traces".into(),
                    buf: vec![0; 64 * 1024],
                })
            }
        }
    }

    async fn send(&mut self, body: Bytes) -> Result<Outcome> {
        match self {
            Sender::Grpc(grpc) => {
                grpc.ready()
                    .await
                    .map_err(|e| anyhow::anyhow!("grpc not ready: {e}"))?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                );
                match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
                    Ok(resp) => Ok(Outcome::Ok {
                        rejected: resp
                            .get_ref()
                            .partial_success
                            .as_ref()
                            .map(|p| p.rejected_spans as u64)
                            .unwrap_or(0),
                    }),
                    Err(st)
                        if matches!(
                            st.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ) =>
                    {
                        Ok(Outcome::Retryable)
                    }
                    Err(st) => bail!("export failed: {st}"),
                }
            }
            Sender::Http {
                stream,
                host,
                path,
                buf,
            } => {
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
                // Read the response head, then its body by Content-Length.
                let mut filled = 0;
                let (status, header_end, clen) = loop {
                    let n = stream.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        bail!("connection closed by receiver");
                    }
                    filled += n;
                    if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let status: u16 = head
                            .split_whitespace()
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let clen = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                            })
                            .unwrap_or(0);
                        break (status, end + 4, clen);
                    }
                    if filled == buf.len() {
                        bail!("response head too large");
                    }
                };
                let mut have = filled - header_end;
                while have < clen {
                    let want = (clen - have).min(buf.len());
                    let n = stream.read(&mut buf[..want]).await?;
                    if n == 0 {
                        bail!("connection closed mid-response");
                    }
                    have += n;
                }
                match status {
                    200 => Ok(Outcome::Ok { rejected: 0 }),
                    429 | 503 => Ok(Outcome::Retryable),
                    other => bail!("HTTP {other}"),
                }
            }
        }
    }
}

enum Target {
    Grpc(String),
    Http(String),
}

fn parse_target(t: &str) -> Result<Target> {
    if let Some(a) = t.strip_prefix("grpc://") {
        Ok(Target::Grpc(a.trim_end_matches('/').to_string()))
    } else if let Some(a) = t.strip_prefix("http://") {
        Ok(Target::Http(a.split('/').next().unwrap_or(a).to_string()))
    } else {
        bail!("--target must start with grpc:// or http://, got {t:?}")
    }
}

/// CPU seconds (user + system) and peak/current RSS of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    Some((cpu, kb("VmHWM:")? * 1024, kb("VmRSS:")? * 1024))
}

struct Spawned {
    child: std::process::Child,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// SIGTERM (a clean shutdown), then reap.
fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

fn spawn_receiver(args: &IngestArgs) -> Result<(Spawned, String)> {
    let (dir, tmp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir()?;
            (t.path().join("data"), Some(t))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let child = std::process::Command::new(exe)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(&args.serve_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("starting traj serve")?;
    let spawned = Spawned { child, _tmp: tmp };
    let info = dir.join("receiver.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&info) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let key = if args.protocol == "grpc" {
                    "grpc"
                } else {
                    "http"
                };
                if let Some(addr) = v.get(key).and_then(|a| a.as_str()) {
                    return Ok((spawned, format!("{}://{addr}", args.protocol)));
                }
            }
        }
        if Instant::now() > deadline {
            bail!("traj serve did not write {} within 30 s", info.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(args: IngestArgs) -> Result<std::process::ExitCode> {
    let templates: Arc<[Template]> = (0..16)
        .map(|k| build_template(args.batch, k + 1, args.content_bytes()))
        .collect();
    eprintln!(
        "bench ingest: {} connections, {} spans/request ({} bytes, {:.0} B/span), content {}, {:?}",
        args.connections,
        templates[0].spans,
        templates[0].bytes.len(),
        templates[0].bytes.len() as f64 / templates[0].spans as f64,
        args.content,
        args.duration
    );

    // Phase 1: the receiver (given, or started here and measured).
    let (spawned, target) = match &args.target {
        Some(t) => (None, t.clone()),
        None => {
            let (s, t) = spawn_receiver(&args)?;
            (Some(s), t)
        }
    };
    let pid = spawned.as_ref().map(|s| s.child.id());
    let mut report = load(&args, &parse_target(&target)?, pid, &templates)?;
    drop(spawned);

    // Phase 2: the same load against the decode-only sink, and the ratio.
    if let Some(python) = &args.compare_sink {
        let sink = spawn_decode_sink(python)?;
        let sink_report = load(
            &args,
            &Target::Grpc(sink.addr.clone()),
            Some(sink.child.id()),
            &templates,
        )?;
        drop(sink);
        let rate = |r: &serde_json::Value| r["accepted_spans_per_s"].as_f64().unwrap_or(0.0);
        let ratio = if rate(&sink_report) > 0.0 {
            rate(&report) / rate(&sink_report)
        } else {
            0.0
        };
        report["decode_only_sink"] = sink_report;
        report["ratio_to_decode_only_sink"] = serde_json::json!((ratio * 1000.0).round() / 1000.0);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// The decode-only sink, running; stopped (SIGTERM) when dropped.
struct SinkProcess {
    child: std::process::Child,
    addr: String,
    /// Kept open so the sink's closing line finds a reader.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    _script: tempfile::TempDir,
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Starts `decode_sink.py` with `python` and reads the address it listens on.
fn spawn_decode_sink(python: &std::path::Path) -> Result<SinkProcess> {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("decode_sink.py");
    std::fs::write(&script, DECODE_SINK_PY)?;
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the decode-only sink with {}", python.display()))?;
    let stdout = child.stdout.take().context("decode sink stdout")?;
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(stdout);
    stdout
        .read_line(&mut first)
        .context("reading the decode sink's address")?;
    let addr = serde_json::from_str::<serde_json::Value>(&first)
        .ok()
        .and_then(|v| v["listening"].as_str().map(str::to_string));
    let Some(addr) = addr else {
        let _ = child.kill();
        bail!("the decode-only sink did not start (it printed {first:?}); does {} have grpcio and opentelemetry-proto?", python.display());
    };
    Ok(SinkProcess {
        child,
        addr,
        _stdout: stdout,
        _script: dir,
    })
}

/// Sends the load for `args.duration` to `target` and reports what was accepted, latencies and
/// (when `pid` is given) that process's CPU and memory.
fn load(
    args: &IngestArgs,
    target: &Target,
    pid: Option<u32>,
    templates: &Arc<[Template]>,
) -> Result<serde_json::Value> {
    let spans_per_req = templates[0].spans as u64;
    let bytes_per_req = templates[0].bytes.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let serial = Arc::new(AtomicU64::new(0));
    let cpu0 = pid.and_then(proc_usage).map(|u| u.0);
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let started = Instant::now();
    let latencies: Vec<Vec<u32>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            let mut sender = Sender::connect(target).await?;
            let (templates, counters, stop, serial) = (
                templates.clone(),
                counters.clone(),
                stop.clone(),
                serial.clone(),
            );
            let per_conn_interval = if args.rate > 0 {
                Some(Duration::from_secs_f64(
                    spans_per_req as f64 * args.connections as f64 / args.rate as f64,
                ))
            } else {
                None
            };
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                let mut next_at = tokio::time::Instant::now();
                // Like an OTLP exporter: back off on a retryable refusal (20 ms doubling to
                // 640 ms), reset on success. Retrying at a fixed short interval made the receiver
                // decode (and refuse) three requests for every one it could take.
                let mut backoff = Duration::from_millis(20);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(iv) = per_conn_interval {
                        tokio::time::sleep_until(next_at).await;
                        next_at += iv;
                    }
                    let n = serial.fetch_add(1, Ordering::Relaxed);
                    let body = templates[(n as usize + c) % templates.len()].instance(n);
                    let t = Instant::now();
                    match sender.send(body).await {
                        Ok(Outcome::Ok { rejected }) => {
                            backoff = Duration::from_millis(20);
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            counters.requests_ok.fetch_add(1, Ordering::Relaxed);
                            counters
                                .spans_ok
                                .fetch_add(spans_per_req - rejected, Ordering::Relaxed);
                            counters
                                .spans_rejected
                                .fetch_add(rejected, Ordering::Relaxed);
                        }
                        Ok(Outcome::Retryable) => {
                            counters.requests_retryable.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(640));
                        }
                        Err(e) => {
                            counters.requests_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("request failed: {e:#}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                lat
            }));
        }
        let sampler = {
            let (stop, rss_samples) = (stop.clone(), rss_samples.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((_, _, rss)) = pid.and_then(proc_usage) {
                        if let Ok(mut v) = rss_samples.lock() {
                            v.push(rss);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        tokio::time::sleep(args.duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await?);
        }
        sampler.await?;
        Ok::<_, anyhow::Error>(all)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let usage = pid.and_then(proc_usage);

    let mut lat: Vec<u32> = latencies.into_iter().flatten().collect();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[idx]) / 1000.0
    };
    let spans = counters.spans_ok.load(Ordering::Relaxed);
    let rss = rss_samples.lock().map(|v| v.clone()).unwrap_or_default();
    let report = serde_json::json!({
        "protocol": match target { Target::Grpc(_) => "grpc", Target::Http(_) => "http" },
        "connections": args.connections,
        "spans_per_request": spans_per_req,
        "bytes_per_span": bytes_per_req as f64 / spans_per_req as f64,
        "content": args.content,
        "duration_s": elapsed,
        "accepted_spans": spans,
        "accepted_spans_per_s": spans as f64 / elapsed,
        "accepted_mb_per_s": spans as f64 * (bytes_per_req as f64 / spans_per_req as f64) / elapsed / 1e6,
        "requests_ok": counters.requests_ok.load(Ordering::Relaxed),
        "requests_retryable": counters.requests_retryable.load(Ordering::Relaxed),
        "requests_failed": counters.requests_failed.load(Ordering::Relaxed),
        "spans_rejected": counters.spans_rejected.load(Ordering::Relaxed),
        "latency_ms": { "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0) },
        "receiver": usage.map(|(cpu, hwm, rss_now)| serde_json::json!({
            "cpu_s": cpu - cpu0.unwrap_or(0.0),
            "cpu_s_per_million_spans": if spans > 0 { (cpu - cpu0.unwrap_or(0.0)) / (spans as f64 / 1e6) } else { 0.0 },
            "peak_rss_mib": hwm as f64 / 1048576.0,
            "rss_end_mib": rss_now as f64 / 1048576.0,
            "rss_samples_mib": rss.iter().map(|r| (*r as f64 / 1048576.0 * 10.0).round() / 10.0).collect::<Vec<_>>(),
        })),
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_carry_fresh_trace_ids_and_decode() {
        let t = build_template(64, 1, 0);
        assert!(t.spans >= 64);
        let a = ExportTraceServiceRequest::decode(t.instance(1)).unwrap();
        let b = ExportTraceServiceRequest::decode(t.instance(2)).unwrap();
        let ids = |r: &ExportTraceServiceRequest| -> std::collections::BTreeSet<Vec<u8>> {
            r.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(|s| s.trace_id.clone())
                .collect()
        };
        assert_eq!(ids(&a).len(), t.spans.div_ceil(19));
        assert!(ids(&a).is_disjoint(&ids(&b)));
        // Every span of the original template had its trace id patched.
        assert_eq!(a.resource_spans[0].scope_spans[0].spans.len(), t.spans);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("2 weeks").is_err());
    }
}
