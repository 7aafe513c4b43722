//! One call sets up the whole export path: `tracing` registry + tracing-opentelemetry layer +
//! counted batch processor + OTLP exporter (gRPC or HTTP/protobuf). [`TelemetryGuard`] flushes
//! and shuts it down.

use crate::error::InstrumentError;
use crate::export_config::{ExportConfig, Protocol, ResolvedExport};
use crate::export_stats::{self, Counters, CountingExporter, CountingProcessor, ExportStats};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;
use tracing::Dispatch;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Crates whose own spans and events must never reach the OTel layer: exporting them would
/// create more spans to export (the feedback loop measured in the instrumentation notes).
pub const EXPORTER_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "tokio",
    "mio",
    "want",
    "traj_instrument::export",
];

/// The filter in front of the OTel layer: `level` and above, minus [`EXPORTER_TARGETS`]
/// (prefix match: `hyper` also covers `hyper_util`, `opentelemetry` covers `opentelemetry_sdk`).
pub fn otel_filter(level: tracing::Level) -> Targets {
    Targets::new()
        .with_default(LevelFilter::from_level(level))
        .with_targets(EXPORTER_TARGETS.iter().map(|t| (*t, LevelFilter::OFF)))
}

/// Owns the export pipeline. Dropping it flushes and shuts down (bounded by the SDK's timeouts).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    counters: Arc<Counters>,
    dispatch: Dispatch,
    resolved: ResolvedExport,
    /// Drives the tonic channel (gRPC only). Shut down in the background on drop, which is
    /// allowed even inside another runtime.
    runtime: Option<tokio::runtime::Runtime>,
    shut_down: bool,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("resolved", &self.resolved)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Sets up export and installs it as the global `tracing` subscriber.
pub fn init(cfg: ExportConfig) -> Result<TelemetryGuard, InstrumentError> {
    let guard = build(cfg)?;
    tracing::dispatcher::set_global_default(guard.dispatch.clone())
        .map_err(|e| InstrumentError::AlreadyInitialized(e.to_string()))?;
    Ok(guard)
}

/// Sets up export without touching the global subscriber: use [`TelemetryGuard::dispatch`] with
/// `tracing::dispatcher::with_default` (tests, or several pipelines in one process).
pub fn build(cfg: ExportConfig) -> Result<TelemetryGuard, InstrumentError> {
    let resolved = cfg.resolve()?;
    let counters = Arc::new(Counters::default());

    let (processor, runtime) = match resolved.protocol {
        Protocol::Grpc => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("traj-otlp-grpc")
                .enable_all()
                .build()
                .map_err(InstrumentError::Runtime)?;
            // tonic's lazy channel spawns its worker on the current runtime: build inside ours.
            let exporter = {
                let _enter = rt.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(resolved.endpoint.clone())
                    .with_timeout(cfg.export_timeout)
                    .build()
                    .map_err(|e| InstrumentError::Exporter(e.to_string()))?
            };
            let exporter =
                CountingExporter::new(exporter, counters.clone(), Some(rt.handle().clone()));
            (batch_processor(exporter, &cfg, &counters), Some(rt))
        }
        Protocol::HttpProtobuf => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(resolved.endpoint.clone())
                .with_timeout(cfg.export_timeout)
                .build()
                .map_err(|e| InstrumentError::Exporter(e.to_string()))?;
            // The blocking HTTP client runs on the batch processor's own thread.
            let exporter = CountingExporter::new(exporter, counters.clone(), None);
            (batch_processor(exporter, &cfg, &counters), None)
        }
    };

    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(resolved.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("traj-instrument");

    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_target(false)
        .with_filter(otel_filter(cfg.level));
    let fmt_layer = match &cfg.stderr_log_filter {
        Some(default) => {
            let filter = EnvFilter::try_from_default_env()
                .or_else(|_| EnvFilter::try_new(default))
                .map_err(|e| InstrumentError::Config {
                    key: "stderr_log_filter".into(),
                    message: e.to_string(),
                })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
        }
        None => None,
    };
    let dispatch = Dispatch::new(Registry::default().with(otel_layer).with(fmt_layer));
    export_stats::set_active(Some(counters.clone()));
    Ok(TelemetryGuard {
        provider,
        counters,
        dispatch,
        resolved,
        runtime,
        shut_down: false,
    })
}

fn batch_processor<E>(
    exporter: CountingExporter<E>,
    cfg: &ExportConfig,
    counters: &Arc<Counters>,
) -> CountingProcessor<BatchSpanProcessor>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    let capacity = cfg.max_queue_size.max(1);
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                // Above our own bound, so the SDK never drops uncounted.
                .with_max_queue_size(capacity + cfg.max_export_batch_size.max(1) + 64)
                .with_max_export_batch_size(cfg.max_export_batch_size.max(1))
                .with_scheduled_delay(cfg.scheduled_delay)
                .build(),
        )
        .build();
    CountingProcessor::new(batch, counters.clone(), capacity)
}

impl TelemetryGuard {
    /// The subscriber this pipeline feeds (already global after [`init`]).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Protocol, endpoint and service name actually used.
    pub fn resolved(&self) -> &ResolvedExport {
        &self.resolved
    }

    /// Counts so far: spans ended, exported, dropped, failed.
    pub fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }

    /// Exports everything queued and waits for it (call at the end of every run).
    pub fn flush(&self) -> Result<ExportStats, InstrumentError> {
        self.provider
            .force_flush()
            .map_err(|e| InstrumentError::Flush(e.to_string()))?;
        Ok(self.stats())
    }

    /// Flushes and shuts down, returning the final counts.
    pub fn shutdown(mut self) -> Result<ExportStats, InstrumentError> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<ExportStats, InstrumentError> {
        if self.shut_down {
            return Ok(self.stats());
        }
        self.shut_down = true;
        let result = self
            .provider
            .shutdown_with_timeout(Duration::from_secs(10))
            .map_err(|e| InstrumentError::Shutdown(e.to_string()));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        result.map(|()| self.stats())
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_inner() {
            tracing::warn!(target: export_stats::LOG_TARGET, error = %e, "telemetry shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn exporter_crates_are_filtered_out() {
        let f = otel_filter(Level::INFO);
        for t in [
            "h2::proto::streams",
            "hyper_util::client",
            "tonic::transport",
            "opentelemetry_sdk",
            "tower::buffer",
            "traj_instrument::export",
        ] {
            assert!(!f.would_enable(t, &Level::ERROR), "{t} must be filtered");
        }
        assert!(f.would_enable("traj_instrument::run_span", &Level::INFO));
        assert!(f.would_enable("my_agent", &Level::INFO));
        assert!(!f.would_enable("my_agent", &Level::DEBUG));
    }
}
