//! OTLP logs over real sockets and a real data dir: every transport (gRPC with the generated
//! tonic client, HTTP protobuf and JSON, gzip), partial success for malformed records, untraced
//! records, the shared caps, auth and limits, logs before and after their spans (handed to
//! assembly: `traj_receiver_log_records_joined_total`), late logs re-opening a finalized run,
//! log-only traces dropped after the idle timeout, and recovery of both record kinds.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use traj_receiver::http_server::RpcStatus;
use traj_receiver::ReceiverMetrics;
use traj_receiver::{RunManager, RunManagerConfig, TraceIndexDb};
use traj_store::{RecordKind, Store, StoreConfig};

async fn logs_client(addr: std::net::SocketAddr) -> LogsServiceClient<tonic::transport::Channel> {
    LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    gzipped: bool,
    body: &[u8],
) -> HttpResponse {
    let body = if gzipped { gzip(body) } else { body.to_vec() };
    let mut headers = vec![("Content-Type", content_type)];
    if gzipped {
        headers.push(("Content-Encoding", "gzip"));
    }
    http(addr, "POST", path, &headers, &body).await
}

async fn post_logs_proto(addr: std::net::SocketAddr, records: Vec<LogRecord>) {
    let r = post(
        addr,
        "/v1/logs",
        "application/x-protobuf",
        false,
        &logs_request(records).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let resp = ExportLogsServiceResponse::decode(r.body.as_slice()).unwrap();
    assert_eq!(resp.partial_success, None);
}

async fn post_spans(
    addr: std::net::SocketAddr,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) {
    let r = post(
        addr,
        "/v1/traces",
        "application/x-protobuf",
        false,
        &request(spans).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn get(m: &ReceiverMetrics, f: impl Fn(&ReceiverMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
    f(m).load(Ordering::Relaxed)
}

fn body_content(r: &LogRecord) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::KvlistValue(kv)) => {
            match kv.values[0].value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_over_grpc_http_protobuf_json_and_gzip_are_stored_and_joined() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    let http_addr = rx.http_addr().unwrap();

    // gRPC, the generated client, plain and gzip.
    let mut c = logs_client(rx.grpc_addr().unwrap()).await;
    let resp = c
        .export(logs_request(vec![log_record(20, 2, 1)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    let mut gz = logs_client(rx.grpc_addr().unwrap())
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    gz.export(logs_request(vec![log_record(20, 2, 2)]))
        .await
        .unwrap();

    // HTTP protobuf, plain and gzip.
    for (n, gzipped) in [(3u8, false), (4, true)] {
        let r = post(
            http_addr,
            "/v1/logs",
            "application/x-protobuf",
            gzipped,
            &logs_request(vec![log_record(20, 1, n)]).encode_to_vec(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(
            ExportLogsServiceResponse::decode(r.body.as_slice()).unwrap(),
            ExportLogsServiceResponse::default()
        );
    }
    // HTTP JSON (hex ids, string int64), plain and gzip.
    for (n, gzipped) in [(5u8, false), (6, true)] {
        let r = post(
            http_addr,
            "/v1/logs",
            "application/json",
            gzipped,
            logs_request_json(&[log_record(20, 1, n)]).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{}");
    }
    assert_eq!(get(&m, |m| &m.log_records_received), 6);
    assert_eq!(get(&m, |m| &m.spans_received), 0);

    // The spans come afterwards; the run takes all six records.
    post_spans(http_addr, vec![span(20, 2, 1), span(20, 1, 0)]).await;
    wait_run(tmp.path(), 20, 2).await;
    wait_until("run finalized", || get(&m, |m| &m.runs_finalized) == 1).await;
    assert_eq!(get(&m, |m| &m.log_records_joined), 6);
    assert_run_valid(tmp.path(), 20);
    rx.shutdown().await;

    // Raw: one logs record per request, each decoding to the record sent (JSON ones included).
    let raw = raw_records(tmp.path());
    let kinds: Vec<RecordKind> = raw.iter().map(|r| r.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == RecordKind::Logs).count(), 6);
    assert_eq!(
        kinds.iter().filter(|k| **k == RecordKind::Traces).count(),
        1
    );
    let logs = raw_log_records(tmp.path());
    let mut contents: Vec<String> = logs.iter().map(body_content).collect();
    contents.sort();
    assert_eq!(
        contents,
        (1..=6).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    for r in &logs {
        assert_eq!(r.trace_id, trace_id(20));
        let n: u8 = body_content(r)["message ".len()..].parse().unwrap();
        assert_eq!(
            r,
            &log_record(20, if n <= 2 { 2 } else { 1 }, n),
            "record {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_log_records_get_partial_success_and_the_rest_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    let batch = |base: u8| {
        let mut short_trace = log_record(30, 1, base + 1);
        short_trace.trace_id.truncate(15);
        let mut long_span = log_record(30, 1, base + 2);
        long_span.span_id.push(9);
        vec![
            log_record(30, 1, base),
            short_trace,
            long_span,
            log_record(30, 0, base + 3),
            untraced_log_record(base + 4),
        ]
    };

    // gRPC.
    let resp = logs_client(rx.grpc_addr().unwrap())
        .await
        .export(logs_request(batch(0)))
        .await
        .unwrap()
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_log_records, 2);
    assert_eq!(
        ps.error_message,
        "2 log records rejected: resourceLogs[0].scopeLogs[0].logRecords[1]: trace id has 15 \
         bytes, expected 16 (or none); resourceLogs[0].scopeLogs[0].logRecords[2]: span id has 9 \
         bytes, expected 8 (or none)"
    );

    // HTTP protobuf.
    let r = post(
        rx.http_addr().unwrap(),
        "/v1/logs",
        "application/x-protobuf",
        false,
        &logs_request(batch(10)).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    let resp = ExportLogsServiceResponse::decode(r.body.as_slice()).unwrap();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 2);

    // HTTP JSON (the JSON helper keeps the bad id lengths: they are valid hex).
    let r = post(
        rx.http_addr().unwrap(),
        "/v1/logs",
        "application/json",
        false,
        logs_request_json(&batch(20)).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "2");
    assert!(v["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("logRecords[1]: trace id has 15 bytes"));

    // Only bad records: nothing stored, all rejected.
    let mut bad = log_record(30, 1, 99);
    bad.span_id = vec![1, 2, 3];
    let resp = logs_client(rx.grpc_addr().unwrap())
        .await
        .export(logs_request(vec![bad]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);

    assert_eq!(get(&m, |m| &m.log_records_rejected), 7);
    assert_eq!(get(&m, |m| &m.log_records_received), 9);
    assert_eq!(get(&m, |m| &m.log_records_untraced), 3);
    let text = http(rx.http_addr().unwrap(), "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(text.body).unwrap();
    for line in [
        "traj_receiver_log_records_received_total 9\n",
        "traj_receiver_log_records_rejected_total 7\n",
        "traj_receiver_log_records_untraced_total 3\n",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    rx.shutdown().await;

    // Raw holds exactly the nine valid records, the untraced ones included.
    let mut kept: Vec<String> = raw_log_records(tmp.path())
        .iter()
        .map(body_content)
        .collect();
    kept.sort();
    let mut want: Vec<String> = [0u8, 3, 4, 10, 13, 14, 20, 23, 24]
        .iter()
        .map(|n| format!("message {n}"))
        .collect();
    want.sort();
    assert_eq!(kept, want);
    assert_eq!(
        raw_records(tmp.path()).len(),
        3,
        "one record per accepted request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_before_between_and_after_spans_are_handed_to_assembly() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    let addr = rx.http_addr().unwrap();
    let mut grpc_logs = logs_client(rx.grpc_addr().unwrap()).await;

    // Logs before, between and after the spans of an open run, in separate batches and over
    // both transports.
    post_logs_proto(addr, vec![log_record(21, 2, 1)]).await;
    post_spans(addr, vec![span(21, 2, 1)]).await;
    grpc_logs
        .export(logs_request(vec![
            log_record(21, 2, 2),
            log_record(21, 1, 3),
        ]))
        .await
        .unwrap();
    post_spans(addr, vec![span(21, 1, 0)]).await;
    post_logs_proto(addr, vec![log_record(21, 1, 4)]).await;
    let first = wait_run(tmp.path(), 21, 2).await;
    assert!(first.root_span_seen);
    wait_until("first finalization", || get(&m, |m| &m.runs_finalized) == 1).await;
    assert_eq!(get(&m, |m| &m.log_records_joined), 4);
    assert_eq!(get(&m, |m| &m.runs_rematerialized), 0);

    // A late log record re-opens the finalized run from raw: 4 records from raw + 1 new.
    post_logs_proto(addr, vec![log_record(21, 2, 5)]).await;
    wait_until("re-finalization", || get(&m, |m| &m.runs_finalized) == 2).await;
    assert_eq!(get(&m, |m| &m.runs_rematerialized), 1);
    assert_eq!(get(&m, |m| &m.log_records_joined), 4 + 5);
    let second = wait_run(tmp.path(), 21, 2).await;
    assert_eq!(second.lineage.spans, 2);

    // A repeated record (a client retry) changes nothing and re-opens nothing.
    post_logs_proto(addr, vec![log_record(21, 2, 5)]).await;
    wait_until("duplicate counted", || {
        get(&m, |m| &m.log_records_duplicate) == 1
    })
    .await;
    assert_eq!(get(&m, |m| &m.runs_rematerialized), 1);
    assert_eq!(get(&m, |m| &m.open_runs), 0);

    // A late span re-opens it too and its assembly still gets every log record.
    post_spans(addr, vec![span(21, 3, 1)]).await;
    wait_run(tmp.path(), 21, 3).await;
    wait_until("third finalization", || get(&m, |m| &m.runs_finalized) == 3).await;
    assert_eq!(get(&m, |m| &m.log_records_joined), 4 + 5 + 5);
    assert_run_valid(tmp.path(), 21);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_with_only_logs_is_dropped_after_the_idle_timeout_and_joins_later_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    // Long enough that a loaded machine still sees the trace held before it is dropped.
    cfg.idle_timeout = Duration::from_secs(2);
    let rx = start(cfg).await;
    let m = rx.metrics();
    let addr = rx.http_addr().unwrap();

    post_logs_proto(addr, vec![log_record(22, 1, 1), log_record(22, 1, 2)]).await;
    wait_until("the log-only trace held", || get(&m, |m| &m.open_runs) == 1).await;
    wait_until("the log-only trace dropped", || {
        get(&m, |m| &m.log_traces_dropped) == 1
    })
    .await;
    assert_eq!(get(&m, |m| &m.open_runs), 0);
    assert_eq!(get(&m, |m| &m.runs_finalized), 0);
    assert!(!run_dir(tmp.path(), 22).exists(), "no run without spans");

    // The spans arrive much later: the records come back from raw and join the run; this is
    // the trace's first run, not a re-materialization.
    post_spans(addr, vec![span(22, 1, 0)]).await;
    wait_run(tmp.path(), 22, 1).await;
    wait_until("finalized", || get(&m, |m| &m.runs_finalized) == 1).await;
    assert_eq!(get(&m, |m| &m.log_records_joined), 2);
    assert_eq!(get(&m, |m| &m.runs_rematerialized), 0);
    assert_eq!(get(&m, |m| &m.log_traces_dropped), 1);
    rx.shutdown().await;
    assert_eq!(
        raw_log_records(tmp.path()).len(),
        2,
        "the raw records stayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_runs_with_logs_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.grace_period = Duration::from_secs(3600);
    cfg.idle_timeout = Duration::from_secs(3600);
    let rx = start(cfg).await;
    let mut traces = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
        .await
        .unwrap();
    let mut logs = logs_client(rx.grpc_addr().unwrap()).await;
    logs.export(logs_request(vec![log_record(23, 1, 1)]))
        .await
        .unwrap();
    traces
        .export(request(vec![span(23, 1, 0), span(23, 2, 1)]))
        .await
        .unwrap();
    logs.export(logs_request(vec![
        log_record(23, 2, 2),
        log_record(23, 2, 3),
    ]))
    .await
    .unwrap();
    rx.shutdown().await;
    assert!(!run_dir(tmp.path(), 23).join("session.json").exists());

    let rx = start(test_config(tmp.path())).await;
    let m = rx.metrics();
    wait_run(tmp.path(), 23, 2).await;
    wait_until("finalized after the restart", || {
        get(&m, |m| &m.runs_finalized) == 1
    })
    .await;
    assert_eq!(get(&m, |m| &m.log_records_joined), 3);
    assert_run_valid(tmp.path(), 23);
    rx.shutdown().await;
}

fn manager(data: &std::path::Path, metrics: &Arc<ReceiverMetrics>) -> RunManager {
    let (store, _) = Store::open(StoreConfig::new(data)).unwrap();
    let cfg = RunManagerConfig {
        runs_dir: traj_runs::runs_dir_of(data),
        grace_period: Duration::from_millis(10),
        idle_timeout: Duration::from_millis(10),
        late_window: Duration::from_secs(60),
        durability: traj_runs::Durability::RenameOnly,
        shard: traj_receiver::Shard::ONLY,
    };
    let index = TraceIndexDb::open(&TraceIndexDb::path_in(data)).unwrap();
    RunManager::new(
        cfg,
        store,
        index,
        traj_receiver::RetentionFloor::new(1),
        Arc::new(traj_assemble::MappingRules::default()),
        Arc::clone(metrics),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_replays_log_records_from_the_raw_store() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("runs")).unwrap();
    {
        // Written the way ingest writes them; then the process state is gone.
        let (store, _) = Store::open(StoreConfig::new(tmp.path())).unwrap();
        let logs = logs_request(vec![log_record(25, 1, 1), untraced_log_record(2)]);
        store
            .append_kind(RecordKind::Logs, logs.encode_to_vec().into())
            .await
            .unwrap();
        store
            .append(request(vec![span(25, 1, 0)]).encode_to_vec().into())
            .await
            .unwrap();
        let logs = logs_request(vec![
            log_record(25, 1, 3),
            log_record(26, 4, 4),
            log_record(25, 1, 1), // stored twice: a retried batch
        ]);
        store
            .append_kind(RecordKind::Logs, logs.encode_to_vec().into())
            .await
            .unwrap();
        store.close().await.unwrap();
    }

    let metrics = Arc::new(ReceiverMetrics::default());
    let mut rm = manager(tmp.path(), &metrics);
    let summary = rm.recover();
    assert_eq!(summary.records, 3);
    assert_eq!(summary.traces, 1, "only trace 25 has spans");
    assert_eq!(summary.reopened, 1);
    assert_eq!(summary.log_records, 4);
    assert_eq!(summary.untraced_log_records, 1);
    assert_eq!(summary.log_only_traces, 1);
    assert_eq!(summary.bad_records, 0);
    assert_eq!(rm.open_runs(), 1, "the log-only trace is not re-opened");
    let held = get(&metrics, |m| &m.open_run_bytes);
    assert!(
        held > 0,
        "the re-opened run's span and log records are counted"
    );
    // Everything is due a day from now.
    rm.finalize_due(std::time::Instant::now() + Duration::from_secs(86_400));
    assert_eq!(get(&metrics, |m| &m.runs_finalized), 1);
    assert_eq!(
        get(&metrics, |m| &m.open_run_bytes),
        0,
        "nothing is held once the run is written (was {held})"
    );
    assert_eq!(
        get(&metrics, |m| &m.log_records_joined),
        2,
        "records 1 and 3, once each"
    );
    assert_eq!(get(&metrics, |m| &m.log_traces_dropped), 0);
    drop(rm);

    // The run is on disk now: nothing to re-open ...
    let mut rm = manager(tmp.path(), &metrics);
    assert_eq!(rm.recover().reopened, 0);
    drop(rm);

    // ... unless the session says it holds fewer log records than raw (`lineage.log_records`,
    // read when present), and not when it holds them all.
    let session_path = run_dir(tmp.path(), 25).join("session.json");
    let mut session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session_path).unwrap()).unwrap();
    for (on_disk, reopened) in [(1u64, 1u64), (2, 0)] {
        session["lineage"]["log_records"] = on_disk.into();
        std::fs::write(&session_path, session.to_string()).unwrap();
        // A run edited below the checkpoint is not rescanned; without index/ the next start
        // scans all of raw (the documented way to re-check every run).
        std::fs::remove_dir_all(tmp.path().join("index")).unwrap();
        let mut rm = manager(tmp.path(), &metrics);
        assert_eq!(rm.recover().reopened, reopened, "log_records = {on_disk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_share_the_caps_auth_limits_and_error_mapping_of_traces() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret-token-for-logs-tests\n").unwrap();
    let mut cfg = test_config(&tmp.path().join("data"));
    cfg.max_open_runs = 1;
    cfg.max_request_bytes = 64 << 10;
    cfg.auth_token_file = Some(token);
    cfg.redact_before_store = Some(traj_redact::Policy::default_source());
    let rx = start(cfg).await;
    let m = rx.metrics();
    let data = tmp.path().join("data");
    let http_addr = rx.http_addr().unwrap();
    let grpc_addr = rx.grpc_addr().unwrap();
    let auth = ("Authorization", "Bearer s3cret-token-for-logs-tests");
    let proto = ("Content-Type", "application/x-protobuf");

    // Auth: 401 / UNAUTHENTICATED without the token.
    let body = logs_request(vec![log_record(27, 1, 1)]).encode_to_vec();
    let r = http(http_addr, "POST", "/v1/logs", &[proto], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let err = logs_client(grpc_addr)
        .await
        .export(logs_request(vec![log_record(27, 1, 1)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(get(&m, |m| &m.log_records_received), 0);

    // Size limit and undecodable bodies, with the logs message named (checked while the caps
    // have room: a full cap refuses before the body is decoded, as for traces).
    let big = vec![0u8; 65 << 10];
    let r = http(http_addr, "POST", "/v1/logs", &[proto, auth], &big).await;
    assert_eq!(r.status, 413);
    let r = http(
        http_addr,
        "POST",
        "/v1/logs",
        &[proto, auth],
        &[0x0a, 0xff, 0xff],
    )
    .await;
    assert_eq!(r.status, 400);
    let st = RpcStatus::decode(r.body.as_slice()).unwrap();
    assert_eq!(st.code, 3);
    assert!(
        st.message
            .starts_with("invalid protobuf ExportLogsServiceRequest"),
        "{}",
        st.message
    );
    let r = http(
        http_addr,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json"), auth],
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("traceId"));
    let mut big_req = tonic::Request::new(ExportLogsServiceRequest {
        resource_logs: logs_request(vec![{
            let mut r = log_record(27, 1, 3);
            r.attributes.push(str_attr("blob", &"a".repeat(100 << 10)));
            r
        }])
        .resource_logs,
    });
    big_req.metadata_mut().insert(
        "authorization",
        "Bearer s3cret-token-for-logs-tests".parse().unwrap(),
    );
    let err = logs_client(grpc_addr)
        .await
        .export(big_req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // Receive-side redaction reaches log bodies: the e-mail never lands in raw.
    let mut secret = log_record(27, 1, 2);
    secret.body = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
        value: Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "mail carol.white@example.net".into(),
            ),
        ),
    });
    let r = http(
        http_addr,
        "POST",
        "/v1/logs",
        &[proto, auth],
        &logs_request(vec![secret]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_until("one open (log-only) trace", || {
        get(&m, |m| &m.open_runs) == 1
    })
    .await;

    // The open-runs cap counts log-only traces and refuses logs (retryable) like spans.
    let r = http(
        http_addr,
        "POST",
        "/v1/logs",
        &[proto, auth],
        &logs_request(vec![log_record(28, 1, 1)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(RpcStatus::decode(r.body.as_slice()).unwrap().code, 14);
    let mut req = tonic::Request::new(logs_request(vec![log_record(28, 1, 1)]));
    req.metadata_mut().insert(
        "authorization",
        "Bearer s3cret-token-for-logs-tests".parse().unwrap(),
    );
    let err = logs_client(grpc_addr).await.export(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");

    assert_eq!(get(&m, |m| &m.log_records_received), 1);
    rx.shutdown().await;
    let raw: Vec<u8> = raw_records(&data)
        .into_iter()
        .flat_map(|r| r.payload.to_vec())
        .collect();
    assert!(!raw.is_empty());
    assert!(
        !raw.windows(11).any(|w| w == b"carol.white"),
        "the e-mail reached the raw store"
    );
    let stored = raw_log_records(&data);
    assert_eq!(stored.len(), 1);
    assert!(format!("{:?}", stored[0].body).contains("[REDACTED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logs_batch_larger_than_the_in_flight_cap_is_admitted_alone_and_releases_its_share() {
    // `max_spans_in_flight` bounds spans and log records together: a logs batch larger than the
    // whole cap passes alone (like a span batch) and is fully stored; its share is released
    // once the run manager took it, so later logs and spans are admitted.
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.max_spans_in_flight = 2;
    let rx = start(cfg).await;
    let m = rx.metrics();
    let addr = rx.http_addr().unwrap();
    let records: Vec<LogRecord> = (1..=5).map(|n| log_record(29, 1, n)).collect();
    post_logs_proto(addr, records).await;
    assert_eq!(get(&m, |m| &m.log_records_received), 5);
    wait_until("batch taken by the run manager", || {
        get(&m, |m| &m.queue_depth) == 0
    })
    .await;
    for round in 0..3u8 {
        post_logs_proto(
            addr,
            vec![log_record(29, 1, 10 + round), log_record(29, 1, 20 + round)],
        )
        .await;
        // The two records fill the cap until the run manager takes them.
        wait_until("logs taken", || get(&m, |m| &m.queue_depth) == 0).await;
        post_spans(addr, vec![span(29, 2 + round, 1)]).await;
        wait_until("spans taken", || get(&m, |m| &m.queue_depth) == 0).await;
    }
    assert_eq!(get(&m, |m| &m.log_records_received), 11);
    assert_eq!(get(&m, |m| &m.requests_refused), 0);
    rx.shutdown().await;
    assert_eq!(raw_log_records(tmp.path()).len(), 11);
}
