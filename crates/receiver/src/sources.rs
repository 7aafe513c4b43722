//! The sources of the receiver's topology: the OTLP/gRPC and OTLP/HTTP listeners. Each binds its
//! address (TCP_NODELAY on accepted connections, TLS when configured), serves the shared ack path
//! ([`Ingest`]) until the stop signal, and reports the address it bound. They only decode and
//! authenticate; checking, storing and acknowledging is the ack path's business.

use crate::auth::BearerToken;
use crate::config::ConfigError;
use crate::grpc_server::{
    GrpcLogsService, GrpcTraceService, OtlpStatusCodes, RawLogsServiceServer, RawTraceServiceServer,
};
use crate::http_server::{router, HttpState};
use crate::ingest::Ingest;
use crate::server::ReceiverError;
use crate::tls::{TlsListener, TlsMaterial};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;

/// What every source shares: the ack path, the transport security and the stop signal.
pub(crate) struct SourceContext {
    pub ingest: Arc<Ingest>,
    pub tls: Option<TlsMaterial>,
    pub auth: Option<BearerToken>,
    pub max_request_bytes: usize,
    pub stop: watch::Receiver<bool>,
}

/// A started source: the address it bound and the task serving it.
pub(crate) struct Source {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ReceiverError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ReceiverError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ReceiverError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// OTLP/gRPC: `TraceService/Export` and `LogsService/Export` on one port.
pub(crate) async fn grpc(addr: SocketAddr, ctx: &SourceContext) -> Result<Source, ReceiverError> {
    let (listener, bound) = bind(addr).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let traces = OtlpStatusCodes {
        inner: RawTraceServiceServer::new(GrpcTraceService {
            ingest: Arc::clone(&ctx.ingest),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(ctx.max_request_bytes),
        auth: ctx.auth.clone(),
    };
    let logs = OtlpStatusCodes {
        inner: RawLogsServiceServer::new(GrpcLogsService {
            ingest: Arc::clone(&ctx.ingest),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(ctx.max_request_bytes),
        auth: ctx.auth.clone(),
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &ctx.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(identity)
                    .timeout(crate::tls::HANDSHAKE_TIMEOUT),
            )
            .map_err(|e| ConfigError::Invalid(format!("gRPC TLS: {e}")))?;
    }
    let mut stop = ctx.stop.clone();
    let task = tokio::spawn(async move {
        let result = builder
            .add_service(traces)
            .add_service(logs)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    tracing::info!(
        addr = %bound,
        tls = ctx.tls.is_some(),
        "OTLP/gRPC listening (TraceService, LogsService)"
    );
    Ok(Source { addr: bound, task })
}

/// OTLP/HTTP: `/v1/traces`, `/v1/logs`, plus `/metrics` and `/healthz`.
pub(crate) async fn http(addr: SocketAddr, ctx: &SourceContext) -> Result<Source, ReceiverError> {
    let (listener, bound) = bind(addr).await?;
    let app = router(Arc::new(HttpState {
        ingest: Arc::clone(&ctx.ingest),
        max_request_bytes: ctx.max_request_bytes,
        auth: ctx.auth.clone(),
    }));
    let stop = ctx.stop.clone();
    let task = match &ctx.tls {
        Some(tls) => {
            let listener = TlsListener::start(listener, Arc::clone(&tls.http))
                .map_err(|source| ReceiverError::Bind { addr, source })?;
            serve_http(listener, app, stop)
        }
        None => {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            serve_http(listener, app, stop)
        }
    };
    tracing::info!(
        addr = %bound,
        tls = ctx.tls.is_some(),
        "OTLP/HTTP listening (/v1/traces, /v1/logs, /metrics, /healthz)"
    );
    Ok(Source { addr: bound, task })
}

/// Serves the HTTP router on `listener` until `stop` turns true.
fn serve_http<L>(listener: L, app: axum::Router, mut stop: watch::Receiver<bool>) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}
