//! traj-receiver: the OTLP trace and logs receiver. gRPC and HTTP ingest, per-span and
//! per-log-record validation, durable append to the raw store before acknowledging, and a run
//! manager that assembles runs (spans plus their log records) off the ack path. See
//! `docs/receiver.md`.

pub mod auth;
pub mod body_decode;
pub mod config;
pub mod forward;
pub mod grpc_server;
pub mod http_server;
pub mod ingest;
pub mod log_check;
pub mod otlp_json;
pub mod receive_redaction;
pub mod receiver_metrics;
mod rejections;
pub mod run_manager;
pub mod server;
pub mod settings;
mod sinks;
mod sources;
pub mod span_check;
pub mod tls;

pub use config::{Fsync, ReceiverConfig, TlsFiles};
pub use receiver_metrics::ReceiverMetrics;
pub use server::{Receiver, ReceiverError, RECEIVER_INFO_FILE};
pub use settings::ServeSettings;
