//! Run lifecycle over real sockets and a real data dir: idle-timeout finalization, late-span
//! re-materialization from the raw store, restart recovery, and forwarding to a second receiver
//! that is down at first.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn post_protobuf(
    addr: std::net::SocketAddr,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) {
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request(spans).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_root_is_finalized_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.idle_timeout = Duration::from_millis(300);
    let rx = start(cfg).await;
    post_protobuf(
        rx.http_addr().unwrap(),
        vec![span(10, 2, 1), span(10, 3, 2)],
    )
    .await;
    let s = wait_run(tmp.path(), 10, 2).await;
    assert!(!s.root_span_seen);
    assert_run_valid(tmp.path(), 10);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_span_rematerializes_the_run_from_the_raw_store() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let addr = rx.http_addr().unwrap();
    post_protobuf(addr, vec![span(11, 1, 0), span(11, 2, 1)]).await;
    let first = wait_run(tmp.path(), 11, 2).await;
    assert_eq!(first.lineage.spans, 2);
    let m = rx.metrics();
    wait_until("first finalization", || {
        m.runs_finalized.load(Ordering::Relaxed) == 1
    })
    .await;

    // A late span on its own: the run is rebuilt from raw (spans 1, 2) plus this one.
    post_protobuf(addr, vec![span(11, 3, 2)]).await;
    let second = wait_run(tmp.path(), 11, 3).await;
    assert_eq!(second.lineage.spans, 3);
    assert!(second.root_span_seen);
    assert_eq!(m.runs_rematerialized.load(Ordering::Relaxed), 1);
    wait_until("second finalization", || {
        m.runs_finalized.load(Ordering::Relaxed) == 2
    })
    .await;

    // A pure duplicate of a finalized run's span changes nothing and re-opens nothing.
    post_protobuf(addr, vec![span(11, 2, 1)]).await;
    wait_until("duplicate counted", || {
        m.spans_duplicate.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(m.spans_duplicate.load(Ordering::Relaxed), 1);
    assert_eq!(m.runs_rematerialized.load(Ordering::Relaxed), 1);
    assert_eq!(m.open_runs.load(Ordering::Relaxed), 0);
    assert_run_valid(tmp.path(), 11);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_span_after_the_late_window_finds_its_trace_in_the_on_disk_index() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.late_window = Duration::ZERO;
    let rx = start(cfg.clone()).await;
    let addr = rx.http_addr().unwrap();
    post_protobuf(addr, vec![span(12, 1, 0), span(12, 2, 1)]).await;
    assert_eq!(wait_run(tmp.path(), 12, 2).await.lineage.spans, 2);
    let m = rx.metrics();
    // The finalized trace leaves memory for the on-disk index at the next spill (~1 s).
    wait_until("index entry moved to disk", || {
        m.trace_index_disk_entries.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(m.trace_index_entries.load(Ordering::Relaxed), 0);
    assert_eq!(m.trace_index_bytes.load(Ordering::Relaxed), 0);
    let metrics_text = http(addr, "GET", "/metrics", &[], b"").await;
    let metrics_text = String::from_utf8_lossy(&metrics_text.body);
    assert!(metrics_text.contains("\ntraj_receiver_trace_index_disk_entries 1\n"));

    // The late span re-opens the run from the records the disk index names.
    post_protobuf(addr, vec![span(12, 3, 2)]).await;
    assert_eq!(wait_run(tmp.path(), 12, 3).await.lineage.spans, 3);
    assert_eq!(m.runs_rematerialized.load(Ordering::Relaxed), 1);
    rx.shutdown().await;

    // After a restart the on-disk index still knows the trace.
    let rx = start(cfg).await;
    let addr = rx.http_addr().unwrap();
    post_protobuf(addr, vec![span(12, 4, 2)]).await;
    let last = wait_run(tmp.path(), 12, 4).await;
    assert_eq!(last.lineage.spans, 4);
    assert!(last.root_span_seen);
    assert_run_valid(tmp.path(), 12);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_runs_survive_a_restart_and_complete_afterwards() {
    let tmp = tempfile::tempdir().unwrap();
    // First life: timers so long nothing is finalized before shutdown.
    let mut cfg = test_config(tmp.path());
    cfg.grace_period = Duration::from_secs(3600);
    cfg.idle_timeout = Duration::from_secs(3600);
    let rx = start(cfg.clone()).await;
    let mut c = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
        .await
        .unwrap();
    c.export(request(vec![span(12, 2, 1), span(12, 1, 0)]))
        .await
        .unwrap();
    c.export(request(vec![span(13, 5, 4)])).await.unwrap();
    post_protobuf(rx.http_addr().unwrap(), vec![span(12, 3, 1)]).await;
    rx.shutdown().await;
    assert!(!run_dir(tmp.path(), 12).join("session.json").exists());

    // A stale, incomplete run dir for trace 13 must be replaced as well.
    let stale = run_dir(tmp.path(), 13);
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("session.json"), r#"{"lineage": {"spans": 0}}"#).unwrap();

    // Second life on the same dir with normal timers.
    let mut cfg = test_config(tmp.path());
    cfg.idle_timeout = Duration::from_millis(300);
    let rx = start(cfg).await;
    let s = wait_run(tmp.path(), 12, 3).await;
    assert_eq!(s.lineage.spans, 3);
    assert!(s.root_span_seen);
    let s = wait_run(tmp.path(), 13, 1).await;
    assert!(!s.root_span_seen);
    assert_run_valid(tmp.path(), 12);
    rx.shutdown().await;

    // Third life: everything is complete on disk, nothing is re-opened.
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    // Recovery runs before any batch is handled; a batch for another trace proves it is done.
    post_protobuf(rx.http_addr().unwrap(), vec![span(14, 1, 0)]).await;
    wait_run(tmp.path(), 14, 1).await;
    wait_until("trace 14 counted", || {
        m.runs_finalized.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(m.runs_finalized.load(Ordering::Relaxed), 1);
    assert_eq!(m.runs_rematerialized.load(Ordering::Relaxed), 0);
    rx.shutdown().await;

    // Fourth life: a torn events.jsonl (fewer lines than session.json says), damaged after the
    // checkpoint passed it, is not seen by the scan from the checkpoint ...
    let events_path = run_dir(tmp.path(), 12).join("events.jsonl");
    let full = std::fs::read_to_string(&events_path).unwrap();
    assert!(!full.is_empty());
    std::fs::write(&events_path, "").unwrap();
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    post_protobuf(rx.http_addr().unwrap(), vec![span(15, 1, 0)]).await;
    wait_run(tmp.path(), 15, 1).await;
    assert_eq!(std::fs::read_to_string(&events_path).unwrap(), "");
    assert_eq!(m.runs_rematerialized.load(Ordering::Relaxed), 0);
    rx.shutdown().await;

    // ... and is rebuilt by the full scan a start without index/ makes (the documented way to
    // re-check every run).
    std::fs::remove_dir_all(tmp.path().join("index")).unwrap();
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    wait_until("the torn run rewritten", || {
        m.runs_finalized.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(std::fs::read_to_string(&events_path).unwrap(), full);
    rx.shutdown().await;
}

/// A port that is free now and that nothing takes in the meantime unless asked for by number: it
/// lies below the kernel's ephemeral range, from which port-0 listeners (of the tests running in
/// parallel) and outgoing connections (the forwarder's retries) get theirs. A port from
/// `bind(":0")`, freed and bound again later, was taken by one of those now and then (AddrInUse).
fn free_port_below_ephemeral(from: u16) -> std::net::SocketAddr {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Spread concurrent test processes over the range; start at `from` when given.
    let span = low.saturating_sub(10_000).max(1);
    let start = if from > 0 {
        from
    } else {
        10_000 + (std::process::id() % u32::from(span)) as u16
    };
    (start..low)
        .chain(10_000..start)
        .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
        .find(|a| std::net::TcpListener::bind(a).is_ok())
        .expect("a free port below the ephemeral range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_reaches_targets_that_come_up_later() {
    // Two free ports the targets bind later: they are down when the first receiver starts.
    let http_target = free_port_below_ephemeral(0);
    let grpc_target = free_port_below_ephemeral(http_target.port() + 1);

    let main_dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(main_dir.path());
    cfg.forward = vec![
        format!("http://{http_target}/v1/traces"),
        format!("grpc://{grpc_target}"),
    ];
    let rx = start(cfg).await;
    post_protobuf(
        rx.http_addr().unwrap(),
        vec![span(15, 1, 0), span(15, 2, 1)],
    )
    .await;
    let m = rx.metrics();
    wait_until("a failed forward attempt", || {
        m.forward_failures.load(Ordering::Relaxed) >= 2
    })
    .await;

    // Now the targets come up: one takes HTTP, the other gRPC.
    let http_dir = tempfile::tempdir().unwrap();
    let mut hc = test_config(http_dir.path());
    hc.http_addr = Some(http_target);
    hc.grpc_addr = None;
    let http_rx = start(hc).await;
    let grpc_dir = tempfile::tempdir().unwrap();
    let mut gc = test_config(grpc_dir.path());
    gc.grpc_addr = Some(grpc_target);
    gc.http_addr = None;
    let grpc_rx = start(gc).await;

    let s = wait_run(http_dir.path(), 15, 2).await;
    assert_eq!(s.lineage.spans, 2);
    let s = wait_run(grpc_dir.path(), 15, 2).await;
    assert_eq!(s.lineage.spans, 2);
    wait_until("both deliveries counted", || {
        m.forward_sent.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(m.forward_dropped.load(Ordering::Relaxed), 0);
    rx.shutdown().await;
    http_rx.shutdown().await;
    grpc_rx.shutdown().await;
}
