//! The forwarding sink: tees accepted trace batches to other OTLP endpoints (`--forward URL`).
//! This module is the whole of it, in three parts: the bounded queue per target (a slow or dead
//! target never slows ingest: when its queue is full the batch is dropped for that target and
//! counted), the delivery loop with its retries and backoff, and the two transports, both on
//! maintained clients: tonic's gRPC client and hyper-util's pooled HTTP/1.1 client.
//!
//! URL forms (parsed with the `url` crate): `grpc://host:port` and `http://host:port` (no path)
//! are OTLP/gRPC; an `http://` URL whose path ends in `/v1/traces` is OTLP/HTTP with protobuf
//! bodies. TLS is not supported.
//!
//! `forward_dropped_total` counts exactly the batches one target did not get: refused by its full
//! (or closed) queue, or given up after `forward_attempts` failed attempts.

use crate::config::ConfigError;
use crate::receiver_metrics::ReceiverMetrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Time allowed for one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How much of an HTTP response body is read (and thrown away, so the connection can be reused).
const MAX_RESPONSE_BODY: usize = 64 << 10;

/// A parsed forward URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// OTLP/gRPC; the endpoint as `http://host:port`.
    Grpc { endpoint: String },
    /// OTLP/HTTP protobuf: the URL POSTed to.
    Http { uri: Uri },
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target, ConfigError> {
        let bad = |why: String| ConfigError::Invalid(format!("forward URL {raw:?}: {why}"));
        let url = url::Url::parse(raw).map_err(|e| {
            bad(format!(
                "{e}; expected grpc://host:port or http://host:port[/v1/traces]"
            ))
        })?;
        let scheme = url.scheme();
        if scheme != "grpc" && scheme != "http" {
            return Err(bad(format!(
                "unsupported scheme {scheme:?} (grpc or http; TLS is not supported)"
            )));
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad("user info, query and fragment are not supported".into()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?;
        // `url` drops a port equal to the scheme's default (`http://h:80`): still explicit.
        let port = match url.port() {
            Some(p) => p,
            None if names_a_port(raw) => url
                .port_or_known_default()
                .ok_or_else(|| bad("the host needs an explicit port".into()))?,
            None => return Err(bad("the host needs an explicit port".into())),
        };
        let authority = format!("{host}:{port}");
        match url.path() {
            "" | "/" => Ok(Target::Grpc {
                endpoint: format!("http://{authority}"),
            }),
            path if scheme == "http" && path.ends_with("/v1/traces") => {
                let uri = format!("http://{authority}{path}")
                    .parse()
                    .map_err(|e| bad(format!("{e}")))?;
                Ok(Target::Http { uri })
            }
            _ if scheme == "http" => Err(bad(
                "an HTTP target's path must end in /v1/traces (no path means gRPC)".into(),
            )),
            _ => Err(bad("a gRPC target takes no path".into())),
        }
    }
}

/// Whether the authority of `raw` names a port (after an IPv6 literal's `]`).
fn names_a_port(raw: &str) -> bool {
    let rest = raw.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let after_host = authority.rsplit(']').next().unwrap_or(authority);
    after_host.contains(':')
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

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("no usable gRPC endpoint: {0}")]
    Endpoint(String),
    #[error("stored batch does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("gRPC {code:?}: {message}")]
    Grpc { code: tonic::Code, message: String },
    #[error("HTTP request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    #[error("HTTP {0}")]
    Status(StatusCode),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// A connected (lazily, pooled) client for one target.
enum Transport {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    /// Boxed: the pooled client is large next to the gRPC channel.
    Http(Box<HttpTransport>),
}

struct HttpTransport {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

impl Transport {
    fn new(target: &Target) -> Result<Transport, SendError> {
        match target {
            Target::Grpc { endpoint } => {
                let ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| SendError::Endpoint(e.to_string()))?
                    .tcp_nodelay(true)
                    .timeout(ATTEMPT_TIMEOUT);
                Ok(Transport::Grpc(TraceServiceClient::new(ep.connect_lazy())))
            }
            Target::Http { uri } => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
                let client = Client::builder(TokioExecutor::new()).build(connector);
                Ok(Transport::Http(Box::new(HttpTransport {
                    client,
                    uri: uri.clone(),
                })))
            }
        }
    }

    /// One delivery attempt; success is an OK gRPC status or any 2xx HTTP status.
    async fn send(&mut self, batch: &Bytes) -> Result<(), SendError> {
        match self {
            Transport::Grpc(client) => {
                let req = ExportTraceServiceRequest::decode(batch.as_ref())?;
                client
                    .export(req)
                    .await
                    .map(|_| ())
                    .map_err(|s| SendError::Grpc {
                        code: s.code(),
                        message: s.message().to_string(),
                    })
            }
            Transport::Http(http) => {
                tokio::time::timeout(ATTEMPT_TIMEOUT, post(&http.client, &http.uri, batch))
                    .await
                    .map_err(|_| SendError::TimedOut(ATTEMPT_TIMEOUT))?
            }
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &Uri,
    batch: &Bytes,
) -> Result<(), SendError> {
    let req = Request::post(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(batch.clone()))?;
    let response = client.request(req).await?;
    let status = response.status();
    // Read (a bounded part of) the body so the pooled connection can carry the next request.
    let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
        .collect()
        .await;
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Status(status))
    }
}

/// Delivers the batches of one target's queue, each with up to `attempts` attempts.
async fn deliver_loop(
    target: Target,
    mut rx: mpsc::Receiver<Bytes>,
    attempts: u32,
    metrics: Arc<ReceiverMetrics>,
) {
    let mut transport = Transport::new(&target);
    if let Err(e) = &transport {
        tracing::error!(?target, error = %e, "bad forward endpoint");
    }
    while let Some(batch) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut delivered = false;
        for attempt in 1..=attempts {
            let result = match transport.as_mut() {
                Ok(t) => t.send(&batch).await,
                Err(e) => Err(SendError::Endpoint(e.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(endpoint: &str) -> Target {
        Target::Grpc {
            endpoint: endpoint.into(),
        }
    }

    fn http(uri: &str) -> Target {
        Target::Http {
            uri: uri.parse().unwrap(),
        }
    }

    #[test]
    fn urls_map_to_transports() {
        let ok = |u: &str| Target::parse(u).unwrap();
        assert_eq!(ok("grpc://127.0.0.1:4317"), grpc("http://127.0.0.1:4317"));
        assert_eq!(ok("grpc://127.0.0.1:4317/"), grpc("http://127.0.0.1:4317"));
        assert_eq!(ok("http://127.0.0.1:4317"), grpc("http://127.0.0.1:4317"));
        assert_eq!(ok("http://collector:80"), grpc("http://collector:80"));
        assert_eq!(ok("grpc://[::1]:4317"), grpc("http://[::1]:4317"));
        assert_eq!(
            ok("http://127.0.0.1:4318/v1/traces"),
            http("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            ok("http://[::1]:4318/otlp/v1/traces"),
            http("http://[::1]:4318/otlp/v1/traces")
        );
        for bad in [
            "https://127.0.0.1:4318/v1/traces",
            "http://127.0.0.1:4318/other",
            "http://collector/v1/traces",
            "grpc://collector",
            "http://[::1]/v1/traces",
            "grpc://127.0.0.1:4317/v1/traces",
            "http://u:p@127.0.0.1:4318/v1/traces",
            "http://127.0.0.1:4318/v1/traces?x=1",
            "127.0.0.1:4317",
            "ftp://x:1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
