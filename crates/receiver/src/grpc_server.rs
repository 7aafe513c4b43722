//! OTLP/gRPC: the `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` implementations on top of the
//! shared ack path. The request reaches the handler as its raw protobuf bytes (a codec that does
//! not decode, [`RawRequestCodec`]) so that [`Ingest::export_encoded`] can check it read-only
//! and store it as received (and [`Ingest::export_logs_encoded`] can store unchanged logs
//! requests byte for byte).

use crate::ingest::{Ingest, IngestError, RawExportError};
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::Status;

/// The gRPC face of [`Ingest`].
pub struct GrpcTraceService {
    pub(crate) ingest: Arc<Ingest>,
}

/// The gRPC face of [`Ingest`] for logs.
pub struct GrpcLogsService {
    pub(crate) ingest: Arc<Ingest>,
}

/// An OTLP export service whose `Export` method takes the request message's bytes.
pub trait RawExport: Send + Sync + 'static {
    /// The fully qualified gRPC service name.
    const NAME: &'static str;
    /// The `Export` method's path.
    const EXPORT_PATH: &'static str;
    type Response: Message + Default + Send + 'static;

    fn export(&self, raw: Bytes) -> impl Future<Output = Result<Self::Response, Status>> + Send;
}

/// The gRPC status of a failed export, shared by both signals.
fn export_status(e: RawExportError) -> Status {
    match e {
        RawExportError::Malformed(e) => {
            Status::invalid_argument(format!("failed to decode Protobuf message: {e}"))
        }
        RawExportError::Ingest(e @ (IngestError::Busy(_) | IngestError::ShuttingDown)) => {
            Status::unavailable(e.to_string())
        }
        RawExportError::Ingest(e) if e.is_retryable() => Status::unavailable(e.to_string()),
        RawExportError::Ingest(e) => Status::internal(e.to_string()),
    }
}

impl RawExport for GrpcTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Response = ExportTraceServiceResponse;

    async fn export(&self, raw: Bytes) -> Result<ExportTraceServiceResponse, Status> {
        self.ingest.export_encoded(raw).await.map_err(export_status)
    }
}

impl RawExport for GrpcLogsService {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    type Response = ExportLogsServiceResponse;

    async fn export(&self, raw: Bytes) -> Result<ExportLogsServiceResponse, Status> {
        self.ingest
            .export_logs_encoded(raw)
            .await
            .map_err(export_status)
    }
}

/// A tonic codec whose decoder yields the request message's bytes (after gRPC framing and
/// decompression, which tonic does) without decoding them, and whose encoder writes the
/// prost-encoded response `R`.
#[derive(Debug)]
pub struct RawRequestCodec<R>(PhantomData<fn(R)>);

impl<R> Default for RawRequestCodec<R> {
    fn default() -> Self {
        RawRequestCodec(PhantomData)
    }
}

/// Decoder half of [`RawRequestCodec`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RawDecoder;

/// Encoder half of [`RawRequestCodec`].
#[derive(Debug)]
pub struct ResponseEncoder<R>(PhantomData<fn(R)>);

impl<R: Message + Send + 'static> Codec for RawRequestCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // Zero-copy: split off tonic's buffer.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<R: Message> Encoder for ResponseEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("failed to encode the response: {e}")))
    }
}

/// An export service over [`RawRequestCodec`]: the generated `TraceServiceServer` /
/// `LogsServiceServer` with the request left encoded. Same builder methods.
pub struct RawExportServer<T> {
    inner: Arc<T>,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding_message_size: Option<usize>,
}

/// `TraceService` over [`RawRequestCodec`].
pub type RawTraceServiceServer = RawExportServer<GrpcTraceService>;
/// `LogsService` over [`RawRequestCodec`].
pub type RawLogsServiceServer = RawExportServer<GrpcLogsService>;

impl<T> Clone for RawExportServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            accept: self.accept,
            send: self.send,
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<T: RawExport> RawExportServer<T> {
    pub fn new(svc: T) -> Self {
        Self {
            inner: Arc::new(svc),
            accept: EnabledCompressionEncodings::default(),
            send: EnabledCompressionEncodings::default(),
            max_decoding_message_size: None,
        }
    }

    /// Accepts requests compressed with `encoding`.
    #[must_use]
    pub fn accept_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.accept.enable(encoding);
        self
    }

    /// Compresses responses with `encoding` when the client accepts it.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.send.enable(encoding);
        self
    }

    /// Largest request message accepted (after decompression).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl<T: RawExport> tonic::server::NamedService for RawExportServer<T> {
    const NAME: &'static str = T::NAME;
}

struct ExportSvc<T>(Arc<T>);

impl<T: RawExport> tonic::server::UnaryService<Bytes> for ExportSvc<T> {
    type Response = T::Response;
    type Future = BoxFuture<tonic::Response<Self::Response>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            inner
                .export(request.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }
}

impl<T: RawExport, B> Service<http::Request<B>> for RawExportServer<T>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != T::EXPORT_PATH {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let (accept, send, max) = (self.accept, self.send, self.max_decoding_message_size);
        let method = ExportSvc(Arc::clone(&self.inner));
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec::<T::Response>::default())
                .apply_compression_config(accept, send)
                .apply_max_message_size_config(max, None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// Wraps the generated server to check the bearer token (when one is configured) before the
/// request body is read, answering `UNAUTHENTICATED`, and to give decode failures the codes
/// OTLP asks for: a malformed
/// message is `INVALID_ARGUMENT` (tonic says `INTERNAL`) and a message over the size limit is
/// `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE` when it was not compressed). Both are
/// trailers-only responses, so the status sits in the response headers.
#[derive(Clone)]
pub struct OtlpStatusCodes<S> {
    pub(crate) inner: S,
    pub(crate) auth: Option<crate::auth::BearerToken>,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for OtlpStatusCodes<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for OtlpStatusCodes<S>
where
    S: tonic::codegen::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
    >,
    S::Future: Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        if let Some(token) = &self.auth {
            let given = req
                .headers()
                .get(tonic::codegen::http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !token.accepts(given) {
                let why = if given.is_some() {
                    "invalid bearer token"
                } else {
                    "missing authorization: Bearer <token> metadata"
                };
                tracing::debug!(why, "gRPC request refused (authentication)");
                let resp = Status::unauthenticated(why).into_http::<tonic::body::Body>();
                return Box::pin(async move { Ok(resp) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            let headers = resp.headers_mut();
            let code = headers
                .get(Status::GRPC_STATUS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok());
            let message = headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let fixed = match code {
                Some(c)
                    if c == tonic::Code::Internal as i32
                        && (message.starts_with("failed%20to%20decode")
                            || message.starts_with("failed to decode")) =>
                {
                    Some(tonic::Code::InvalidArgument)
                }
                Some(c) if c == tonic::Code::OutOfRange as i32 => {
                    Some(tonic::Code::ResourceExhausted)
                }
                _ => None,
            };
            if let Some(code) = fixed {
                headers.insert(Status::GRPC_STATUS, (code as i32).into());
            }
            Ok(resp)
        })
    }
}
