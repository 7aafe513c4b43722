//! An OTLP/HTTP body over `max_request_bytes` is answered 413 and the client reads that answer:
//! over HTTP/1.1 by a client that writes the whole body before it reads (the receiver drains the
//! rest of the body, bounded, so closing does not reset the connection), with `Expect:
//! 100-continue` before any body is sent, and over HTTP/2 (prior knowledge) on a connection that
//! stays usable for the next export.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traj_receiver::http_server::RpcStatus;
use traj_receiver::Receiver;

const LIMIT: usize = 1 << 20;
const MIB: usize = 1 << 20;

async fn receiver(tmp: &tempfile::TempDir) -> Receiver {
    let mut cfg = test_config(tmp.path());
    cfg.max_request_bytes = LIMIT;
    start(cfg).await
}

/// Status line and head of an HTTP/1.1 response read to the end of the connection.
fn head_of(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).to_lowercase()
}

/// Writes the head and the whole `size`-byte body (failing on a write error, as `urllib`
/// does), then reads the response to the end of the connection.
async fn post_whole_body_then_read(addr: SocketAddr, size: usize) -> Result<Vec<u8>, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {size}\r\n\r\n"
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write head: {e}"))?;
    let chunk = vec![0u8; MIB];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n])
            .await
            .map_err(|e| format!("write body ({} of {size} bytes sent): {e}", size - left))?;
        left -= n;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_writing_the_whole_body_first_reads_the_413() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = receiver(&tmp).await;
    let addr = rx.http_addr().unwrap();

    for size in [24 * MIB, 24 * MIB, 24 * MIB, 24 * MIB, 24 * MIB] {
        let raw = post_whole_body_then_read(addr, size)
            .await
            .unwrap_or_else(|e| panic!("{size}-byte body: {e}"));
        let head = head_of(&raw);
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        let body = &raw[raw.len().min(head.len() + 4)..];
        assert_eq!(RpcStatus::decode(body).unwrap().code, 8);
    }

    // Still serving: a valid export is stored and assembles.
    let r = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request(vec![span(1, 1, 0)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    wait_run(tmp.path(), 1, 1).await;
    rx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_413_before_the_body() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = receiver(&tmp).await;
    let addr = rx.http_addr().unwrap();

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        1u64 << 30
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // No body is sent: the answer must come anyway, and be the 413 (no `100 Continue`).
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("answered without the body")
        .unwrap();
    let head = head_of(&raw);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    rx.shutdown().await;
}

/// A body of `left` bytes in 1 MiB frames whose size is not known up front (no
/// `content-length`): the receiver only finds out while reading it.
struct Unsized {
    left: usize,
}

impl Body for Unsized {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(MIB);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; n])))))
    }
}

type H2Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn h2_post(
    sender: &mut hyper::client::conn::http2::SendRequest<H2Body>,
    addr: SocketAddr,
    body: H2Body,
) -> (u16, Vec<u8>) {
    let req = hyper::Request::post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("h2 response in time")
        .expect("h2 response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_gets_the_413_and_keeps_its_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = receiver(&tmp).await;
    let addr = rx.http_addr().unwrap();

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 prior-knowledge handshake");
    let conn = tokio::spawn(conn);

    // With content-length (known over the limit up front) and without (found while reading),
    // twice each, on one connection.
    for round in 0..2 {
        for sized in [true, false] {
            let body = if sized {
                Full::new(Bytes::from(vec![0u8; 24 * MIB])).boxed()
            } else {
                Unsized { left: 24 * MIB }.boxed()
            };
            let (status, body) = h2_post(&mut sender, addr, body).await;
            assert_eq!(status, 413, "round {round}, sized {sized}");
            assert_eq!(RpcStatus::decode(body.as_slice()).unwrap().code, 8);
        }
    }

    // The same connection still carries a valid export.
    let valid = Full::new(Bytes::from(request(vec![span(2, 1, 0)]).encode_to_vec())).boxed();
    let (status, _) = h2_post(&mut sender, addr, valid).await;
    assert_eq!(status, 200);
    wait_run(tmp.path(), 2, 1).await;

    drop(sender);
    let _ = conn.await;
    rx.shutdown().await;
}
