//! The ack path shared by gRPC and HTTP, for traces and logs: validate, (re-encode when spans or
//! log records were rejected), reserve room downstream, append to the raw store (as a traces or
//! logs record) and await its commit, hand the batch to the run manager (and, for traces, the
//! forwarders), acknowledge. Nothing here waits on assembly.

use crate::forward::Forwarder;
use crate::log_check::check_logs_request;
use crate::receiver_metrics::ReceiverMetrics;
use crate::retention_floor::RetentionFloor;
use crate::run_routing::route;
use crate::sinks::RunQueues;
use crate::span_check::check_request;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The checked batch could not be routed to assembly (unreachable; not retryable).
    #[error("{0}")]
    Internal(String),
}

impl IngestError {
    /// Whether the client should retry the same batch.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Busy(_) | IngestError::ShuttingDown => true,
            IngestError::Store(e) => e.is_retryable(),
            IngestError::Internal(_) => false,
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
    pub(crate) runs: RunQueues,
    /// Where a batch is registered before its append, so retention keeps it until its runs hold it.
    pub(crate) floor: Arc<RetentionFloor>,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_spans_in_flight: usize,
    pub(crate) max_open_runs: usize,
    /// Request bytes in flight, in KiB permits (`max_bytes_in_flight`).
    pub(crate) bytes_in_flight: Arc<Semaphore>,
    pub(crate) max_kib_in_flight: usize,
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
        let size = raw.as_ref().map_or_else(|| req.encoded_len(), Bytes::len);
        let _bytes = self.hold_bytes(size)?;
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
        let _bytes = self.hold_bytes(raw.len())?;
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
        let _bytes = self.hold_bytes(raw.len())?;
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
        let size = raw.as_ref().map_or_else(|| req.encoded_len(), Bytes::len);
        let _bytes = self.hold_bytes(size)?;
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
        let bytes = bytes();
        let routed = route(kind, &bytes, self.runs.len()).map_err(|e| {
            tracing::error!(error = %e, "checked batch could not be routed");
            IngestError::Internal(e.to_string())
        })?;
        let slots = self.reserve_runs(routed.traces)?;
        let mut queue_slots = Vec::with_capacity(routed.loads.len());
        for (shard, _) in &routed.loads {
            match self.runs.try_reserve(*shard) {
                Ok(s) => queue_slots.push(s),
                Err(mpsc::error::TrySendError::Full(())) => {
                    return self.refuse("run manager queue is full".into())
                }
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Err(IngestError::ShuttingDown)
                }
            }
        }
        m.spans_in_flight.fetch_add(accepted, Ordering::Relaxed);

        let len = bytes.len() as u64;
        let hold = self
            .floor
            .pending(self.store.stats().last_seq.map_or(0, |last| last + 1));
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
        // The shards get where the spans are (and the log records), never the bytes.
        slots.keep();
        m.queue_depth
            .fetch_add(routed.loads.len() as u64, Ordering::Relaxed);
        for (slot, (_, load)) in queue_slots.into_iter().zip(routed.loads) {
            slot.send(load.into_msg(seq, Arc::clone(&hold)));
        }
        drop(in_flight);
        // Forward targets are OTLP trace endpoints; logs are not forwarded.
        if kind == RecordKind::Traces {
            self.forwarder.offer(&bytes, m);
        }
        Ok(())
    }

    /// Holds `size` request bytes against `max_bytes_in_flight` until the request is stored (or
    /// refused), so memory is bounded in bytes whatever the span sizes; a request larger than the
    /// whole bound waits for it to be free and then passes alone.
    fn hold_bytes(&self, size: usize) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        let kib = size.div_ceil(1024).clamp(1, self.max_kib_in_flight);
        let permits = u32::try_from(kib).unwrap_or(u32::MAX);
        match Arc::clone(&self.bytes_in_flight).try_acquire_many_owned(permits) {
            Ok(p) => Ok(p),
            Err(tokio::sync::TryAcquireError::Closed) => Err(IngestError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => self.refuse(format!(
                "{} KiB of requests in flight (cap {} KiB)",
                self.max_kib_in_flight - self.bytes_in_flight.available_permits(),
                self.max_kib_in_flight
            )),
        }
    }

    /// Reserves one open-run slot for each of `traces` (each may open a run) while fewer than
    /// `max_open_runs` are taken; refused (retryably) at the cap. A batch is let through whole
    /// when any slot is free, even if its traces need more: most of them are usually open
    /// already (their slots come back from the shards at once), and requiring them all free
    /// would starve the batches that complete the open runs. So open runs never exceed the cap
    /// by more than one batch's traces less one, whatever the concurrency. The shards give back
    /// the slots of traces that were open already, and each slot again when its run is
    /// finalized.
    fn reserve_runs(&self, traces: u64) -> Result<RunSlots<'_>, IngestError> {
        let cap = self.max_open_runs as u64;
        let gauge = &self.metrics.open_runs;
        match gauge.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < cap).then_some(open + traces)
        }) {
            Ok(_) => Ok(RunSlots { gauge, n: traces }),
            Err(open) => self.refuse(format!("{open} open runs (cap {cap})")),
        }
    }

    fn refuse<T>(&self, why: String) -> Result<T, IngestError> {
        ReceiverMetrics::add(&self.metrics.requests_refused, 1);
        tracing::debug!(reason = %why, "export refused (backpressure)");
        Err(IngestError::Busy(why))
    }
}

/// Open-run slots held by a request until its batch is handed to the shards; given back if the
/// request fails before that.
struct RunSlots<'a> {
    gauge: &'a AtomicU64,
    n: u64,
}

impl RunSlots<'_> {
    /// The shards own the slots now.
    fn keep(mut self) {
        self.n = 0;
    }
}

impl Drop for RunSlots<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.gauge.fetch_sub(self.n, Ordering::AcqRel);
        }
    }
}
