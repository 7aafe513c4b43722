//! traj-receiver: the OTLP trace receiver. gRPC and HTTP ingest, per-span validation, durable
//! append to the raw store before acknowledging, and a run manager that assembles runs off the
//! ack path.

pub mod body_decode;
pub mod otlp_json;
