//! No silent loss: counts every span that ended, was exported, failed to export or was dropped.
//!
//! The SDK's `BatchSpanProcessor` has no public drop counter, so it is wrapped twice:
//! [`CountingProcessor`] sees every ended span and admits it only while fewer than `capacity`
//! spans are waiting (otherwise it drops and counts it itself); [`CountingExporter`] sees every
//! batch leaving the queue and counts it as exported or failed. The inner processor's channel
//! is sized above `capacity`, so it never drops on its own: after a flush,
//! `ended == exported + failed + dropped` holds exactly.

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Target of this crate's own diagnostics; filtered out of the OTel layer (no feedback loop).
pub(crate) const LOG_TARGET: &str = "traj_instrument::export";

/// Span accounting of one export pipeline since it was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    /// Spans that ended (handed to the span processor).
    pub ended: u64,
    /// Spans in batches the collector accepted.
    pub exported: u64,
    /// Spans dropped because the queue was full (or the pipeline already shut down).
    pub dropped: u64,
    /// Spans in batches whose export failed (collector down, timeout, rejected).
    pub failed: u64,
}

impl ExportStats {
    /// Spans that will never arrive: `dropped + failed`.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed
    }

    /// Spans still queued or in flight (0 right after a successful flush).
    pub fn pending(&self) -> u64 {
        self.ended
            .saturating_sub(self.exported + self.dropped + self.failed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    ended: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Admitted to the inner processor and not yet handed to the exporter.
    queued: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ExportStats {
        // Read the outcomes before `ended` so that a concurrent update never makes
        // exported + dropped + failed exceed ended in a snapshot.
        let exported = self.exported.load(Ordering::Acquire);
        let dropped = self.dropped.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let ended = self.ended.load(Ordering::Acquire);
        ExportStats {
            ended,
            exported,
            dropped,
            failed,
        }
    }
}

/// The counters of the most recently built pipeline; [`crate::RunSpan::finish`] reads the
/// drops seen so far from here to set `traj.spans_dropped`.
static ACTIVE: RwLock<Option<Arc<Counters>>> = RwLock::new(None);

pub(crate) fn set_active(c: Option<Arc<Counters>>) {
    match ACTIVE.write() {
        Ok(mut g) => *g = c,
        Err(poisoned) => *poisoned.into_inner() = c,
    }
}

/// Stats of the active pipeline (all zero when none is set up).
pub fn active_stats() -> ExportStats {
    let guard = match ACTIVE.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.as_ref().map(|c| c.snapshot()).unwrap_or_default()
}

/// Wraps the batch processor: counts ended spans and enforces the queue bound itself.
#[derive(Debug)]
pub(crate) struct CountingProcessor<P> {
    inner: P,
    counters: Arc<Counters>,
    capacity: u64,
    shut_down: AtomicBool,
}

impl<P> CountingProcessor<P> {
    pub(crate) fn new(inner: P, counters: Arc<Counters>, capacity: usize) -> Self {
        CountingProcessor {
            inner,
            counters,
            capacity: capacity as u64,
            shut_down: AtomicBool::new(false),
        }
    }

    fn drop_span(&self) {
        if self.counters.dropped.fetch_add(1, Ordering::AcqRel) == 0 {
            tracing::warn!(
                target: LOG_TARGET,
                capacity = self.capacity,
                "span queue full or pipeline shut down: dropping spans (counted in ExportStats.dropped)"
            );
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.counters.ended.fetch_add(1, Ordering::AcqRel);
        if self.shut_down.load(Ordering::Acquire) {
            self.drop_span();
            return;
        }
        let before = self.counters.queued.fetch_add(1, Ordering::AcqRel);
        if before >= self.capacity {
            self.counters.queued.fetch_sub(1, Ordering::AcqRel);
            self.drop_span();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::Release);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Wraps the OTLP exporter: counts each batch as exported or failed, and (for gRPC) runs the
/// export on the pipeline's own tokio runtime, which owns the tonic channel.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: Arc<E>,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Handle>,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(
        inner: E,
        counters: Arc<Counters>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        CountingExporter {
            inner: Arc::new(inner),
            counters,
            runtime,
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        // The batch has left the processor's channel: it no longer counts against the bound.
        self.counters.queued.fetch_sub(n, Ordering::AcqRel);
        let result = match &self.runtime {
            Some(handle) => {
                let inner = Arc::clone(&self.inner);
                match handle.spawn(async move { inner.export(batch).await }).await {
                    Ok(r) => r,
                    Err(join) => Err(OTelSdkError::InternalFailure(format!(
                        "export task failed: {join}"
                    ))),
                }
            }
            None => self.inner.export(batch).await,
        };
        match &result {
            Ok(()) => {
                self.counters.exported.fetch_add(n, Ordering::AcqRel);
            }
            Err(e) => {
                self.counters.failed.fetch_add(n, Ordering::AcqRel);
                tracing::warn!(target: LOG_TARGET, spans = n, error = %e, "OTLP export failed");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.set_resource(resource),
            None => tracing::warn!(
                target: LOG_TARGET,
                "resource set after export started; service.name may be missing"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    use std::sync::Mutex;

    /// An exporter that blocks until released, then accepts or rejects everything.
    #[derive(Debug, Clone)]
    struct GateExporter {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        fail: bool,
    }

    impl SpanExporter for GateExporter {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            if self.fail {
                Err(OTelSdkError::InternalFailure("rejected".into()))
            } else {
                Ok(())
            }
        }
    }

    fn pipeline(capacity: usize, fail: bool) -> (SdkTracerProvider, Arc<Counters>, GateExporter) {
        let counters = Arc::new(Counters::default());
        let gate = GateExporter {
            open: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
            fail,
        };
        let exporter = CountingExporter::new(gate.clone(), counters.clone(), None);
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(capacity + 64)
                    .with_max_export_batch_size(16)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(CountingProcessor::new(batch, counters.clone(), capacity))
            .build();
        (provider, counters, gate)
    }

    fn release(gate: &GateExporter) {
        let (lock, cv) = &*gate.open;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }

    #[test]
    fn overflow_is_dropped_and_counted_exactly() {
        let (provider, counters, gate) = pipeline(100, false);
        let tracer = provider.tracer("t");
        for _ in 0..1000 {
            tracer.in_span("s", |_| {});
        }
        // The exporter is blocked: at most `capacity` spans (plus one batch taken out of the
        // queue) can be waiting, everything else must have been dropped and counted.
        let s = counters.snapshot();
        assert_eq!(s.ended, 1000);
        assert!(s.dropped >= 1000 - 100 - 16, "{s:?}");
        release(&gate);
        provider.force_flush().unwrap();
        let s = counters.snapshot();
        assert_eq!(s.ended, s.exported + s.dropped + s.failed, "{s:?}");
        assert_eq!(s.failed, 0);
        assert_eq!(s.pending(), 0);
        provider.shutdown().unwrap();
    }

    #[test]
    fn failed_exports_are_counted_as_failed() {
        let (provider, counters, gate) = pipeline(1000, true);
        release(&gate);
        let tracer = provider.tracer("t");
        for _ in 0..50 {
            tracer.in_span("s", |_| {});
        }
        let _ = provider.force_flush();
        let s = counters.snapshot();
        assert_eq!(
            s,
            ExportStats {
                ended: 50,
                exported: 0,
                dropped: 0,
                failed: 50
            }
        );
        assert_eq!(s.lost(), 50);
        let _ = provider.shutdown();
    }
}
