//! traj-receiver: the OTLP trace and logs receiver. gRPC and HTTP ingest, per-span and
//! per-log-record validation, durable append to the raw store before acknowledging, and a run
//! manager that assembles runs (spans plus their log records) off the ack path. See
//! `docs/receiver.md`.

// The receiver's topology (sources, ack path, sinks) and its serve settings.
pub mod config;
pub mod forward;
pub mod grpc_server;
pub mod http_server;
pub mod server;
pub mod settings;
mod sinks;
mod sources;

// Building blocks of the ack path and the run manager, reachable only through the re-exports
// below (what the CLI, the integration tests and the fuzz targets use).
mod auth;
mod body_decode;
mod ingest;
mod log_check;
mod otlp_json;
mod receive_redaction;
mod receiver_metrics;
mod rejections;
mod retention_floor;
mod run_manager;
mod run_routing;
mod span_check;
mod tls;

pub use body_decode::{decode_request, decompress, DecodeError, Encoding};
pub use config::{Fsync, ReceiverConfig, TlsFiles};
pub use receiver_metrics::ReceiverMetrics;
pub use retention_floor::{PendingRecord, RetentionFloor};
pub use run_manager::{
    IndexError, RecoverySummary, RunManager, RunManagerConfig, RunMsg, Shard, TraceIndexDb,
};
pub use server::{Receiver, ReceiverError, RECEIVER_INFO_FILE};
pub use settings::ServeSettings;
pub use span_check::{check_request, span_problem, SpanCheck};
