//! The attribute conventions of schema v2: every key an agent sets, on which span, and why.
//!
//! [`ATTRIBUTES`] is the single source of `proto/attributes.md` and `proto/attributes.json`
//! (a test fails when they drift). Keys under `traj.` are ours; the `gen_ai.*`,
//! `openinference.*` and `error.type` keys are the public conventions, set as well so that
//! Jaeger, Phoenix and Langfuse render the same spans without help.

use serde::Serialize;

// ---- traj keys -------------------------------------------------------------------------------
pub const SCHEMA_VERSION: &str = "traj.schema_version";
pub const ROLE: &str = "traj.role";
pub const STEP: &str = "traj.step";
pub const GOAL: &str = "traj.goal";
pub const GOAL_FAMILY: &str = "traj.goal_family";
pub const TASK_ID: &str = "traj.task_id";
pub const SEED: &str = "traj.seed";
pub const SEED_KIND: &str = "traj.seed_kind";
pub const CONFIG_HASH: &str = "traj.config_hash";
pub const PROMPT_HASH: &str = "traj.prompt_hash";
pub const TOOLSET_HASH: &str = "traj.toolset_hash";
pub const MODEL_STACK: &str = "traj.model_stack";
pub const RUNTIME_CONFIG: &str = "traj.runtime_config";
pub const REDACTION_POLICY: &str = "traj.redaction.policy";
pub const REDACTION_VERSION: &str = "traj.redaction.version";
pub const OUTCOME: &str = "traj.outcome";
pub const FAILURE_CLASS: &str = "traj.failure_class";
pub const SPANS_DROPPED: &str = "traj.spans_dropped";
pub const PLANNER_INPUT: &str = "traj.planner.input";
pub const PLANNER_OUTPUT: &str = "traj.planner.output";
pub const WORKER_INPUT: &str = "traj.worker.input";
pub const WORKER_ACTION: &str = "traj.worker.action";
pub const WORKER_OUTPUT: &str = "traj.worker.output";
pub const VERIFIER_INPUT: &str = "traj.verifier.input";
pub const VERIFIER_OUTPUT: &str = "traj.verifier.output";
pub const VERDICT: &str = "traj.verdict";
pub const TOOL_STATUS: &str = "traj.tool.status";
pub const ERROR_CLASS: &str = "traj.error.class";
pub const RETRY_ATTEMPT: &str = "traj.retry.attempt";
pub const PROMPT_RENDERED: &str = "traj.prompt.rendered";

// ---- span events -----------------------------------------------------------------------------
/// Span event recording an orchestrator state change (on the span whose result caused it).
pub const EVENT_TRANSITION: &str = "traj.transition";
pub const TRANSITION_FROM: &str = "traj.transition.from";
pub const TRANSITION_TO: &str = "traj.transition.to";
pub const TRANSITION_REASON: &str = "traj.transition.reason";
/// Span event recording what the environment showed (on the worker or tool span).
pub const EVENT_OBSERVATION: &str = "traj.observation";
pub const OBSERVATION_SOURCE: &str = "traj.observation.source";
pub const OBSERVATION_DATA: &str = "traj.observation.data";
/// The standard OTel exception event.
pub const EVENT_EXCEPTION: &str = "exception";
/// The GenAI evaluation event (`gen_ai.evaluation.score.label`, `gen_ai.evaluation.explanation`).
pub const EVENT_EVALUATION_RESULT: &str = "gen_ai.evaluation.result";
pub const EXCEPTION_TYPE: &str = "exception.type";
pub const EXCEPTION_MESSAGE: &str = "exception.message";

// ---- public conventions ----------------------------------------------------------------------
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";
pub const ERROR_TYPE: &str = "error.type";

/// `gen_ai.operation.name` values per role.
pub mod operation {
    pub const INVOKE_WORKFLOW: &str = "invoke_workflow";
    pub const PLAN: &str = "plan";
    pub const INVOKE_AGENT: &str = "invoke_agent";
    pub const EXECUTE_TOOL: &str = "execute_tool";
    pub const CHAT: &str = "chat";
}

/// `openinference.span.kind` values per role.
pub mod span_kind {
    pub const CHAIN: &str = "CHAIN";
    pub const AGENT: &str = "AGENT";
    pub const TOOL: &str = "TOOL";
    pub const LLM: &str = "LLM";
    pub const EVALUATOR: &str = "EVALUATOR";
}

/// The type of an attribute value, as OTLP carries it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    String,
    Int,
    Double,
    Bool,
    /// A string holding JSON (an object unless the meaning says otherwise).
    JsonString,
    /// An array of strings.
    StringArray,
}

/// One row of the conventions table.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeSpec {
    pub key: &'static str,
    #[serde(rename = "type")]
    pub ty: AttrType,
    /// Span roles (`run`, `planner`, `worker`, `tool`, `llm`, `verifier`) or span event names
    /// (`event:traj.transition`) that carry it.
    pub on: &'static [&'static str],
    /// Whether an instrumented agent must set it where listed.
    pub required: bool,
    pub meaning: &'static str,
}

const STEPS: &[&str] = &["planner", "worker", "verifier"];
const ALL: &[&str] = &["run", "planner", "worker", "tool", "llm", "verifier"];

macro_rules! spec {
    ($key:expr, $ty:ident, $on:expr, $req:expr, $meaning:expr) => {
        AttributeSpec {
            key: $key,
            ty: AttrType::$ty,
            on: $on,
            required: $req,
            meaning: $meaning,
        }
    };
}

/// Every attribute of schema v2.
pub const ATTRIBUTES: &[AttributeSpec] = &[
    spec!(SCHEMA_VERSION, String, &["run"], true, "Schema version, \"2\". Its presence on the root marks a traj-native trace."),
    spec!(ROLE, String, ALL, true, "run | planner | worker | tool | llm | verifier."),
    spec!(STEP, Int, STEPS, true, "Orchestrator cycle number (0-based); tool and llm spans inherit their parent's."),
    spec!(GOAL, String, &["run"], true, "The goal text given to the agent (after source-side redaction)."),
    spec!(GOAL_FAMILY, String, &["run"], true, "Family of related goals; datasets are split by it."),
    spec!(TASK_ID, String, &["run"], false, "Identifier of the task in its suite."),
    spec!(SEED, Int, &["run"], true, "Seed actually used by the run (also when chosen at random)."),
    spec!(SEED_KIND, String, &["run"], false, "fixed (given by the caller) | random (drawn, then recorded in traj.seed)."),
    spec!(CONFIG_HASH, String, &["run"], true, "sha256 of the canonical JSON of the model stack + runtime config."),
    spec!(PROMPT_HASH, String, &["run", "llm"], true, "On run: hash of all prompt templates; on llm: hash of the rendered prompt."),
    spec!(TOOLSET_HASH, String, &["run"], true, "sha256 of the canonical JSON of the tool schemas."),
    spec!(MODEL_STACK, JsonString, &["run"], true, "{role: {model, params}} for planner, worker, verifier."),
    spec!(RUNTIME_CONFIG, JsonString, &["run"], true, "{max_steps, prompt_sources, tool_mode, ...}."),
    spec!(REDACTION_POLICY, String, &["run"], true, "Name of the source-side redaction policy."),
    spec!(REDACTION_VERSION, String, &["run"], true, "Version of that policy."),
    spec!(OUTCOME, String, &["run"], true, "success | failure | aborted, set when the run ends."),
    spec!(FAILURE_CLASS, String, &["run"], false, "Why a run failed (e.g. max_steps, false_stop, tool_error)."),
    spec!(SPANS_DROPPED, Int, &["run"], true, "Spans the exporter dropped in this process before the run ended (0 = complete)."),
    spec!(PLANNER_INPUT, JsonString, &["planner"], true, "PlannerInput payload: goal, observation, history, tool_mask."),
    spec!(PLANNER_OUTPUT, JsonString, &["planner"], true, "PlannerOutput payload: plan, rationale, confidence."),
    spec!(WORKER_INPUT, JsonString, &["worker"], true, "WorkerInput payload: current step, env state, allowed tools, prior failures."),
    spec!(WORKER_ACTION, JsonString, &["worker"], true, "WorkerAction payload: the chosen action, tool, arguments, reasoning."),
    spec!(WORKER_OUTPUT, JsonString, &["worker"], true, "WorkerOutput payload: status, summary, error class, retries."),
    spec!(VERIFIER_INPUT, JsonString, &["verifier"], true, "VerifierInput payload: plan progress, action traces, evidence."),
    spec!(VERIFIER_OUTPUT, JsonString, &["verifier"], true, "VerifierOutput payload: verdict, feedback, risk flags."),
    spec!(VERDICT, String, &["verifier"], true, "continue | replan | end."),
    spec!(TOOL_STATUS, String, &["tool"], true, "ok | error."),
    spec!(ERROR_CLASS, String, &["tool", "worker", "run"], false, "Error taxonomy class (e.g. invalid_arguments, not_found, timeout)."),
    spec!(RETRY_ATTEMPT, Int, &["tool"], true, "1 for the first attempt of a call, 2 for its first retry, ..."),
    spec!(PROMPT_RENDERED, String, &["llm"], true, "The rendered prompt sent to the model."),
    spec!(TRANSITION_FROM, String, &["event:traj.transition"], true, "Orchestrator state before: planning | working | verifying."),
    spec!(TRANSITION_TO, String, &["event:traj.transition"], true, "State after: planning | working | verifying | done."),
    spec!(TRANSITION_REASON, String, &["event:traj.transition"], true, "Why (the verdict and its feedback, a budget, an error)."),
    spec!(OBSERVATION_SOURCE, String, &["event:traj.observation"], true, "What was observed (tool name, environment probe)."),
    spec!(OBSERVATION_DATA, JsonString, &["event:traj.observation"], true, "The observation as JSON."),
    spec!(EXCEPTION_TYPE, String, &["event:exception"], true, "Error class of the exception."),
    spec!(EXCEPTION_MESSAGE, String, &["event:exception"], true, "Human-readable message."),
    spec!(GEN_AI_OPERATION_NAME, String, ALL, true, "invoke_workflow (run), plan (planner), invoke_agent (worker, verifier), execute_tool (tool), chat (llm)."),
    spec!(GEN_AI_AGENT_NAME, String, &["run", "planner", "worker", "verifier"], true, "planner | worker | verifier; the agent's name on run."),
    spec!(GEN_AI_CONVERSATION_ID, String, ALL, false, "The run id, so GenAI views group the run."),
    spec!(GEN_AI_TOOL_NAME, String, &["tool"], true, "Tool name."),
    spec!(GEN_AI_TOOL_CALL_ID, String, &["tool"], true, "Tool call id (stable across retries of the same call)."),
    spec!(GEN_AI_TOOL_CALL_ARGUMENTS, JsonString, &["tool"], true, "Arguments as JSON."),
    spec!(GEN_AI_TOOL_CALL_RESULT, JsonString, &["tool"], false, "Result as JSON (absent on error)."),
    spec!(GEN_AI_INPUT_MESSAGES, JsonString, &["planner", "worker", "verifier", "llm"], false, "GenAI input messages (JSON array of {role, parts})."),
    spec!(GEN_AI_OUTPUT_MESSAGES, JsonString, &["planner", "worker", "verifier", "llm"], false, "GenAI output messages (JSON array of {role, parts, finish_reason})."),
    spec!(GEN_AI_SYSTEM_INSTRUCTIONS, JsonString, &["llm"], false, "GenAI system instructions (JSON array of parts) the model was given."),
    spec!(GEN_AI_TOOL_DEFINITIONS, JsonString, &["llm"], false, "Tools offered to the model (JSON array of {type, name, description, parameters})."),
    spec!(GEN_AI_RESPONSE_ID, String, &["llm"], false, "The provider's response id."),
    spec!(GEN_AI_RESPONSE_FINISH_REASONS, StringArray, &["llm"], false, "Why the model stopped, per choice."),
    spec!(GEN_AI_REQUEST_MODEL, String, &["llm"], true, "Model name; only on LLM-call spans."),
    spec!(GEN_AI_USAGE_INPUT_TOKENS, Int, &["llm"], false, "Prompt tokens; only on LLM-call spans."),
    spec!(GEN_AI_USAGE_OUTPUT_TOKENS, Int, &["llm"], false, "Completion tokens; only on LLM-call spans."),
    spec!(OPENINFERENCE_SPAN_KIND, String, ALL, true, "CHAIN (run), AGENT (planner, worker), TOOL, LLM, EVALUATOR (verifier)."),
    spec!(ERROR_TYPE, String, ALL, false, "Set with span status ERROR: the error class."),
];

/// Renders the conventions as the Markdown table published in `proto/attributes.md`.
pub fn attributes_markdown() -> String {
    let mut s = String::from(
        "# Schema v2 attribute conventions\n\n\
         Generated from `crates/schema/src/keys.rs` (`traj schema` prints it); a test fails if this file drifts.\n\n\
         | key | type | on | required | meaning |\n|---|---|---|---|---|\n",
    );
    for a in ATTRIBUTES {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            a.key,
            serde_json::to_value(a.ty)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            a.on.join(", "),
            if a.required { "yes" } else { "no" },
            a.meaning
        ));
    }
    s
}

/// Renders the conventions as the JSON published in `proto/attributes.json`.
pub fn attributes_json() -> String {
    let doc =
        serde_json::json!({ "schema_version": crate::SCHEMA_VERSION, "attributes": ATTRIBUTES });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_unique() {
        let mut seen = HashSet::new();
        for a in ATTRIBUTES {
            assert!(seen.insert(a.key), "duplicate key {}", a.key);
        }
    }

    #[test]
    fn own_keys_are_namespaced() {
        for a in ATTRIBUTES {
            assert!(
                a.key.starts_with("traj.")
                    || a.key.starts_with("gen_ai.")
                    || a.key.starts_with("openinference.")
                    || a.key.starts_with("exception.")
                    || a.key == ERROR_TYPE,
                "{} is outside the known namespaces",
                a.key
            );
        }
    }
}
