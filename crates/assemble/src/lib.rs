//! traj-assemble: turns the spans of one trace into one run (`session.json` + `events.jsonl`
//! records, in memory), following `docs/conventions.md` for schema v2 traces and
//! [`MappingRules`] for foreign (GenAI / OpenInference) traces. See `docs/assembly.md`.

pub mod assembly;
pub mod attributes;
pub mod encoded_spans;
mod llm_calls;
pub mod log_record;
mod payloads;
pub mod request_check;
pub mod rules;
mod session_builder;
mod span_index;
pub mod span_record;
mod warnings;

pub use assembly::{assemble, assemble_with_logs, AssembledRun};
pub use encoded_spans::{split_encoded_by_trace, EncodedSpan, EncodedTraces, WireError};
pub use log_record::{split_logs_by_trace, LogEntry, SplitLogs};
pub use request_check::{check_encoded_request, EncodedCheck};
pub use rules::{FactRules, MappingRules, ModelPrice, Rule, RulesError};
pub use span_record::{split_by_trace, SpanRecord, SplitTraces};
pub use warnings::MAX_WARNINGS;
