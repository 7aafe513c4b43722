//! Flood and backpressure against the real `traj serve` binary with tiny caps: many gRPC clients
//! send far more than the receiver can absorb. Proves that clients get retryable refusals
//! (gRPC UNAVAILABLE, HTTP 503 + Retry-After; counted), that the receiver's peak RSS (VmHWM) stays under a fixed bound and the
//! open-runs gauge at or under its cap, and that after the flood every acknowledged span ends up
//! in exactly one run, rootless runs being closed by the idle timeout (open runs back to 0). Two
//! of the clients also flood the OTLP logs service (log records for their traces before the
//! spans): refusals there are retryable too, every acknowledged log record is stored, and each
//! run holds exactly the distinct log records raw has for its trace.

mod receiver_harness;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use receiver_harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEED: u64 = 0xf100d;
const CLIENTS: u8 = 12;
/// How long the clients flood.
const FLOOD: Duration = Duration::from_secs(4);
const MAX_OPEN_RUNS: u64 = 16;
const MAX_SPANS_IN_FLIGHT: u64 = 48;
/// Peak resident set of the receiver process (debug build) must stay under this. Idle it is
/// ~30 MiB and ~40 MiB after this flood; unbounded queueing of this flood would take it far beyond.
const VM_HWM_BOUND_KB: u64 = 96 * 1024;

/// `VmHWM` (peak RSS) of a process, in KiB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

struct Flood {
    acked: Mutex<BTreeSet<(TraceId, SpanId)>>,
    /// (trace, body) of acknowledged log records.
    acked_logs: Mutex<BTreeSet<(TraceId, String)>>,
    acks: AtomicU64,
    refused: AtomicU64,
    stop: AtomicBool,
}

/// One flooding client: traces with random batch splits, the root dropped from a third of them
/// (those runs can only close by the idle timeout); a refused batch is counted and dropped, the
/// next one follows at once.
async fn flood_client(flood: Arc<Flood>, server: (SocketAddr, SocketAddr), id: u8) {
    let mut rng = Rng(SEED ^ u64::from(id).wrapping_mul(0x9e37_79b9));
    // Clients 0 and 1 use OTLP/HTTP, the others gRPC.
    let mut client = if id < 2 {
        None
    } else {
        Some(
            TraceServiceClient::connect(format!("http://{}", server.0))
                .await
                .unwrap(),
        )
    };
    // Clients 2 and 3 also send log records for each trace, before its spans.
    let mut logs = if (2..4).contains(&id) {
        Some(
            LogsServiceClient::connect(format!("http://{}", server.0))
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let mut n = 0u32;
    while !flood.stop.load(Ordering::Relaxed) {
        if let Some(c) = logs.as_mut() {
            match c.export(logs_request(trace_logs(0x20 | id, n, 2))).await {
                Ok(_) => {
                    let trace = trace_id(0x20 | id, n);
                    flood
                        .acked_logs
                        .lock()
                        .unwrap()
                        .extend((0..2).map(|i| (trace, format!("log {n}/{i}"))));
                    flood.acks.fetch_add(1, Ordering::Relaxed);
                    // The trace's spans follow in one batch, retried (as an exporter would)
                    // until acknowledged, so the run joining these records exists.
                    let Some(spans_client) = client.as_mut() else {
                        unreachable!("log clients use gRPC")
                    };
                    let spans = trace_spans(0x20 | id, n, 512);
                    let deadline = Instant::now() + WAIT;
                    loop {
                        match spans_client.export(request(spans.clone())).await {
                            Ok(_) => break,
                            Err(s) => {
                                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                                flood.refused.fetch_add(1, Ordering::Relaxed);
                                assert!(Instant::now() < deadline, "spans never acknowledged");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    flood.acked.lock().unwrap().extend(ids_of(&spans));
                    flood.acks.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    continue;
                }
                Err(s) => {
                    assert_eq!(s.code(), tonic::Code::Unavailable, "not retryable: {s:?}");
                    flood.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut spans = trace_spans(0x20 | id, n, 512);
        let root = spans.remove(0);
        if rng.below(3) != 0 {
            spans.push(root);
        }
        let mut rest = spans.as_slice();
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len() as u64) as usize;
            let (batch, tail) = rest.split_at(take);
            rest = tail;
            let acked = match client.as_mut() {
                Some(c) => match c.export(request(batch.to_vec())).await {
                    Ok(_) => true,
                    Err(s) => {
                        assert_eq!(s.code(), tonic::Code::Unavailable, "not retryable: {s:?}");
                        false
                    }
                },
                None => {
                    let body = request(batch.to_vec()).encode_to_vec();
                    let ct = [("Content-Type", "application/x-protobuf")];
                    let r = http_request(server.1, "POST", "/v1/traces", &ct, &body)
                        .await
                        .unwrap();
                    if r.0 != 200 {
                        assert_eq!(r.0, 503, "not retryable: {}", String::from_utf8_lossy(&r.2));
                        assert!(r.1.iter().any(|(k, _)| k == "retry-after"), "{:?}", r.1);
                    }
                    r.0 == 200
                }
            };
            if acked {
                flood.acked.lock().unwrap().extend(ids_of(batch));
                flood.acks.fetch_add(1, Ordering::Relaxed);
            } else {
                flood.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_retryably_with_bounded_memory_and_acked_spans_reach_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("serve.log");
    let caps = [
        "--max-open-runs".to_string(),
        MAX_OPEN_RUNS.to_string(),
        "--max-spans-in-flight".to_string(),
        MAX_SPANS_IN_FLIGHT.to_string(),
        "--idle-timeout".to_string(),
        "1s".to_string(),
    ];
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let server = spawn_server(&data, &log, &caps).await;
    let pid = server.child.id();
    let idle_hwm = vm_hwm_kb(pid).unwrap();

    let flood = Arc::new(Flood {
        acked: Mutex::new(BTreeSet::new()),
        acked_logs: Mutex::new(BTreeSet::new()),
        acks: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let at = (server.grpc, server.http);
            tokio::spawn(flood_client(Arc::clone(&flood), at, id))
        })
        .collect();
    // Sample the gauges while the flood runs. Ingest reserves an open-run slot per trace of a
    // batch before it is stored (released when the trace opens no run), so the cap is exact.
    let started = Instant::now();
    let mut max_open = 0;
    while started.elapsed() < FLOOD {
        if let Some(open) = metric(server.http, "traj_receiver_open_runs").await {
            max_open = max_open.max(open);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flood.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let acked = flood.acked.lock().unwrap().clone();
    let refused = flood.refused.load(Ordering::Relaxed);
    let server_refused = metric(server.http, "traj_receiver_requests_refused_total")
        .await
        .unwrap();
    let hwm = vm_hwm_kb(pid).unwrap();
    println!(
        "flood {FLOOD:?}, {CLIENTS} clients: {} batches acked ({} spans), {refused} refused \
         (server: {server_refused}); max open runs seen {max_open} (cap {MAX_OPEN_RUNS}); \
         VmHWM idle {idle_hwm} kB, after flood {hwm} kB",
        flood.acks.load(Ordering::Relaxed),
        acked.len()
    );
    assert!(
        refused > 0,
        "the flood was never refused: caps not enforced"
    );
    assert_eq!(
        refused, server_refused,
        "client and server refusal counts differ"
    );
    assert!(!acked.is_empty(), "nothing was acknowledged");
    assert!(
        max_open <= MAX_OPEN_RUNS,
        "open runs {max_open} beyond the cap {MAX_OPEN_RUNS}"
    );
    assert!(
        hwm < VM_HWM_BOUND_KB,
        "receiver peak RSS {hwm} kB over the {VM_HWM_BOUND_KB} kB bound"
    );

    // After the flood: rootless runs close by the idle timeout, everything acked is in a run.
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
        assert!(Instant::now() < deadline, "runs did not all finalize");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
    let (_, raw) = raw_spans(&data);
    assert!(
        acked.iter().all(|k| raw.contains_key(k)),
        "an acked span is not in raw"
    );
    let runs = runs_on_disk(&data);
    let problems = run_problems(&acked, &raw, &runs);
    assert!(problems.is_empty(), "{problems:#?}");

    // Log records: every acknowledged one is stored; every run of a trace with log records holds
    // exactly raw's distinct ones (a trace whose spans were all refused has no run: its log
    // records were dropped from memory after the idle timeout and stay in raw).
    let acked_logs = flood.acked_logs.lock().unwrap().clone();
    assert!(!acked_logs.is_empty(), "no log record was acknowledged");
    let raw_logs = raw_logs(&data);
    assert!(
        acked_logs.iter().all(|k| raw_logs.contains_key(k)),
        "an acked log record is not in raw"
    );
    let mut raw_per_trace: BTreeMap<TraceId, u64> = BTreeMap::new();
    for (trace, _) in raw_logs.keys() {
        *raw_per_trace.entry(*trace).or_insert(0) += 1;
    }
    let mut with_runs = 0;
    for (trace, n) in &raw_per_trace {
        if let Some(run) = runs.get(&hex(trace)) {
            with_runs += 1;
            assert_eq!(
                run.lineage_log_records,
                *n,
                "log records of run {}",
                hex(trace)
            );
        }
    }
    println!(
        "logs: {} acknowledged over {} traces, {with_runs} of them with a run",
        acked_logs.len(),
        raw_per_trace.len()
    );
    assert!(with_runs > 0, "no run holds log records");
    assert_validate_passes(&data);
}
