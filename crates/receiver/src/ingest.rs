//! The ack path shared by gRPC and HTTP, for traces and logs: validate, (re-encode when spans or
//! log records were rejected), reserve room downstream, append to the raw store (as a traces or
//! logs record) and await its commit, hand the batch to the run manager (and, for traces, the
//! forwarders), acknowledge. Nothing here waits on assembly.

use crate::forward::Forwarder;
use crate::log_check::check_logs_request;
use crate::receiver_metrics::ReceiverMetrics;
use crate::run_manager::RunMsg;
use crate::span_check::check_request;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use traj_assemble::check_encoded_request;
use traj_store::{RecordKind, Store, StoreError};

/// Why a batch was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Retryable: a queue or cap is full (HTTP 503 + Retry-After, gRPC UNAVAILABLE).
    #[error("receiver is busy: {0}; retry later")]
    Busy(String),
    /// The receiver is shutting down (HTTP 503, gRPC UNAVAILABLE).
    #[error("receiver is shutting down")]
    ShuttingDown,
    /// The store failed to persist the batch (HTTP 500 / gRPC INTERNAL unless retryable).
    #[error("raw store: {0}")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Whether the client should retry the same batch.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Busy(_) | IngestError::ShuttingDown => true,
            IngestError::Store(e) => e.is_retryable(),
        }
    }
}

/// Why an encoded request was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum RawExportError {
    /// Not a valid `ExportTraceServiceRequest` / `ExportLogsServiceRequest` (HTTP 400, gRPC
    /// INVALID_ARGUMENT).
    #[error("failed to decode Protobuf message: {0}")]
    Malformed(prost::DecodeError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Everything the ack path needs, shared by both transports.
pub struct Ingest {
    pub(crate) store: Store,
    pub(crate) runs_tx: mpsc::Sender<RunMsg>,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_spans_in_flight: usize,
    pub(crate) max_open_runs: usize,
    pub(crate) forwarder: Forwarder,
    pub(crate) metrics: Arc<ReceiverMetrics>,
    /// Receive-side redaction before the raw store append (`--redact-before-store`).
    pub(crate) redact: Option<Arc<traj_redact::Policy>>,
}

impl Ingest {
    /// Handles one export request. `raw` is the request's protobuf encoding when the caller has
    /// it (HTTP/protobuf); it is stored as-is when no span was rejected.
    pub async fn export(
        &self,
        req: ExportTraceServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        ReceiverMetrics::add(&self.metrics.requests, 1);
        self.export_decoded(req, raw).await
    }

    /// Handles one export request given as its protobuf encoding (gRPC and HTTP/protobuf), without
    /// decoding it when possible: [`check_encoded_request`] walks the bytes read-only (wire
    /// format, UTF-8 of strings, span ids) and, when every span is valid and receive-side
    /// redaction is off, the bytes are stored as received. Otherwise (a span is rejected, the walk
    /// refuses something, or redaction is on) the request is decoded with prost and takes the
    /// decoded path; a request prost cannot decode is [`RawExportError::Malformed`].
    pub async fn export_encoded(
        &self,
        raw: Bytes,
    ) -> Result<ExportTraceServiceResponse, RawExportError> {
        ReceiverMetrics::add(&self.metrics.requests, 1);
        // Cheap caps first: a refused request costs no walk.
        self.cheap_caps()?;
        match check_encoded_request(&raw) {
            Ok(c) if c.invalid_spans == 0 && self.redact.is_none() => {
                if c.valid_spans > 0 {
                    self.admit(RecordKind::Traces, c.valid_spans, || raw)
                        .await?;
                }
                Ok(ExportTraceServiceResponse::default())
            }
            walked => {
                if let Err(e) = &walked {
                    tracing::debug!(error = %e, "lazy check refused the request; full decode");
                }
                let req = ExportTraceServiceRequest::decode(raw.as_ref())
                    .map_err(RawExportError::Malformed)?;
                Ok(self.export_decoded(req, Some(raw)).await?)
            }
        }
    }

    async fn export_decoded(
        &self,
        mut req: ExportTraceServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let m = &self.metrics;
        let check = check_request(&mut req);
        ReceiverMetrics::add(&m.spans_rejected, check.rejected);
        if check.rejected > 0 {
            tracing::debug!(message = %check.message, "spans rejected");
        }
        let response = ExportTraceServiceResponse {
            partial_success: (check.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(check.rejected).unwrap_or(i64::MAX),
                error_message: check.message.clone(),
            }),
        };
        if check.accepted == 0 {
            return Ok(response);
        }
        let redacted = match &self.redact {
            Some(policy) => {
                let counts = crate::receive_redaction::redact_request(policy, &mut req);
                if !counts.is_empty() {
                    tracing::debug!(replaced = counts.total(), "receive-side redaction");
                }
                !counts.is_empty()
            }
            None => false,
        };
        let clean = check.rejected == 0 && !redacted;
        self.admit(RecordKind::Traces, check.accepted, move || match raw {
            // The decoded request is dropped here, before the store append.
            Some(raw) if clean => raw,
            _ => Bytes::from(req.encode_to_vec()),
        })
        .await?;
        Ok(response)
    }

    /// Handles one logs export request given as its protobuf encoding (gRPC and HTTP/protobuf).
    /// When every record is valid and redaction is off, the bytes are stored as received; a
    /// request prost cannot decode is [`RawExportError::Malformed`].
    pub async fn export_logs_encoded(
        &self,
        raw: Bytes,
    ) -> Result<ExportLogsServiceResponse, RawExportError> {
        ReceiverMetrics::add(&self.metrics.requests, 1);
        self.cheap_caps()?;
        let req =
            ExportLogsServiceRequest::decode(raw.as_ref()).map_err(RawExportError::Malformed)?;
        Ok(self.export_logs_decoded(req, Some(raw)).await?)
    }

    /// Handles one decoded logs export request (HTTP/JSON). `raw` is its protobuf encoding when
    /// the caller has it; it is stored as-is when no record was rejected or redacted.
    pub async fn export_logs(
        &self,
        req: ExportLogsServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportLogsServiceResponse, IngestError> {
        ReceiverMetrics::add(&self.metrics.requests, 1);
        self.cheap_caps()?;
        self.export_logs_decoded(req, raw).await
    }

    async fn export_logs_decoded(
        &self,
        mut req: ExportLogsServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportLogsServiceResponse, IngestError> {
        let m = &self.metrics;
        let check = check_logs_request(&mut req);
        ReceiverMetrics::add(&m.log_records_rejected, check.rejected);
        if check.rejected > 0 {
            tracing::debug!(message = %check.message, "log records rejected");
        }
        let response = ExportLogsServiceResponse {
            partial_success: (check.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(check.rejected).unwrap_or(i64::MAX),
                error_message: check.message.clone(),
            }),
        };
        if check.accepted == 0 {
            return Ok(response);
        }
        let redacted = match &self.redact {
            Some(policy) => {
                let counts = crate::receive_redaction::redact_logs_request(policy, &mut req);
                if !counts.is_empty() {
                    tracing::debug!(replaced = counts.total(), "receive-side redaction of logs");
                }
                !counts.is_empty()
            }
            None => false,
        };
        let clean = check.rejected == 0 && !redacted;
        self.admit(RecordKind::Logs, check.accepted, move || match raw {
            Some(raw) if clean => raw,
            _ => Bytes::from(req.encode_to_vec()),
        })
        .await?;
        if check.untraced > 0 {
            ReceiverMetrics::add(&m.log_records_untraced, check.untraced);
            tracing::debug!(
                untraced = check.untraced,
                "log records without a trace id stored; they cannot join a run"
            );
        }
        Ok(response)
    }

    /// The caps that cost nothing to check, before a request is walked or decoded.
    fn cheap_caps(&self) -> Result<(), IngestError> {
        if self.in_flight.available_permits() == 0 {
            return self.refuse(format!(
                "{} spans and log records in flight (cap {})",
                self.max_spans_in_flight, self.max_spans_in_flight
            ));
        }
        let open = ReceiverMetrics::get(&self.metrics.open_runs) as usize;
        if open >= self.max_open_runs {
            return self.refuse(format!("{open} open runs (cap {})", self.max_open_runs));
        }
        Ok(())
    }

    /// Caps, raw store append as a `kind` record (awaiting its commit), hand-off to the run
    /// manager (and for traces the forwarders), for `accepted` (> 0) valid spans or log records
    /// whose encoding `bytes` yields. Spans and log records share the in-flight cap.
    async fn admit(
        &self,
        kind: RecordKind,
        accepted: u64,
        bytes: impl FnOnce() -> Bytes,
    ) -> Result<(), IngestError> {
        let m = &self.metrics;

        // Backpressure: every cap is checked before anything is stored.
        let n = u32::try_from(accepted).unwrap_or(u32::MAX);
        if accepted as usize > self.max_spans_in_flight {
            // A single batch larger than the whole cap could never pass; let it through alone.
            tracing::debug!(items = accepted, %kind, "batch larger than the in-flight cap");
        }
        let permits = n.min(u32::try_from(self.max_spans_in_flight).unwrap_or(u32::MAX));
        let in_flight = match Arc::clone(&self.in_flight).try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(IngestError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return self.refuse(format!(
                    "{} spans and log records in flight (cap {})",
                    self.max_spans_in_flight - self.in_flight.available_permits(),
                    self.max_spans_in_flight
                ))
            }
        };
        let open = ReceiverMetrics::get(&m.open_runs) as usize;
        if open >= self.max_open_runs {
            return self.refuse(format!("{open} open runs (cap {})", self.max_open_runs));
        }
        let slot = match self.runs_tx.try_reserve() {
            Ok(s) => s,
            Err(mpsc::error::TrySendError::Full(())) => {
                return self.refuse("run manager queue is full".into())
            }
            Err(mpsc::error::TrySendError::Closed(())) => return Err(IngestError::ShuttingDown),
        };
        m.spans_in_flight.fetch_add(accepted, Ordering::Relaxed);

        let bytes = bytes();
        let len = bytes.len() as u64;
        let appended = self.store.append_kind(kind, bytes.clone()).await;
        m.spans_in_flight.fetch_sub(accepted, Ordering::Relaxed);
        let seq = match appended {
            Ok(seq) => seq,
            Err(StoreError::Busy { capacity }) => {
                return self.refuse(format!("raw store queue is full ({capacity} appends)"))
            }
            Err(e) => {
                tracing::error!(error = %e, "raw store append failed");
                return Err(IngestError::Store(e));
            }
        };
        ReceiverMetrics::add(&m.bytes_stored, len);
        let received = match kind {
            RecordKind::Traces => &m.spans_received,
            RecordKind::Logs => &m.log_records_received,
        };
        ReceiverMetrics::add(received, accepted);
        m.queue_depth.fetch_add(1, Ordering::Relaxed);
        // The run manager gets the stored bytes (refcounted, no copy).
        slot.send(RunMsg::Batch {
            seq,
            kind,
            bytes: bytes.clone(),
            permit: Some(in_flight),
        });
        // Forward targets are OTLP trace endpoints; logs are not forwarded.
        if kind == RecordKind::Traces {
            self.forwarder.offer(&bytes, m);
        }
        Ok(())
    }

    fn refuse<T>(&self, why: String) -> Result<T, IngestError> {
        ReceiverMetrics::add(&self.metrics.requests_refused, 1);
        tracing::debug!(reason = %why, "export refused (backpressure)");
        Err(IngestError::Busy(why))
    }
}
