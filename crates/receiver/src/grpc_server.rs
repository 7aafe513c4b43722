//! OTLP/gRPC: the `opentelemetry.proto.collector.trace.v1.TraceService/Export` implementation
//! on top of the shared ack path.

use crate::ingest::{Ingest, IngestError};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The gRPC face of [`Ingest`].
pub struct GrpcTraceService {
    pub(crate) ingest: Arc<Ingest>,
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match self.ingest.export(request.into_inner(), None).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e @ (IngestError::Busy(_) | IngestError::ShuttingDown)) => {
                Err(Status::unavailable(e.to_string()))
            }
            Err(e) if e.is_retryable() => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
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
