//! The real Rust OTLP exporter (`opentelemetry-otlp`, gRPC and HTTP/protobuf) sending spans
//! made by the OpenTelemetry SDK into an in-process receiver.

mod common;

use common::*;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Makes a root with two children using `provider`, flushes, returns the trace id (hex).
fn emit(provider: &SdkTracerProvider) -> String {
    let tracer = provider.tracer("receiver-test");
    let root = tracer.start("invoke_workflow agent");
    let trace_id = root.span_context().trace_id().to_string();
    let cx = opentelemetry::Context::current_with_span(root);
    for name in ["plan planner", "invoke_agent worker"] {
        let mut child = tracer.start_with_context(name, &cx);
        child.set_attribute(KeyValue::new("test.attr", "x"));
        child.end();
    }
    cx.span().end();
    provider.force_flush().unwrap();
    trace_id
}

async fn wait_trace(data: &std::path::Path, trace_hex: &str, spans: u64) -> traj_schema::Session {
    let path = data.join("runs").join(trace_hex).join("session.json");
    wait_until("the exported run", || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<traj_schema::Session>(&t).ok())
            .is_some_and(|s| s.lineage.spans >= spans)
    })
    .await;
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_grpc_exporter_delivers_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", rx.grpc_addr().unwrap()))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("rust-sdk").build())
        .build();
    let p = provider.clone();
    let trace_hex = tokio::task::spawn_blocking(move || emit(&p)).await.unwrap();
    let s = wait_trace(tmp.path(), &trace_hex, 3).await;
    assert_eq!(s.lineage.spans, 3);
    assert_eq!(s.service_name, "rust-sdk");
    assert!(s.root_span_seen);
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_http_protobuf_exporter_delivers_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = start(test_config(tmp.path())).await;
    let endpoint = format!("http://{}/v1/traces", rx.http_addr().unwrap());
    // The blocking HTTP client must live outside the async runtime.
    let (trace_hex, provider) = tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("rust-sdk-http")
                    .build(),
            )
            .build();
        (emit(&provider), provider)
    })
    .await
    .unwrap();
    let s = wait_trace(tmp.path(), &trace_hex, 3).await;
    assert_eq!(s.lineage.spans, 3);
    assert_eq!(s.service_name, "rust-sdk-http");
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    rx.shutdown().await;
}
