//! OTLP protocol behaviour over real sockets: gRPC (tonic client, gzip), HTTP protobuf and JSON,
//! split and out-of-order delivery, duplicates, partial success and every error path.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::sync::atomic::Ordering;
use tonic::codec::CompressionEncoding;
use traj_receiver::http_server::RpcStatus;

async fn grpc_client(addr: std::net::SocketAddr) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_out_of_order_delivery_over_three_transports_makes_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let http_addr = rx.http_addr().unwrap();

    // Grandchild and child first, as OTLP/JSON on one connection.
    let r = http(
        http_addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        request_json(&[span(1, 3, 2), span(1, 2, 1)]).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, b"{}");

    // Another child, gzip protobuf on a second connection.
    let body = gzip(&request(vec![span(1, 4, 1)]).encode_to_vec());
    let r = http(
        http_addr,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    ExportTraceServiceResponse::decode(r.body.as_slice()).unwrap();

    // The root last over gRPC (gzip), together with a duplicate of span 2.
    let mut c = grpc_client(rx.grpc_addr().unwrap()).await;
    let resp = c
        .export(request(vec![span(1, 1, 0), span(1, 2, 1)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);

    let session = wait_run(tmp.path(), 1, 4).await;
    assert_eq!(session.lineage.spans, 4);
    assert_eq!(session.run_id, hex::encode(trace_id(1)));
    assert_eq!(session.service_name, "test-agent");
    assert!(session.root_span_seen);
    assert_run_valid(tmp.path(), 1);
    let m = rx.metrics();
    assert_eq!(m.spans_received.load(Ordering::Relaxed), 5);
    assert_eq!(m.spans_duplicate.load(Ordering::Relaxed), 1);
    wait_until("finalization counted", || {
        m.runs_finalized.load(Ordering::Relaxed) == 1
    })
    .await;
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_rejected_with_partial_success_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;

    let mut bad_span_id = span(2, 9, 1);
    bad_span_id.span_id = vec![1, 2, 3];
    let mut zero_trace = span(2, 8, 1);
    zero_trace.trace_id = vec![0; 16];
    let mut c = grpc_client(rx.grpc_addr().unwrap()).await;
    let resp = c
        .export(request(vec![
            span(2, 1, 0),
            bad_span_id.clone(),
            zero_trace,
        ]))
        .await
        .unwrap()
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message
            .contains("spans[1]: span id has 3 bytes, expected 8"),
        "{}",
        ps.error_message
    );
    assert!(ps.error_message.contains("spans[2]: trace id is all zeros"));

    // HTTP/JSON: the response is OTLP/JSON with rejectedSpans as a string.
    let mut bad_parent = span(2, 7, 1);
    bad_parent.parent_span_id = vec![1; 5];
    let r = http(
        rx.http_addr().unwrap(),
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        request_json(&[span(2, 2, 1), bad_parent]).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    assert!(v["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("parent span id has 5 bytes"));

    let session = wait_run(tmp.path(), 2, 2).await;
    assert_eq!(session.lineage.spans, 2);
    assert_eq!(rx.metrics().spans_rejected.load(Ordering::Relaxed), 3);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_error_paths_answer_with_status_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.max_request_bytes = 64 << 10;
    let rx = start(cfg).await;
    let addr = rx.http_addr().unwrap();

    // Malformed protobuf: 400 with a protobuf google.rpc.Status.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &[0x0a, 0xff, 0xff, 0xff, 0x0f],
    )
    .await;
    assert_eq!(r.status, 400);
    let st = RpcStatus::decode(r.body.as_slice()).unwrap();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("protobuf"), "{}", st.message);

    // Malformed JSON: 400 with a JSON Status naming the path.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 3);
    assert!(v["message"].as_str().unwrap().contains("traceId"), "{v}");

    // Bad gzip: 400.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        b"definitely not gzip",
    )
    .await;
    assert_eq!(r.status, 400);

    // Unsupported content type: 415.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        b"hello",
    )
    .await;
    assert_eq!(r.status, 415);

    // Unsupported content encoding: 415.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "br"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 415);

    // A gzip bomb: small on the wire, far over the limit once inflated: 413.
    let bomb = gzip(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10);
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    )
    .await;
    assert_eq!(r.status, 413);
    let st = RpcStatus::decode(r.body.as_slice()).unwrap();
    assert_eq!(st.code, 8);

    // Plainly over the limit on the wire: 413.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &vec![0u8; 128 << 10],
    )
    .await;
    assert_eq!(r.status, 413);

    // The process is alive and serves health and metrics.
    let r = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    let r = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("traj_receiver_spans_received_total 0\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE traj_receiver_open_runs gauge"));
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_map_to_status_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.max_request_bytes = 256 << 10;
    let rx = start(cfg).await;
    let mut c = grpc_client(rx.grpc_addr().unwrap()).await;

    // Highly compressible request far over the limit once inflated.
    let mut big = span(3, 1, 0);
    big.attributes.push(str_attr("blob", &"a".repeat(4 << 20)));
    let err = c.export(request(vec![big])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // Uncompressed and over the limit.
    let mut plain = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
        .await
        .unwrap();
    let mut big = span(3, 1, 0);
    big.attributes
        .push(str_attr("blob", &"a".repeat(512 << 10)));
    let err = plain.export(request(vec![big])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // Malformed protobuf bytes inside a valid gRPC frame.
    let err = raw_grpc_export(rx.grpc_addr().unwrap(), vec![0x0a, 0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // Still serving.
    c.export(request(vec![span(3, 2, 0)])).await.unwrap();
    wait_run(tmp.path(), 3, 1).await;
    rx.shutdown().await;
}

/// Sends arbitrary bytes as the Export request message.
async fn raw_grpc_export(
    addr: std::net::SocketAddr,
    payload: Vec<u8>,
) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let req = tonic::Request::new(RawBytes(payload));
    grpc.unary::<RawBytes, RawBytes, _>(req, path, RawCodec)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, Default)]
struct RawBytes(Vec<u8>);

#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = RawBytes;
    type Decode = RawBytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: RawBytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<RawBytes>, tonic::Status> {
        use bytes::Buf;
        let v = src.copy_to_bytes(src.remaining()).to_vec();
        Ok(Some(RawBytes(v)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_open_runs_cap_refuses_with_retry_after_and_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(tmp.path());
    cfg.max_open_runs = 1;
    let rx = start(cfg).await;
    let m = rx.metrics();

    // A run without root stays open (idle timeout 30 s).
    let mut c = grpc_client(rx.grpc_addr().unwrap()).await;
    c.export(request(vec![span(4, 2, 1)])).await.unwrap();
    wait_until("one open run", || m.open_runs.load(Ordering::Relaxed) == 1).await;

    let r = http(
        rx.http_addr().unwrap(),
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request(vec![span(5, 1, 0)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let st = RpcStatus::decode(r.body.as_slice()).unwrap();
    assert_eq!(st.code, 14);

    let err = c.export(request(vec![span(5, 1, 0)])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(m.requests_refused.load(Ordering::Relaxed), 2);
    assert_eq!(m.spans_received.load(Ordering::Relaxed), 1);
    rx.shutdown().await;
}
