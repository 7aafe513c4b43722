//! Producer side of schema v2: [`init`] sets up `tracing` → OpenTelemetry → OTLP export with
//! exact span accounting ([`ExportStats`]), and [`RunSpan`] and its step/tool/LLM spans record
//! every attribute of `docs/conventions.md` so agent code reads like ordinary `tracing` code.
//!
//! ```no_run
//! use traj_instrument::{init, ExportConfig, RunInfo, RunSpan};
//! use traj_schema::event::{Outcome, PlannerInput};
//!
//! let telemetry = init(ExportConfig::default()).unwrap();
//! let run = RunSpan::start(RunInfo { agent_name: "demo".into(), goal: "sum the file".into(), ..Default::default() });
//! let planner = run.planner(0);
//! planner.input(&PlannerInput { goal: "sum the file".into(), ..Default::default() });
//! drop(planner);
//! run.finish(Outcome::Success, None);
//! telemetry.flush().unwrap();
//! ```

mod error;
mod export_config;
mod export_stats;
pub mod redaction;
mod run_span;
mod step_spans;
mod telemetry;

pub use error::InstrumentError;
pub use export_config::{
    ExportConfig, Protocol, ResolvedExport, DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT,
    DEFAULT_MAX_QUEUE_SIZE, DEFAULT_SERVICE_NAME,
};
pub use export_stats::{active_stats, ExportStats};
pub use run_span::{RunHashes, RunInfo, RunSpan};
pub use step_spans::{
    LinkTarget, LlmSpan, OrchestratorState, PlannerSpan, SpanHandle, ToolSpan, VerifierSpan,
    WorkerSpan, TARGET,
};
pub use telemetry::{build, init, otel_filter, TelemetryGuard, EXPORTER_TARGETS};

#[cfg(test)]
mod span_helpers_tests;
