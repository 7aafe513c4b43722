//! Schema v2: the language-neutral contract between agents, the receiver and the converters.
//!
//! This crate knows nothing of transports or files. It defines the attribute keys agents put on
//! their spans ([`keys`]), the records a run is assembled into ([`Session`], [`Event`] and the
//! typed payloads), the checks a run must pass ([`validate`]) and the JSON Schemas published in
//! `proto/` ([`json_schema`]). Everything downstream (receiver, datasets, metrics) reads these types.

pub mod event;
pub mod hashing;
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

/// A run id is the lowercase hex trace id (32 characters). It is used as a directory name, so
/// nothing else may ever be accepted as one.
pub fn is_valid_run_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

/// Derives the run id from a 16-byte trace id. Returns `None` for the invalid all-zero id.
pub fn run_id_from_trace_id(trace_id: &[u8]) -> Option<String> {
    if trace_id.len() != 16 || trace_id.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex::encode(trace_id))
}
