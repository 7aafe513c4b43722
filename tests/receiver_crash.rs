//! Crash safety and disk full, end to end against the real `traj serve` binary: (1) SIGKILL the
//! receiver at seeded random moments under gRPC load from several clients, restart it on the same
//! data dir each time, and prove every acknowledged span is in the raw store and in exactly one
//! run exactly once, and that every run validates; (2) put the data dir on a 4 MiB tmpfs, fill it,
//! and prove that a full disk gives retryable errors (gRPC UNAVAILABLE, HTTP 503 + Retry-After),
//! corrupts nothing, and that acks resume and no acknowledged span is lost once space returns.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TraceId = [u8; 16];
type SpanId = [u8; 8];

/// Seed of every random choice (batch splits, kill moments).
const SEED: u64 = 0x7a1_c4a5_4e11;
/// SIGKILLs per crash test.
const KILLS: usize = 22;
/// Concurrent gRPC clients.
const CLIENTS: u8 = 4;
/// Worker spans per trace (plus one root span).
const WORKERS: u8 = 5;
/// Generous bound on every wait (the machine may be loaded).
const WAIT: Duration = Duration::from_secs(60);

/// splitmix64: small, seeded, good enough for test choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---- the spawned receiver ------------------------------------------------------------------

/// `target/debug/traj`, next to `target/debug/deps/<this test>`.
fn traj_bin() -> PathBuf {
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

struct Server {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
}

/// Starts `traj serve` on `data` (ports 0, default durable fsync) and waits until it wrote
/// `receiver.json` with its own pid.
async fn spawn_server(data: &Path, log: &Path, extra: &[&str]) -> Server {
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
        .args(["--grace-period", "200ms", "--idle-timeout", "60s"])
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
    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(mut self) {
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

fn attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn trace_id(client: u8, n: u32) -> TraceId {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&SEED.to_be_bytes());
    t[8] = 0xc0 | client;
    t[12..].copy_from_slice(&n.to_be_bytes());
    t
}

/// Span `i` of a trace (0 = the root), unique over all traces.
fn span_id(client: u8, n: u32, i: u8) -> SpanId {
    let mut s = [0u8; 8];
    s[0] = 0x50 | client;
    s[1..5].copy_from_slice(&n.to_be_bytes());
    s[7] = i + 1;
    s
}

/// A native run: span 0 is the root (`traj.role = run`, ends last), 1..=WORKERS are worker
/// steps. Each worker span becomes 3 events, the root 1 (`episode_end`).
fn trace_spans(client: u8, n: u32, pad: usize) -> Vec<Span> {
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

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
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

fn ids_of(spans: &[Span]) -> Vec<(TraceId, SpanId)> {
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- checks --------------------------------------------------------------------------------

/// Every (trace, span) in the raw store, with how many times it is stored. Panics on any
/// unreadable or undecodable record: a crash must not leave corruption behind.
fn raw_spans(data: &Path) -> (u64, HashMap<(TraceId, SpanId), u32>) {
    let (store, _report) = traj_store::Store::open(traj_store::StoreConfig::new(data)).unwrap();
    let mut out = HashMap::new();
    let mut records = 0;
    for item in store.scan(0) {
        let (seq, bytes) = item.expect("raw record readable");
        let req = ExportTraceServiceRequest::decode(bytes.as_ref())
            .unwrap_or_else(|e| panic!("raw record {seq} does not decode: {e}"));
        records += 1;
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

/// One run on disk: `lineage.spans` and, per span id, how many events name it.
struct RunOnDisk {
    lineage_spans: u64,
    events_per_span: BTreeMap<String, u32>,
}

fn runs_on_disk(data: &Path) -> BTreeMap<String, RunOnDisk> {
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
fn run_problems(
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
fn assert_validate_passes(data: &Path) {
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

// ---- load ----------------------------------------------------------------------------------

/// Shared between the clients and the test: where the server is now, what was acknowledged.
struct Load {
    grpc: Mutex<SocketAddr>,
    acked: Mutex<BTreeSet<(TraceId, SpanId)>>,
    acks: AtomicU64,
    failures: AtomicU64,
    stop: AtomicBool,
}

/// Exports `spans` until one attempt is acknowledged (reconnecting to wherever the server is).
async fn export_until_acked(
    load: &Load,
    conn: &mut Option<(SocketAddr, TraceServiceClient<tonic::transport::Channel>)>,
    spans: Vec<Span>,
) {
    let ids = ids_of(&spans);
    let req = request(spans);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "a batch was never acknowledged");
        let addr = *load.grpc.lock().unwrap();
        if conn.as_ref().map(|c| c.0) != Some(addr) {
            *conn = TraceServiceClient::connect(format!("http://{addr}"))
                .await
                .ok()
                .map(|c| (addr, c));
        }
        if let Some((_, client)) = conn.as_mut() {
            let sent = tokio::time::timeout(Duration::from_secs(10), client.export(req.clone()));
            match sent.await {
                Ok(Ok(resp)) => {
                    assert!(
                        resp.into_inner().partial_success.is_none(),
                        "valid spans rejected"
                    );
                    load.acked.lock().unwrap().extend(ids);
                    load.acks.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(status)) => {
                    // Only retryable codes are acceptable from a (re)starting receiver.
                    assert!(
                        matches!(
                            status.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::Unknown
                                | tonic::Code::Cancelled
                        ),
                        "non-retryable error: {status:?}"
                    );
                }
                Err(_) => {}
            }
            *conn = None;
        }
        load.failures.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One client: traces one after another, each split at random into 1-3 batches (root last),
/// until told to stop (the trace being sent is finished first).
async fn client(load: Arc<Load>, id: u8) {
    let mut rng = Rng(SEED ^ u64::from(id).wrapping_mul(0x1234_5678_9abc));
    let mut conn = None;
    let mut n = 0u32;
    while !load.stop.load(Ordering::Relaxed) {
        let mut spans = trace_spans(id, n, 64);
        let root = spans.remove(0);
        spans.push(root);
        let cuts = 1 + rng.below(3) as usize;
        let mut rest = spans.as_slice();
        for k in (1..=cuts).rev() {
            let take = if k == 1 {
                rest.len()
            } else {
                1 + rng.below(rest.len().saturating_sub(k) as u64) as usize
            };
            let (batch, tail) = rest.split_at(take);
            export_until_acked(&load, &mut conn, batch.to_vec()).await;
            rest = tail;
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_repeated_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("serve.log");
    let started = Instant::now();
    let mut server = spawn_server(&data, &log, &[]).await;
    let load = Arc::new(Load {
        grpc: Mutex::new(server.grpc),
        acked: Mutex::new(BTreeSet::new()),
        acks: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(Arc::clone(&load), id)))
        .collect();

    let mut rng = Rng(SEED);
    for _ in 0..KILLS {
        // Some acks in this life (or a moment), then a kill at a random point.
        let acks = load.acks.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(2);
        while load.acks.load(Ordering::Relaxed) < acks + 1 + rng.below(8)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        server.sigkill();
        server = spawn_server(&data, &log, &[]).await;
        *load.grpc.lock().unwrap() = server.grpc;
    }
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let acked = load.acked.lock().unwrap().clone();
    println!(
        "{KILLS} SIGKILLs, {} acknowledged spans in {} batches, {} failed attempts, {:.1?}",
        acked.len(),
        load.acks.load(Ordering::Relaxed),
        load.failures.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(acked.len() > 200, "too little load: {}", acked.len());

    // Let every run finalize (grace 200 ms), then stop cleanly.
    let deadline = Instant::now() + WAIT;
    loop {
        let open = metric(server.http, "traj_receiver_open_runs").await;
        if open == Some(0) {
            let runs = runs_on_disk(&data);
            if acked.iter().all(|(t, s)| {
                runs.get(&hex(t))
                    .is_some_and(|r| r.events_per_span.contains_key(&hex(s)))
            }) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "runs did not finalize (open: {open:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;

    // (a) every acknowledged span is in raw storage, which reads back without error.
    let (records, raw) = raw_spans(&data);
    let missing: Vec<_> = acked.iter().filter(|k| !raw.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged spans not in raw storage ({records} records)",
        missing.len()
    );
    let stored_twice = raw.values().filter(|n| **n > 1).count();
    println!(
        "raw: {records} records, {} spans ({stored_twice} stored more than once by client retries)",
        raw.len()
    );
    // (b) every acknowledged span is in exactly one run exactly once, runs match raw exactly.
    let runs = runs_on_disk(&data);
    let problems = run_problems(&acked, &raw, &runs);
    assert!(
        problems.is_empty(),
        "{} problems: {:#?}",
        problems.len(),
        &problems[..problems.len().min(20)]
    );
    // (c) schema v2 holds for every run.
    assert_validate_passes(&data);
}

/// The value of one Prometheus metric from `GET /metrics`.
async fn metric(http: SocketAddr, name: &str) -> Option<u64> {
    let r = http_request(http, "GET", "/metrics", &[], b"").await?;
    let text = String::from_utf8_lossy(&r.2).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One HTTP/1.1 request (`Connection: close`): status, headers, body; `None` on I/O errors.
async fn http_request(
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

// ---- disk full ------------------------------------------------------------------------------

/// A 4 MiB tmpfs mounted for one test, unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `Err(reason)` when mounting is not possible here (not root, no permission).
    fn mount(at: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => return written, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

/// One export attempt over gRPC: `Ok` when acknowledged, else the status code.
async fn export_once(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    spans: &[Span],
) -> Result<(), tonic::Code> {
    match client.export(request(spans.to_vec())).await {
        Ok(_) => Ok(()),
        Err(s) => Err(s.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_retryable_errors_and_ingest_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt) {
        Ok(fs) => fs,
        Err(reason) => {
            // Neither a size-capped filesystem nor a fault hook reachable from outside the
            // store crate (its injection is cfg(test)); see docs/reliability.md.
            println!("SKIPPED disk-full test: {reason}");
            eprintln!("SKIPPED disk-full test: {reason}");
            return;
        }
    };
    let data = mnt.join("data");
    let log = tmp.path().join("serve.log");
    let server = spawn_server(&data, &log, &[]).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut acked: BTreeSet<(TraceId, SpanId)> = BTreeSet::new();

    // Leave ~256 KiB free; each trace is ~6 × 16 KiB.
    let filler = mnt.join("filler");
    fill(&filler);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(256 * 1024)).unwrap();
    drop(f);

    // Send until the disk is full: each error must be UNAVAILABLE (retryable).
    let mut n = 0u32;
    let mut refused = 0;
    let mut pending = None;
    while refused < 5 {
        assert!(n < 200, "the disk never filled up");
        let spans = trace_spans(7, n, 16 * 1024);
        match export_once(&mut client, &spans).await {
            Ok(()) => {
                acked.extend(ids_of(&spans));
                n += 1;
            }
            Err(code) => {
                assert_eq!(
                    code,
                    tonic::Code::Unavailable,
                    "disk full must be retryable"
                );
                refused += 1;
                pending = Some(spans);
            }
        }
    }
    let pending = pending.unwrap();
    // OTLP/HTTP says the same: 503 with Retry-After.
    let body = request(pending.clone()).encode_to_vec();
    let r = http_request(
        server.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .await
    .unwrap();
    assert_eq!(r.0, 503, "{}", String::from_utf8_lossy(&r.2));
    assert!(r.1.iter().any(|(k, _)| k == "retry-after"), "{:?}", r.1);
    println!(
        "disk full after {n} acked traces ({} spans); {refused} gRPC UNAVAILABLE, HTTP 503",
        acked.len()
    );

    // The runs of the acked traces come due while the disk is full: their writes fail too.
    let deadline = Instant::now() + WAIT;
    while metric(server.http, "traj_receiver_run_write_failures_total")
        .await
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "no run write failed on the full disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Space returns: the refused batch and new ones are acknowledged again.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + WAIT;
    while export_once(&mut client, &pending).await.is_err() {
        assert!(Instant::now() < deadline, "ingest did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked.extend(ids_of(&pending));
    for k in 0..5 {
        let spans = trace_spans(7, n + 1 + k, 1024);
        export_once(&mut client, &spans).await.unwrap();
        acked.extend(ids_of(&spans));
    }

    // Runs whose write failed while full are retried; all of them end up on disk.
    let deadline = Instant::now() + WAIT;
    loop {
        let runs = runs_on_disk(&data);
        let done = acked.iter().all(|(t, s)| {
            runs.get(&hex(t))
                .is_some_and(|r| r.events_per_span.contains_key(&hex(s)))
        });
        if done && metric(server.http, "traj_receiver_open_runs").await == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "runs did not all reach the disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let write_failures = metric(server.http, "traj_receiver_run_write_failures_total").await;
    println!("run write failures while full (each retried): {write_failures:?}");
    server.stop().await;

    // Nothing corrupt in raw, nothing acknowledged lost, runs exact and valid.
    let (_, raw) = raw_spans(&data);
    assert!(
        acked.iter().all(|k| raw.contains_key(k)),
        "an acked span is not in raw"
    );
    let problems = run_problems(&acked, &raw, &runs_on_disk(&data));
    assert!(problems.is_empty(), "{problems:#?}");
    assert_validate_passes(&data);
}
