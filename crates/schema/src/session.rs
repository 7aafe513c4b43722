//! `session.json`: what a run was (goal, configuration, governance) and how it went.

use crate::event::Outcome;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Model and hyper-parameters of one role.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ModelSpec {
    pub model: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub max_steps: u32,
    /// Prompt template name -> where it came from (file, registry, inline).
    #[serde(default)]
    pub prompt_sources: BTreeMap<String, String>,
    /// `real` (tools really run) or `synthetic`.
    #[serde(default)]
    pub tool_mode: String,
    /// Anything else the agent recorded.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DataGovernance {
    pub redaction_policy: String,
    pub redaction_version: String,
    /// `source_redacted` when the source applied its policy, `not_redacted` otherwise;
    /// the dataset build adds its own second pass on top.
    pub pii_scan_status: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub outcome: Outcome,
    /// `outcome == success`, or null when unknown.
    pub success: Option<bool>,
    pub step_count: u32,
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub tool_errors: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Rough cost estimate in USD from token counts (0 when no price is known).
    pub cost_estimate_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
    /// Spans the source reported dropping (`traj.spans_dropped`); > 0 means the run is incomplete.
    pub spans_dropped_at_source: u64,
}

/// Lineage figures of the assembled run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LineageStats {
    pub spans: u64,
    pub events: u64,
    /// Events with the explicit root marker.
    pub root_events: u64,
    /// Events whose parent is another event of the run.
    pub parented_events: u64,
    /// Events whose parent span never arrived (broken lineage).
    pub orphan_events: u64,
    /// Spans that mapped to no role (kept in raw storage, counted here).
    pub unmapped_spans: u64,
    /// Copies of an already-seen (trace id, span id) that were ignored.
    pub duplicate_spans: u64,
    /// OTLP log records of the trace handed to assembly (joined to their spans where they can be).
    #[serde(default)]
    pub log_records: u64,
}

/// How a run's seed was chosen: the seed plan collects traces with both.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SeedKind {
    /// Given by the caller (reproducible batches).
    Fixed,
    /// Drawn at random (and recorded in `traj.seed`).
    Random,
}

impl SeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SeedKind::Fixed => "fixed",
            SeedKind::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<SeedKind> {
        match s {
            "fixed" => Some(SeedKind::Fixed),
            "random" => Some(SeedKind::Random),
            _ => None,
        }
    }
}

/// The whole of `session.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub schema_version: String,
    pub run_id: String,
    pub trace_id: String,
    pub goal: String,
    pub goal_family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    pub seed: Option<u64>,
    /// Whether the seed was fixed by the caller or drawn at random (`traj.seed_kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_kind: Option<SeedKind>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: f64,
    /// `service.name` of the resource that sent the root span.
    pub service_name: String,
    /// `traj` for schema v2 traces; `foreign:<convention>` for mapped GenAI/OpenInference traces.
    pub source: String,
    pub model_stack: BTreeMap<String, ModelSpec>,
    pub runtime_config: RuntimeConfig,
    pub data_governance: DataGovernance,
    pub summary: Summary,
    pub config_hash: String,
    pub prompt_hash: String,
    pub toolset_hash: String,
    pub lineage: LineageStats,
    /// False when the run was finalized by the idle timeout without its root span.
    pub root_span_seen: bool,
    /// What assembly met on the way (malformed content, unknown parts, logs without their span,
    /// two conventions at once, ...), bounded; the dataset report repeats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
