//! One row of `events.jsonl`: common lineage fields plus a payload typed by `event_type`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The span role an event came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Run,
    Planner,
    Worker,
    Tool,
    Llm,
    Verifier,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Planner => "planner",
            Role::Worker => "worker",
            Role::Tool => "tool",
            Role::Llm => "llm",
            Role::Verifier => "verifier",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "run" => Role::Run,
            "planner" => Role::Planner,
            "worker" => Role::Worker,
            "tool" => Role::Tool,
            "llm" => Role::Llm,
            "verifier" => Role::Verifier,
            _ => return None,
        })
    }
}

/// How an event hangs in the causal graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lineage {
    /// Explicit root marker: the event starts a causal chain (`parent_event_id` is null).
    Root,
    /// `parent_event_id` names an event of the same run.
    Parent,
    /// The parent span (or linked span) never arrived: `parent_event_id` is null and
    /// `missing_parent_span_id` names what is missing. Never silently re-rooted.
    Broken,
}

/// The verifier's judgement of progress.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Continue,
    Replan,
    End,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Continue => "continue",
            Verdict::Replan => "replan",
            Verdict::End => "end",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Some(match s {
            "continue" => Verdict::Continue,
            "replan" => Verdict::Replan,
            "end" | "stop" => Verdict::End,
            _ => return None,
        })
    }
}

/// How a run ended.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    /// Cut short (budget, cancellation, crash) before the verifier ended it.
    Aborted,
    /// The trace did not say (e.g. a foreign trace without an outcome attribute).
    #[default]
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Aborted => "aborted",
            Outcome::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Outcome {
        match s {
            "success" | "ok" => Outcome::Success,
            "failure" | "error" | "failed" => Outcome::Failure,
            "aborted" | "cancelled" => Outcome::Aborted,
            _ => Outcome::Unknown,
        }
    }
}

/// Status of a tool execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    #[default]
    Ok,
    Error,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PlanStep {
    pub index: u32,
    pub description: String,
    /// The tool the planner expects the step to use, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// A model call made while producing a role's output (from an `llm` child span).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LlmCall {
    pub span_id: String,
    pub model: String,
    #[serde(default)]
    pub prompt_hash: String,
    /// The rendered prompt, as recorded (after redaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_prompt: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// A failure the worker already met, given to it as context.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FailureNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub error_class: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PlannerInput {
    pub goal: String,
    /// Snapshot of the environment the planner saw.
    #[serde(default)]
    pub observation: Value,
    /// Condensed history of earlier cycles (one line per step).
    #[serde(default)]
    pub history: Vec<String>,
    /// Tool availability: tool name -> usable now.
    #[serde(default)]
    pub tool_mask: BTreeMap<String, bool>,
    /// Set when this is a replan: the feedback that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replan_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PlannerOutput {
    pub plan: Vec<PlanStep>,
    #[serde(default)]
    pub rationale: String,
    /// Planner's confidence in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_calls: Vec<LlmCall>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkerInput {
    /// Index of the plan step being executed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_step: Option<u32>,
    pub current_step: String,
    #[serde(default)]
    pub env_state: Value,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub prior_failures: Vec<FailureNote>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkerAction {
    /// `tool_call`, `respond` or `give_up`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default)]
    pub arguments: Value,
    /// Short reasoning summary.
    #[serde(default)]
    pub reasoning: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkerToolCall {
    pub tool: String,
    #[serde(default)]
    pub call_id: String,
    #[serde(default)]
    pub arguments: Value,
    /// 1 for the first attempt, 2 for the first retry, ...
    #[serde(default = "one")]
    pub attempt: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkerToolResult {
    pub tool: String,
    #[serde(default)]
    pub call_id: String,
    pub status: ToolStatus,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default = "one")]
    pub attempt: u32,
    #[serde(default)]
    pub duration_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkerOutput {
    pub status: ToolStatus,
    #[serde(default)]
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// Retries made within this worker step.
    #[serde(default)]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_calls: Vec<LlmCall>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PlanProgress {
    pub completed: u32,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct VerifierInput {
    #[serde(default)]
    pub plan_progress: PlanProgress,
    /// One line per action taken so far in the cycle.
    #[serde(default)]
    pub action_traces: Vec<String>,
    #[serde(default)]
    pub evidence: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerifierOutput {
    pub verdict: Verdict,
    #[serde(default)]
    pub feedback: String,
    #[serde(default)]
    pub risk_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_calls: Vec<LlmCall>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct OrchestratorTransition {
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EnvObservation {
    pub source: String,
    #[serde(default)]
    pub observation: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeError {
    pub error_class: String,
    #[serde(default)]
    pub message: String,
    /// True when the error ended the run.
    #[serde(default)]
    pub fatal: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeEnd {
    pub outcome: Outcome,
    /// Steps (cycles) the run took.
    pub steps: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
}

/// The typed payload; `event_type` is its tag and `payload` its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload", rename_all = "snake_case")]
pub enum Payload {
    PlannerInput(PlannerInput),
    PlannerOutput(PlannerOutput),
    WorkerInput(WorkerInput),
    WorkerAction(WorkerAction),
    WorkerToolCall(WorkerToolCall),
    WorkerToolResult(WorkerToolResult),
    WorkerOutput(WorkerOutput),
    VerifierInput(VerifierInput),
    VerifierOutput(VerifierOutput),
    OrchestratorTransition(OrchestratorTransition),
    EnvObservation(EnvObservation),
    EpisodeError(EpisodeError),
    EpisodeEnd(EpisodeEnd),
    LlmCall(crate::llm::LlmCallRecord),
}

/// The event types of schema v2 (the tags of [`Payload`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    PlannerInput,
    PlannerOutput,
    WorkerInput,
    WorkerAction,
    WorkerToolCall,
    WorkerToolResult,
    WorkerOutput,
    VerifierInput,
    VerifierOutput,
    OrchestratorTransition,
    EnvObservation,
    EpisodeError,
    EpisodeEnd,
    LlmCall,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::PlannerInput,
        EventType::PlannerOutput,
        EventType::WorkerInput,
        EventType::WorkerAction,
        EventType::WorkerToolCall,
        EventType::WorkerToolResult,
        EventType::WorkerOutput,
        EventType::VerifierInput,
        EventType::VerifierOutput,
        EventType::OrchestratorTransition,
        EventType::EnvObservation,
        EventType::EpisodeError,
        EventType::EpisodeEnd,
        EventType::LlmCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PlannerInput => "planner_input",
            EventType::PlannerOutput => "planner_output",
            EventType::WorkerInput => "worker_input",
            EventType::WorkerAction => "worker_action",
            EventType::WorkerToolCall => "worker_tool_call",
            EventType::WorkerToolResult => "worker_tool_result",
            EventType::WorkerOutput => "worker_output",
            EventType::VerifierInput => "verifier_input",
            EventType::VerifierOutput => "verifier_output",
            EventType::OrchestratorTransition => "orchestrator_transition",
            EventType::EnvObservation => "env_observation",
            EventType::EpisodeError => "episode_error",
            EventType::EpisodeEnd => "episode_end",
            EventType::LlmCall => "llm_call",
        }
    }
}

impl Payload {
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::PlannerInput(_) => EventType::PlannerInput,
            Payload::PlannerOutput(_) => EventType::PlannerOutput,
            Payload::WorkerInput(_) => EventType::WorkerInput,
            Payload::WorkerAction(_) => EventType::WorkerAction,
            Payload::WorkerToolCall(_) => EventType::WorkerToolCall,
            Payload::WorkerToolResult(_) => EventType::WorkerToolResult,
            Payload::WorkerOutput(_) => EventType::WorkerOutput,
            Payload::VerifierInput(_) => EventType::VerifierInput,
            Payload::VerifierOutput(_) => EventType::VerifierOutput,
            Payload::OrchestratorTransition(_) => EventType::OrchestratorTransition,
            Payload::EnvObservation(_) => EventType::EnvObservation,
            Payload::EpisodeError(_) => EventType::EpisodeError,
            Payload::EpisodeEnd(_) => EventType::EpisodeEnd,
            Payload::LlmCall(_) => EventType::LlmCall,
        }
    }
}

/// One line of `events.jsonl`.
///
/// Field order is the serialization order, and assembly sorts events by
/// (`time_unix_nano`, `event_id`), so the same spans always give byte-identical files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub schema_version: String,
    pub run_id: String,
    pub trace_id: String,
    /// The span the event was derived from (16 hex digits).
    pub span_id: String,
    pub step: u32,
    /// Deterministic: hex of sha256(trace_id, span_id, event_type, ordinal), 32 digits.
    pub event_id: String,
    /// RFC 3339, UTC, nanoseconds.
    pub timestamp: String,
    pub time_unix_nano: u64,
    pub role: Role,
    /// Null exactly when `lineage` is `root` or `broken`.
    pub parent_event_id: Option<String>,
    pub lineage: Lineage,
    /// Set when `lineage` is `broken`: the span id that never arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_parent_span_id: Option<String>,
    /// `traj` when assembled from schema v2 attributes; the rule name for mapped foreign spans.
    #[serde(default = "traj_source")]
    pub source: String,
    #[serde(flatten)]
    pub payload: Payload,
}

fn traj_source() -> String {
    "traj".to_string()
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}

/// Deterministic event id: first 16 bytes of sha256 over the identifying tuple, in hex.
pub fn event_id(trace_id: &str, span_id: &str, event_type: EventType, ordinal: u32) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(trace_id.as_bytes());
    h.update(b"/");
    h.update(span_id.as_bytes());
    h.update(b"/");
    h.update(event_type.as_str().as_bytes());
    h.update(b"/");
    h.update(ordinal.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_serializes_with_tag_and_payload() {
        let e = Event {
            schema_version: "2".into(),
            run_id: "0af7651916cd43dd8448eb211c80319c".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            step: 1,
            event_id: event_id("t", "s", EventType::VerifierOutput, 0),
            timestamp: "2026-11-26T00:00:00Z".into(),
            time_unix_nano: 1,
            role: Role::Verifier,
            parent_event_id: Some("p".into()),
            lineage: Lineage::Parent,
            missing_parent_span_id: None,
            source: "traj".into(),
            payload: Payload::VerifierOutput(VerifierOutput {
                verdict: Verdict::Replan,
                feedback: "wrong file".into(),
                risk_flags: vec![],
                confidence: None,
                llm_calls: vec![],
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event_type"], "verifier_output");
        assert_eq!(v["payload"]["verdict"], "replan");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn event_ids_are_deterministic_and_distinct() {
        let a = event_id("t", "s", EventType::WorkerInput, 0);
        assert_eq!(a, event_id("t", "s", EventType::WorkerInput, 0));
        assert_ne!(a, event_id("t", "s", EventType::WorkerOutput, 0));
        assert_ne!(a, event_id("t", "s", EventType::WorkerInput, 1));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn unknown_event_type_is_an_error() {
        let v = json!({"event_type": "worker_dance", "payload": {}});
        assert!(serde_json::from_value::<Payload>(v).is_err());
    }
}
