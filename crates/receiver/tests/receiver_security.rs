//! Security of the receiver over real sockets: loopback defaults, bearer-token authentication on
//! both transports (rejected before the body is read), receive-side redaction before the raw
//! store, and TLS.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traj_receiver::http_server::RpcStatus;

const TOKEN: &str = "t0ken-for-the-security-tests-4242";

fn token_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    p
}

#[test]
fn defaults_bind_loopback_only() {
    let cfg = traj_receiver::ReceiverConfig::new("/tmp/unused");
    let grpc = cfg.grpc_addr.unwrap();
    let http = cfg.http_addr.unwrap();
    assert!(grpc.ip().is_loopback() && http.ip().is_loopback());
    assert_eq!((grpc.port(), http.port()), (4317, 4318));
    assert!(cfg.auth_token_file.is_none() && cfg.tls.is_none());
    assert!(cfg.redact_before_store.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requires_the_bearer_token_except_healthz() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cfg = test_config(&data);
    cfg.auth_token_file = Some(token_file(tmp.path()));
    let rx = start(cfg).await;
    let addr = rx.http_addr().unwrap();
    let body = request(vec![span(1, 1, 0)]).encode_to_vec();
    let pb = ("Content-Type", "application/x-protobuf");
    let good = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");

    for auth in [None, Some(wrong.as_str()), Some("Basic dXNlcjpwYXNz")] {
        let mut headers = vec![pb];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let r = http(addr, "POST", "/v1/traces", &headers, &body).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        let st = RpcStatus::decode(r.body.as_slice()).unwrap();
        assert_eq!(st.code, 16, "UNAUTHENTICATED");
        let r = http(addr, "GET", "/metrics", &headers[1..], b"").await;
        assert_eq!(r.status, 401, "/metrics with {auth:?}");
    }
    assert_eq!(rx.metrics().requests.load(Ordering::Relaxed), 0);

    let r = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok\n".as_slice()));
    let r = http(addr, "GET", "/metrics", &[("Authorization", &good)], b"").await;
    assert_eq!(r.status, 200);
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[pb, ("Authorization", &good)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    wait_run(&data, 1, 1).await;
    assert_run_valid(&data, 1);
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_with_a_wrong_token_is_refused_before_it_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&tmp.path().join("data"));
    cfg.auth_token_file = Some(token_file(tmp.path()));
    let rx = start(cfg).await;
    let addr = rx.http_addr().unwrap();
    // Announce 1 GiB but send none of it: the 401 can only come before the body is read.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Authorization: Bearer wrong-token-wrong-token\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed without a response");
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no response while the body was withheld");
    let head = String::from_utf8_lossy(&raw);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer"));
    assert_eq!(rx.metrics().requests.load(Ordering::Relaxed), 0);
    rx.shutdown().await;
}

async fn grpc_client(addr: std::net::SocketAddr) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn with_auth(
    req: ExportTraceServiceRequest,
    auth: Option<&str>,
) -> tonic::Request<ExportTraceServiceRequest> {
    let mut r = tonic::Request::new(req);
    if let Some(a) = auth {
        r.metadata_mut().insert("authorization", a.parse().unwrap());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requires_the_bearer_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cfg = test_config(&data);
    cfg.auth_token_file = Some(token_file(tmp.path()));
    let rx = start(cfg).await;
    let mut c = grpc_client(rx.grpc_addr().unwrap()).await;
    let wrong = format!("Bearer {}", &TOKEN[1..]);
    for auth in [None, Some(wrong.as_str()), Some("Bearer ")] {
        let err = c
            .export(with_auth(request(vec![span(2, 1, 0)]), auth))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{auth:?}");
    }
    assert_eq!(rx.metrics().requests.load(Ordering::Relaxed), 0);

    // A client-streaming call whose body never arrives: refused from the headers alone.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", rx.grpc_addr().unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut g = tonic::client::Grpc::new(ch);
    g.ready().await.unwrap();
    let mut req = tonic::Request::new(tonic::codegen::tokio_stream::pending::<Vec<u8>>());
    req.metadata_mut()
        .insert("authorization", wrong.parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        g.client_streaming(req, path, RawCodec),
    )
    .await
    .expect("refused without waiting for the body");
    assert_eq!(res.unwrap_err().code(), tonic::Code::Unauthenticated);

    let good = format!("Bearer {TOKEN}");
    c.export(with_auth(request(vec![span(2, 1, 0)]), Some(&good)))
        .await
        .unwrap();
    wait_run(&data, 2, 1).await;
    assert_run_valid(&data, 2);
    rx.shutdown().await;
}

/// A gRPC codec passing message bytes through (the body of the never-ending stream above).
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEnc;
struct RawDec;

impl tonic::codec::Encoder for RawEnc {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

const API_KEY: &str = "sk-proj-Zq7vK2mN9xR4tW8yB3cF6hJ1";
const EMAIL: &str = "carol.jones@example.org";

/// Every file under `dir`, recursively, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn secret_span(t: u8) -> opentelemetry_proto::tonic::trace::v1::Span {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    let mut s = span(t, 1, 0);
    s.attributes.push(str_attr(
        "traj.goal",
        &format!("mail {EMAIL} using key {API_KEY}"),
    ));
    s.attributes.push(str_attr(
        "http.request.body",
        &format!("{{\"k\":\"{API_KEY}\"}}"),
    ));
    s.events.push(Event {
        time_unix_nano: s.start_time_unix_nano + 10,
        name: "exception".into(),
        attributes: vec![
            str_attr("exception.type", "Boom"),
            str_attr("exception.message", &format!("cannot reach {EMAIL}")),
        ],
        ..Default::default()
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_side_redaction_keeps_secrets_off_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cfg = test_config(&data);
    cfg.redact_before_store = Some(traj_redact::Policy::default_source());
    let rx = start(cfg).await;
    // Over HTTP/protobuf (whose raw body would otherwise be stored as-is) and gRPC.
    let body = request(vec![secret_span(1)]).encode_to_vec();
    let r = http(
        rx.http_addr().unwrap(),
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let mut c = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
        .await
        .unwrap();
    c.export(request(vec![secret_span(2)])).await.unwrap();
    for t in [1, 2] {
        wait_run(&data, t, 1).await;
        assert_run_valid(&data, t);
    }
    rx.shutdown().await;

    let raw = all_bytes(&data.join("raw"));
    assert!(
        contains(&raw, "test-agent"),
        "the raw store holds the batches"
    );
    assert!(!contains(&raw, API_KEY) && !contains(&raw, EMAIL));
    assert!(!contains(&raw, "carol.jones") && !contains(&raw, "Zq7vK2mN9xR4tW8yB3cF6hJ1"));
    assert!(contains(&raw, "[REDACTED:API_KEY]") && contains(&raw, "[REDACTED:EMAIL]"));
    for t in [1, 2] {
        let run = all_bytes(&run_dir(&data, t));
        assert!(!contains(&run, API_KEY) && !contains(&run, EMAIL));
        let events = std::fs::read_to_string(run_dir(&data, t).join("events.jsonl")).unwrap();
        let session = std::fs::read_to_string(run_dir(&data, t).join("session.json")).unwrap();
        assert!(events.contains("cannot reach [REDACTED:EMAIL]"), "{events}");
        let s: traj_schema::Session = serde_json::from_str(&session).unwrap();
        assert_eq!(s.goal, "mail [REDACTED:EMAIL] using key [REDACTED:API_KEY]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receive_side_redaction_the_raw_store_holds_what_arrived() {
    // The control for the test above: the secrets would reach disk.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rx = start(test_config(&data)).await;
    let mut c = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
        .await
        .unwrap();
    c.export(request(vec![secret_span(3)])).await.unwrap();
    wait_run(&data, 3, 1).await;
    rx.shutdown().await;
    let raw = all_bytes(&data.join("raw"));
    assert!(contains(&raw, API_KEY) && contains(&raw, EMAIL));
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tls")
        .join(name)
}

fn tls_config(data: &Path) -> traj_receiver::ReceiverConfig {
    let mut cfg = test_config(data);
    cfg.tls = Some(traj_receiver::TlsFiles {
        cert: tls_fixture("server.pem"),
        key: tls_fixture("server.key"),
    });
    cfg
}

/// One HTTP/1.1 request over TLS (trusting the test CA, server name `localhost`); returns the
/// status code and the body.
async fn https(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(tls_fixture("ca.pem")).unwrap();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    let mut raw = Vec::new();
    // The server closes after `Connection: close`; a missing close_notify is not an error here.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    Ok((status, raw[split..].to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_export_over_both_transports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rx = start(tls_config(&data)).await;

    // gRPC over TLS (tonic, tls-ring), trusting the test CA.
    let ca = std::fs::read(tls_fixture("ca.pem")).unwrap();
    let client_tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let ch = tonic::transport::Endpoint::from_shared(format!(
        "https://127.0.0.1:{}",
        rx.grpc_addr().unwrap().port()
    ))
    .unwrap()
    .tls_config(client_tls)
    .unwrap()
    .connect()
    .await
    .unwrap();
    TraceServiceClient::new(ch)
        .export(request(vec![span(1, 1, 0)]))
        .await
        .unwrap();

    // HTTP/protobuf over TLS (tokio-rustls).
    let addr = rx.http_addr().unwrap();
    let body = request(vec![span(2, 1, 0)]).encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, _) = https(addr, &head, &body).await.unwrap();
    assert_eq!(status, 200);
    let (status, body) = https(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await
    .unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));

    for t in [1, 2] {
        wait_run(&data, t, 1).await;
        assert_run_valid(&data, t);
    }
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_clients_cannot_talk_to_a_tls_port() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rx = start(tls_config(&data)).await;

    // Plain HTTP to the TLS port: no HTTP response, the connection is closed.
    let mut s = tokio::net::TcpStream::connect(rx.http_addr().unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await;
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );

    // Plain-text gRPC to the TLS port fails.
    let plain = async {
        let mut c = TraceServiceClient::connect(format!("http://{}", rx.grpc_addr().unwrap()))
            .await
            .map_err(|e| e.to_string())?;
        c.export(request(vec![span(3, 1, 0)]))
            .await
            .map_err(|e| e.to_string())
    };
    let res = tokio::time::timeout(Duration::from_secs(30), plain).await;
    assert!(matches!(res, Ok(Err(_))), "plain gRPC must fail: {res:?}");

    // A TLS client that does not trust the certificate fails too (no silent downgrade).
    let ch = tonic::transport::Endpoint::from_shared(format!(
        "https://127.0.0.1:{}",
        rx.grpc_addr().unwrap().port()
    ))
    .unwrap()
    .tls_config(tonic::transport::ClientTlsConfig::new().domain_name("localhost"))
    .unwrap()
    .connect()
    .await;
    assert!(ch.is_err(), "an untrusted certificate must be refused");

    assert_eq!(rx.metrics().requests.load(Ordering::Relaxed), 0);
    assert!(!run_dir(&data, 3).exists());
    rx.shutdown().await;
}
