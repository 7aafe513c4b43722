//! Schema v2: the language-neutral contract between agents, the receiver and the converters.
//!
//! This crate knows nothing of transports or files. It defines the attribute keys agents put on
//! their spans ([`keys`]), the records a run is assembled into ([`Session`], [`Event`] and the
//! typed payloads), the checks a run must pass ([`validate`]) and the JSON Schemas published in
//! `proto/` ([`json_schema`]). Everything downstream (receiver, datasets, metrics) reads these types.

pub mod event;
pub mod hashing;
pub mod ids;
pub mod json_schema;
pub mod keys;
pub mod llm;
pub mod session;
pub mod time_fmt;
pub mod validate;

pub use event::{
    Event, EventType, Lineage, LlmCall, Outcome, Payload, PlanStep, Role, ToolStatus, Verdict,
};
pub use llm::{ChatMessage, ContentSource, LlmCallRecord, MessagePart, ToolDefinition, Usage};
pub use session::{LineageStats, SeedKind, Session, Summary};
pub use validate::{validate_run, Violation};

/// The value of `traj.schema_version` and of `schema_version` in every record.
pub const SCHEMA_VERSION: &str = "2";

/// A run id is the lowercase hex trace id (32 characters, not all zero; see
/// [`ids::valid_trace_id_hex`]). It is used as a directory name, so nothing else may ever be
/// accepted as one.
pub fn is_valid_run_id(s: &str) -> bool {
    ids::valid_trace_id_hex(s)
}
