//! Tees accepted batches to other OTLP endpoints (`--forward URL`) from a bounded queue per
//! target, with retries and backoff. A slow or dead target never slows ingest: when its queue is
//! full the batch is dropped for that target and counted.
//!
//! URL forms: `grpc://host:port` and `http://host:port` (no path) are OTLP/gRPC; an `http://` URL
//! whose path ends in `/v1/traces` is OTLP/HTTP with protobuf bodies. TLS is not supported.

use crate::receiver_metrics::ReceiverMetrics;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Time allowed for one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A parsed forward URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// OTLP/gRPC; the endpoint as `http://host:port`.
    Grpc { endpoint: String },
    /// OTLP/HTTP protobuf: `host:port` and the request path.
    Http { authority: String, path: String },
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!(
                "forward URL {url:?}: expected grpc://host:port or http://host:port[/v1/traces]"
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!(
                "forward URL {url:?}: the host needs an explicit port"
            ));
        }
        match scheme {
            "grpc" if path.is_empty() || path == "/" => Ok(Target::Grpc {
                endpoint: format!("http://{authority}"),
            }),
            "http" if path.is_empty() || path == "/" => Ok(Target::Grpc {
                endpoint: format!("http://{authority}"),
            }),
            "http" if path.ends_with("/v1/traces") => Ok(Target::Http {
                authority: authority.to_string(),
                path: path.to_string(),
            }),
            "http" => Err(format!(
                "forward URL {url:?}: an HTTP target's path must end in /v1/traces (no path means gRPC)"
            )),
            other => Err(format!(
                "forward URL {url:?}: unsupported scheme {other:?} (grpc or http; TLS is not supported)"
            )),
        }
    }
}

/// The sending side: one bounded queue per target.
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    queues: Vec<mpsc::Sender<Bytes>>,
}

impl Forwarder {
    /// Starts one delivery task per target. Returns the forwarder and the task handles (they end
    /// once every clone of the forwarder is dropped and their queues are drained or abandoned).
    pub fn start(
        targets: Vec<Target>,
        queue: usize,
        attempts: u32,
        metrics: Arc<ReceiverMetrics>,
    ) -> (Forwarder, Vec<JoinHandle<()>>) {
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for target in targets {
            let (tx, rx) = mpsc::channel(queue.max(1));
            queues.push(tx);
            tasks.push(tokio::spawn(deliver_loop(
                target,
                rx,
                attempts.max(1),
                Arc::clone(&metrics),
            )));
        }
        (Forwarder { queues }, tasks)
    }

    /// Queues an encoded `ExportTraceServiceRequest` for every target without waiting. Returns
    /// how many targets dropped it because their queue was full.
    pub fn offer(&self, batch: &Bytes, metrics: &ReceiverMetrics) -> usize {
        let mut dropped = 0;
        for q in &self.queues {
            if q.try_send(batch.clone()).is_err() {
                dropped += 1;
                ReceiverMetrics::add(&metrics.forward_dropped, 1);
            }
        }
        dropped
    }
}

async fn deliver_loop(
    target: Target,
    mut rx: mpsc::Receiver<Bytes>,
    attempts: u32,
    metrics: Arc<ReceiverMetrics>,
) {
    let mut grpc: Option<TraceServiceClient<tonic::transport::Channel>> = None;
    if let Target::Grpc { endpoint } = &target {
        match tonic::transport::Endpoint::from_shared(endpoint.clone()) {
            Ok(ep) => {
                let ep = ep.tcp_nodelay(true).timeout(ATTEMPT_TIMEOUT);
                grpc = Some(TraceServiceClient::new(ep.connect_lazy()));
            }
            Err(e) => tracing::error!(%endpoint, error = %e, "bad forward endpoint"),
        }
    }
    while let Some(batch) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut delivered = false;
        for attempt in 1..=attempts {
            let result = match &target {
                Target::Grpc { .. } => match grpc.as_mut() {
                    Some(client) => send_grpc(client, &batch).await,
                    None => Err("no usable gRPC endpoint".to_string()),
                },
                Target::Http { authority, path } => {
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, send_http(authority, path, &batch))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err("timed out".to_string()),
                    }
                }
            };
            match result {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(e) => {
                    ReceiverMetrics::add(&metrics.forward_failures, 1);
                    tracing::debug!(?target, attempt, error = %e, "forward attempt failed");
                    if attempt < attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        if delivered {
            ReceiverMetrics::add(&metrics.forward_sent, 1);
        } else {
            ReceiverMetrics::add(&metrics.forward_dropped, 1);
            tracing::warn!(?target, attempts, "forward batch dropped after retries");
        }
    }
}

async fn send_grpc(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    batch: &Bytes,
) -> Result<(), String> {
    let req = ExportTraceServiceRequest::decode(batch.as_ref()).map_err(|e| e.to_string())?;
    client
        .export(req)
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// One OTLP/HTTP POST over a fresh connection (`Connection: close`); success is any 2xx.
async fn send_http(authority: &str, path: &str, batch: &Bytes) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        batch.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(batch).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = stream
            .read(&mut buf[got..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let code: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("unreadable HTTP response {line:?}"))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_transports() {
        assert_eq!(
            Target::parse("grpc://127.0.0.1:4317").unwrap(),
            Target::Grpc {
                endpoint: "http://127.0.0.1:4317".into()
            }
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:4317").unwrap(),
            Target::Grpc {
                endpoint: "http://127.0.0.1:4317".into()
            }
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:4318/v1/traces").unwrap(),
            Target::Http {
                authority: "127.0.0.1:4318".into(),
                path: "/v1/traces".into()
            }
        );
        assert!(Target::parse("https://127.0.0.1:4318/v1/traces").is_err());
        assert!(Target::parse("http://127.0.0.1:4318/other").is_err());
        assert!(Target::parse("http://collector/v1/traces").is_err());
        assert!(Target::parse("127.0.0.1:4317").is_err());
    }
}
