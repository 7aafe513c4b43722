//! The one error type of `traj-instrument`: what can go wrong while setting up or flushing export.

/// Errors from setting up, flushing or shutting down the OTLP export pipeline.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    /// A configuration value (explicit or from an `OTEL_*` variable) is not usable.
    #[error("invalid export configuration: {key}: {message}")]
    Config { key: String, message: String },
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// The runtime that drives the gRPC channel could not be started.
    #[error("cannot start the export runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A global `tracing` subscriber is already installed (use [`crate::build`] and a scoped dispatch).
    #[error("a global tracing subscriber is already set: {0}")]
    AlreadyInitialized(String),
    /// Flushing pending spans failed or timed out.
    #[error("flush failed: {0}")]
    Flush(String),
    /// Shutting the pipeline down failed.
    #[error("shutdown failed: {0}")]
    Shutdown(String),
}
