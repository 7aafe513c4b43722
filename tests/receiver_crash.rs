//! Crash safety and disk full, end to end against the real `traj serve` binary: (1) SIGKILL the
//! receiver at seeded random moments under gRPC load from several clients (one of them also
//! sending OTLP log records for its traces), restart it on the same data dir each time, and prove
//! every acknowledged span and log record is in the raw store, every acknowledged span in exactly
//! one run exactly once, every run holds exactly the distinct log records raw has for its trace,
//! and that every run validates; (2) put the data dir on a 4 MiB tmpfs, fill it,
//! and prove that a full disk gives retryable errors (gRPC UNAVAILABLE, HTTP 503 + Retry-After),
//! corrupts nothing, and that acks resume and no acknowledged span is lost once space returns.

mod receiver_harness;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use receiver_harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seed of every random choice (batch splits, kill moments).
const SEED: u64 = 0x7a1_c4a5_4e11;
/// SIGKILLs per crash test.
const KILLS: usize = 22;
/// Concurrent gRPC span clients.
const CLIENTS: u8 = 4;
/// The id of the client that sends log records (then the spans) for its traces.
const LOGS_CLIENT: u8 = 9;
/// Log records per trace of that client.
const LOGS_PER_TRACE: u8 = 2;

// ---- load ----------------------------------------------------------------------------------

/// Shared between the clients and the test: where the server is now, what was acknowledged.
struct Load {
    grpc: Mutex<SocketAddr>,
    acked: Mutex<BTreeSet<(TraceId, SpanId)>>,
    acked_logs: Mutex<BTreeSet<(TraceId, String)>>,
    acks: AtomicU64,
    failures: AtomicU64,
    stop: AtomicBool,
}

/// A gRPC export client of the crash test: traces or logs.
trait Exporter: Sized {
    type Req: Clone;
    async fn connect(url: String) -> Option<Self>;
    /// Whether the acknowledgement named no rejected item.
    async fn send(&mut self, req: Self::Req) -> Result<bool, tonic::Status>;
}

impl Exporter for TraceServiceClient<tonic::transport::Channel> {
    type Req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    async fn connect(url: String) -> Option<Self> {
        TraceServiceClient::connect(url).await.ok()
    }
    async fn send(&mut self, req: Self::Req) -> Result<bool, tonic::Status> {
        let resp = self.export(req).await?;
        Ok(resp.into_inner().partial_success.is_none())
    }
}

impl Exporter for LogsServiceClient<tonic::transport::Channel> {
    type Req = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    async fn connect(url: String) -> Option<Self> {
        LogsServiceClient::connect(url).await.ok()
    }
    async fn send(&mut self, req: Self::Req) -> Result<bool, tonic::Status> {
        let resp = self.export(req).await?;
        Ok(resp.into_inner().partial_success.is_none())
    }
}

/// Sends one request until an attempt is acknowledged, (re)connecting with `connect` to wherever
/// the server is now; only retryable failures are accepted from a (re)starting receiver.
async fn until_acked<C: Exporter>(
    load: &Load,
    conn: &mut Option<(SocketAddr, C)>,
    what: &str,
    req: C::Req,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "a {what} batch was never acknowledged"
        );
        let addr = *load.grpc.lock().unwrap();
        if conn.as_ref().map(|c| c.0) != Some(addr) {
            *conn = C::connect(format!("http://{addr}"))
                .await
                .map(|c| (addr, c));
        }
        if let Some((_, client)) = conn.as_mut() {
            match tokio::time::timeout(Duration::from_secs(10), client.send(req.clone())).await {
                Ok(Ok(complete)) => {
                    assert!(complete, "valid {what} rejected");
                    load.acks.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(status)) => assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                    ),
                    "non-retryable error: {status:?}"
                ),
                Err(_) => {}
            }
            *conn = None;
        }
        load.failures.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exports `spans` until one attempt is acknowledged.
async fn export_until_acked(
    load: &Load,
    conn: &mut Option<(SocketAddr, TraceServiceClient<tonic::transport::Channel>)>,
    spans: Vec<Span>,
) {
    let ids = ids_of(&spans);
    let req = request(spans);
    until_acked(load, conn, "spans", req).await;
    load.acked.lock().unwrap().extend(ids);
}

/// Exports log records until one attempt is acknowledged.
async fn export_logs_until_acked(
    load: &Load,
    conn: &mut Option<(SocketAddr, LogsServiceClient<tonic::transport::Channel>)>,
    records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
) {
    let keys: Vec<(TraceId, String)> = records
        .iter()
        .filter_map(|r| {
            let trace = TraceId::try_from(r.trace_id.as_slice()).ok()?;
            let body = match r.body.as_ref()?.value.as_ref()? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                    s.clone()
                }
                _ => return None,
            };
            Some((trace, body))
        })
        .collect();
    let req = logs_request(records);
    until_acked(load, conn, "log records", req).await;
    load.acked_logs.lock().unwrap().extend(keys);
}

/// The logs client: for each trace, its log records first, then all its spans in one batch.
async fn logs_client(load: Arc<Load>) {
    let (mut logs_conn, mut spans_conn) = (None, None);
    let mut n = 0u32;
    while !load.stop.load(Ordering::Relaxed) {
        let records = trace_logs(LOGS_CLIENT, n, LOGS_PER_TRACE);
        export_logs_until_acked(&load, &mut logs_conn, records).await;
        let spans = trace_spans(LOGS_CLIENT, n, 64);
        export_until_acked(&load, &mut spans_conn, spans).await;
        n += 1;
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
        acked_logs: Mutex::new(BTreeSet::new()),
        acks: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(Arc::clone(&load), id)))
        .collect();
    clients.push(tokio::spawn(logs_client(Arc::clone(&load))));

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
    // (c) every acknowledged log record is in raw storage, and every run holds exactly the
    // distinct log records raw has for its trace (none lost across the kills, none twice).
    let acked_logs = load.acked_logs.lock().unwrap().clone();
    assert!(
        acked_logs.len() >= 10,
        "too few log records: {}",
        acked_logs.len()
    );
    let raw_logs = raw_logs(&data);
    let missing: Vec<_> = acked_logs
        .iter()
        .filter(|k| !raw_logs.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged log records not in raw: {missing:?}"
    );
    let mut raw_per_trace: BTreeMap<TraceId, u64> = BTreeMap::new();
    for (trace, _) in raw_logs.keys() {
        *raw_per_trace.entry(*trace).or_insert(0) += 1;
    }
    let log_problems: Vec<String> = raw_per_trace
        .iter()
        .filter_map(|(trace, &n)| {
            let run = runs.get(&hex(trace));
            match run {
                Some(r) if r.lineage_log_records == n => None,
                Some(r) => Some(format!(
                    "run {} holds {} log records, raw {n}",
                    hex(trace),
                    r.lineage_log_records
                )),
                // Log records whose spans were never acknowledged (the client was stopped)
                // have no run; every acknowledged trace of the logs client does.
                None if acked.iter().any(|(t, _)| t == trace) => {
                    Some(format!("run {} missing", hex(trace)))
                }
                None => None,
            }
        })
        .collect();
    println!(
        "logs: {} acknowledged, {} traces with logs in raw",
        acked_logs.len(),
        raw_per_trace.len()
    );
    assert!(log_problems.is_empty(), "{log_problems:#?}");
    // (d) schema v2 holds for every run.
    assert_validate_passes(&data);
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
