//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` (protobuf or JSON, optionally gzip),
//! `GET /healthz` and the Prometheus `GET /metrics`. Errors carry a `google.rpc.Status` body in
//! the request's encoding. With a bearer token configured, `/v1/traces`, `/v1/logs` and
//! `/metrics` answer 401 to a wrong or missing token before the body is read; `/healthz` stays
//! open.

use crate::auth::BearerToken;
use crate::body_decode::{decode_logs_request, decode_request, decompress, DecodeError, Encoding};
use crate::ingest::{Ingest, IngestError, RawExportError};
use crate::otlp_json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as _;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

/// Seconds a refused client is told to wait.
pub const RETRY_AFTER_SECS: u32 = 1;

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC code numbers used in [`RpcStatus`].
pub mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const UNAUTHENTICATED: i32 = 16;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

pub(crate) struct HttpState {
    pub ingest: Arc<Ingest>,
    pub max_request_bytes: usize,
    pub auth: Option<BearerToken>,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/logs", post(export_logs))
        .route("/metrics", get(metrics))
        // Applies to the routes above only: /healthz stays open.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Rejects a request without the configured bearer token (401 + `WWW-Authenticate: Bearer`)
/// before its body is read; the connection is then closed by hyper (the body stays unread).
async fn require_token(
    State(st): State<Arc<HttpState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &st.auth else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if token.accepts(given) {
        return next.run(req).await;
    }
    let enc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Json);
    let why = if given.is_some() {
        "invalid bearer token"
    } else {
        "missing Authorization: Bearer <token>"
    };
    tracing::debug!(path = %req.uri().path(), why, "request refused (authentication)");
    let mut resp = status_response(
        StatusCode::UNAUTHORIZED,
        enc,
        code::UNAUTHENTICATED,
        why.to_string(),
    );
    let challenge = if given.is_some() {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

async fn metrics(State(st): State<Arc<HttpState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        st.ingest.metrics.render(),
    )
        .into_response()
}

fn status_response(http: StatusCode, enc: Encoding, code: i32, message: String) -> Response {
    let status = RpcStatus { code, message };
    let body = match enc {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": status.code,
            "message": status.message,
        }))
        .unwrap_or_default(),
    };
    let mut resp = (http, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    if http == StatusCode::SERVICE_UNAVAILABLE || http == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

/// Which OTLP signal an export endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
}

impl Signal {
    /// The decode error of a protobuf body of this signal.
    fn protobuf_error(self, e: prost::DecodeError) -> DecodeError {
        match self {
            Signal::Traces => DecodeError::Protobuf(e),
            Signal::Logs => DecodeError::LogsProtobuf(e),
        }
    }
}

/// A body after inflation: JSON is parsed, protobuf stays encoded (for `Ingest`).
enum Decoded {
    Protobuf,
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

async fn export_traces(
    State(st): State<Arc<HttpState>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(st, version, headers, body, Signal::Traces).await
}

async fn export_logs(
    State(st): State<Arc<HttpState>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(st, version, headers, body, Signal::Logs).await
}

async fn export(
    st: Arc<HttpState>,
    version: Version,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(enc) = Encoding::from_content_type(content_type) else {
        return status_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Json,
            code::INVALID_ARGUMENT,
            format!(
                "unsupported Content-Type {content_type:?}: use application/x-protobuf or application/json"
            ),
        );
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").to_string());

    // The wire body is capped at the same limit as the decompressed one.
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let wire: Bytes = match read_limited(body, st.max_request_bytes, expects_continue).await {
        Ok(wire) => wire,
        Err(BodyError::TooLarge) => {
            let mut resp = too_large(enc, st.max_request_bytes);
            if version < Version::HTTP_2 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
        Err(BodyError::Read(e)) => {
            return status_response(
                StatusCode::BAD_REQUEST,
                enc,
                code::INVALID_ARGUMENT,
                format!("could not read the request body: {e}"),
            )
        }
    };
    // Large bodies are inflated and parsed off the async workers.
    let limit = st.max_request_bytes;
    let decoded = if wire.len() > OFFLOAD_BYTES {
        match tokio::task::spawn_blocking(move || {
            decode_body(&wire, content_encoding, limit, enc, signal)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                return status_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    enc,
                    code::INTERNAL,
                    format!("decoder task failed: {e}"),
                )
            }
        }
    } else {
        decode_body(&wire, content_encoding, limit, enc, signal)
    };
    let (decoded, plain) = match decoded {
        Ok(x) => x,
        Err(DecodeError::TooLarge { limit }) => return too_large(enc, limit),
        Err(DecodeError::UnsupportedEncoding(e)) => {
            return status_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                enc,
                code::INVALID_ARGUMENT,
                format!("unsupported Content-Encoding {e:?}: use gzip or identity"),
            )
        }
        Err(e) => return bad_request(enc, e),
    };
    let traces_body = |resp: ExportTraceServiceResponse| match enc {
        Encoding::Protobuf => resp.encode_to_vec(),
        Encoding::Json => otlp_json::encode_response(&resp),
    };
    let logs_body = |resp: ExportLogsServiceResponse| match enc {
        Encoding::Protobuf => resp.encode_to_vec(),
        Encoding::Json => otlp_json::encode_logs_response(&resp),
    };
    let exported = match decoded {
        // Protobuf: checked (traces: read-only) and stored as received when nothing was
        // rejected (see `Ingest::export_encoded`, `Ingest::export_logs_encoded`).
        Decoded::Protobuf => {
            let raw = Bytes::from(plain);
            let result = match signal {
                Signal::Traces => st.ingest.export_encoded(raw).await.map(traces_body),
                Signal::Logs => st.ingest.export_logs_encoded(raw).await.map(logs_body),
            };
            match result {
                Ok(body) => Ok(body),
                Err(RawExportError::Malformed(e)) => {
                    return bad_request(enc, signal.protobuf_error(e))
                }
                Err(RawExportError::Ingest(e)) => Err(e),
            }
        }
        Decoded::Traces(req) => st.ingest.export(req, None).await.map(traces_body),
        Decoded::Logs(req) => st.ingest.export_logs(req, None).await.map(logs_body),
    };
    match exported {
        Ok(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(enc.content_type()),
            );
            r
        }
        Err(e) => {
            let http = if e.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let c = if matches!(e, IngestError::Store(_)) && !e.is_retryable() {
                code::INTERNAL
            } else {
                code::UNAVAILABLE
            };
            status_response(http, enc, c, e.to_string())
        }
    }
}

/// Bodies above this size are decoded on the blocking pool.
const OFFLOAD_BYTES: usize = 256 << 10;

/// Inflates a body and parses it when it is JSON; protobuf is left encoded for `Ingest`. Also
/// returns the inflated bytes.
fn decode_body(
    wire: &[u8],
    content_encoding: Option<String>,
    limit: usize,
    enc: Encoding,
    signal: Signal,
) -> Result<(Decoded, Vec<u8>), DecodeError> {
    let plain = decompress(wire, content_encoding.as_deref(), limit)?;
    let decoded = match (enc, signal) {
        (Encoding::Protobuf, _) => Decoded::Protobuf,
        (Encoding::Json, Signal::Traces) => Decoded::Traces(decode_request(&plain, enc)?),
        (Encoding::Json, Signal::Logs) => Decoded::Logs(decode_logs_request(&plain, enc)?),
    };
    Ok((decoded, plain))
}

/// At most this much of a refused (over-limit) body is read and discarded before the answer.
const DRAIN_MAX_BYTES: u64 = 128 << 20;
/// And for at most this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request body was not read.
enum BodyError {
    /// Over the limit; the rest of it has been drained as far as [`drain`] goes.
    TooLarge,
    /// Reading it failed (the client went away, a malformed chunk, an h2 stream reset).
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a body of at most `limit` bytes. A body over the limit is never buffered past it: one
/// whose `Content-Length` announces more is not buffered at all, and the rest of it is drained.
///
/// Draining is what lets a client that writes the whole body before it reads the response (as
/// Python's `urllib` does) see the 413: a socket closed with unread data in its receive buffer
/// sends RST, and the client then gets "connection reset" instead of the answer. It is skipped
/// when it cannot help: a client that sent `Expect: 100-continue` is answered before it sends
/// the body, and one announcing more than [`DRAIN_MAX_BYTES`] would be reset anyway.
async fn read_limited(
    mut body: Body,
    limit: usize,
    expects_continue: bool,
) -> Result<Bytes, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if let Some(announced) = body.size_hint().exact().filter(|&n| n > limit_u64) {
        if !expects_continue && announced <= DRAIN_MAX_BYTES {
            drain(&mut body).await;
        }
        return Err(BodyError::TooLarge);
    }
    match Limited::new(&mut body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            drain(&mut body).await;
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Read(e)),
    }
}

/// Reads and discards what is left of `body`, at most [`DRAIN_MAX_BYTES`] for at most
/// [`DRAIN_TIMEOUT`]; nothing is kept. Over HTTP/2 the data read
/// also returns flow-control credit, and a stream left unfinished is reset by hyper with
/// `NO_ERROR` after the response (RFC 9113 §8.1).
async fn drain(body: &mut Body) {
    let mut drained: u64 = 0;
    let read_to_end = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                drained += data.len() as u64;
                if drained > DRAIN_MAX_BYTES {
                    return false;
                }
            }
        }
        true
    };
    let ended = tokio::time::timeout(DRAIN_TIMEOUT, read_to_end)
        .await
        .unwrap_or(false);
    tracing::debug!(
        drained,
        ended,
        "rest of an over-limit request body discarded"
    );
}

fn too_large(enc: Encoding, limit: usize) -> Response {
    status_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        enc,
        code::RESOURCE_EXHAUSTED,
        format!("request body exceeds the limit of {limit} bytes (after decompression)"),
    )
}

fn bad_request(enc: Encoding, e: DecodeError) -> Response {
    status_response(
        StatusCode::BAD_REQUEST,
        enc,
        code::INVALID_ARGUMENT,
        e.to_string(),
    )
}
