//! The root span of a run ([`RunSpan`]): what the run is (goal, seed, configuration, hashes)
//! and, when it ends, how it went (outcome, failure class, spans dropped so far).

use crate::export_stats;
use crate::redaction;
use crate::step_spans::{
    payload_json, record_error, PlannerSpan, SpanHandle, StepKind, VerifierSpan, WorkerSpan, TARGET,
};
use opentelemetry::trace::TraceContextExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use traj_schema::event::Outcome;
use traj_schema::hashing::hash_json;
use traj_schema::session::{ModelSpec, RuntimeConfig};

/// Everything the root span records about a run before it starts.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// Name of the agent (`gen_ai.agent.name` on the root, span name `invoke_workflow <agent>`).
    pub agent_name: String,
    pub goal: String,
    pub goal_family: String,
    pub task_id: Option<String>,
    /// The seed actually used (record the drawn value when it was chosen at random).
    pub seed: u64,
    /// Whether `seed` was given or drawn at random (`traj.seed_kind`; unrecorded when `None`).
    pub seed_kind: Option<traj_schema::session::SeedKind>,
    /// Role (`planner`, `worker`, `verifier`) → model and parameters.
    pub model_stack: BTreeMap<String, ModelSpec>,
    pub runtime_config: RuntimeConfig,
    /// Prompt template name → template text.
    pub prompts: BTreeMap<String, String>,
    /// Tool schemas (one JSON object per tool, e.g. `{name, description, parameters}`).
    pub tools: Vec<Value>,
}

/// The three content hashes of a run (all `sha256:` + 32 hex digits, over canonical JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHashes {
    /// Over `{"model_stack": .., "runtime_config": ..}`.
    pub config_hash: String,
    /// Over the object of prompt templates (name → text).
    pub prompt_hash: String,
    /// Over the array of tool schemas, in the order given.
    pub toolset_hash: String,
}

impl RunInfo {
    /// Computes the hashes recorded on the root span.
    pub fn hashes(&self) -> RunHashes {
        let config = json!({
            "model_stack": self.model_stack,
            "runtime_config": self.runtime_config,
        });
        RunHashes {
            config_hash: hash_json(&config),
            prompt_hash: hash_json(&json!(self.prompts)),
            toolset_hash: hash_json(&Value::Array(self.tools.clone())),
        }
    }
}

/// The root span of one run. One run = one trace; the run id is the trace id.
///
/// Dropping it without [`RunSpan::finish`] (a panic, a cancelled task) still ends the span,
/// with outcome `aborted` and failure class `cancelled`.
#[derive(Debug)]
pub struct RunSpan {
    span: Span,
    run_id: Arc<str>,
    finished: bool,
}

impl RunSpan {
    /// Starts a new trace for the run and records every root attribute.
    pub fn start(info: RunInfo) -> RunSpan {
        let hashes = info.hashes();
        let goal = redaction::redact_str(&info.goal).into_owned();
        let otel_name = format!("invoke_workflow {}", info.agent_name);
        let span = tracing::info_span!(
            target: TARGET,
            parent: None,
            "invoke_workflow",
            otel.name = otel_name.as_str(),
            traj.schema_version = traj_schema::SCHEMA_VERSION,
            traj.role = "run",
            gen_ai.operation.name = "invoke_workflow",
            openinference.span.kind = "CHAIN",
            gen_ai.agent.name = info.agent_name.as_str(),
            gen_ai.conversation.id = Empty,
            traj.goal = goal.as_str(),
            traj.goal_family = info.goal_family.as_str(),
            traj.task_id = Empty,
            traj.seed = Empty,
            traj.seed_kind = Empty,
            traj.config_hash = hashes.config_hash.as_str(),
            traj.prompt_hash = hashes.prompt_hash.as_str(),
            traj.toolset_hash = hashes.toolset_hash.as_str(),
            traj.model_stack = payload_json(&info.model_stack).as_str(),
            traj.runtime_config = payload_json(&info.runtime_config).as_str(),
            traj.redaction.policy = redaction::policy_name(),
            traj.redaction.version = redaction::policy_version(),
            traj.outcome = Empty,
            traj.failure_class = Empty,
            traj.spans_dropped = Empty,
            traj.error.class = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        );
        if let Some(task_id) = &info.task_id {
            span.record("traj.task_id", task_id.as_str());
        }
        record_int(&span, "traj.seed", info.seed);
        if let Some(kind) = info.seed_kind {
            span.record("traj.seed_kind", kind.as_str());
        }
        let trace_id = span.context().span().span_context().trace_id();
        let run_id: Arc<str> = format!("{trace_id}").into();
        span.record("gen_ai.conversation.id", &*run_id);
        RunSpan {
            span,
            run_id,
            finished: false,
        }
    }

    /// The run id: the trace id in lowercase hex (all zeros when no pipeline is set up).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts the planner span of cycle `step`.
    pub fn planner(&self, step: u32) -> PlannerSpan {
        PlannerSpan::new(self.step_span(StepKind::Planner, step), self.run_id.clone())
    }

    /// Starts the worker span of cycle `step`.
    pub fn worker(&self, step: u32) -> WorkerSpan {
        WorkerSpan::new(self.step_span(StepKind::Worker, step), self.run_id.clone())
    }

    /// Starts the verifier span of cycle `step`.
    pub fn verifier(&self, step: u32) -> VerifierSpan {
        VerifierSpan::new(
            self.step_span(StepKind::Verifier, step),
            self.run_id.clone(),
        )
    }

    fn step_span(&self, kind: StepKind, step: u32) -> Span {
        kind.make_span(&self.span, step, &self.run_id)
    }

    /// Records an error of the run itself (an `exception` event on the root, which becomes an
    /// `episode_error` event) and marks the root span `ERROR`.
    pub fn error(&self, error_class: &str, message: &str) {
        record_error(&self.span, error_class, message);
    }

    /// Ends the run: records outcome, failure class and the spans dropped so far in this
    /// process (`traj.spans_dropped`; counts drops and failed exports), then ends the span.
    pub fn finish(mut self, outcome: Outcome, failure_class: Option<&str>) {
        self.close(outcome, failure_class);
    }

    fn close(&mut self, outcome: Outcome, failure_class: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.span.record("traj.outcome", outcome.as_str());
        if let Some(fc) = failure_class {
            self.span.record("traj.failure_class", fc);
        }
        record_int(
            &self.span,
            "traj.spans_dropped",
            export_stats::active_stats().lost(),
        );
    }
}

impl SpanHandle for RunSpan {
    fn span(&self) -> &Span {
        &self.span
    }
}

impl Drop for RunSpan {
    fn drop(&mut self) {
        self.close(Outcome::Aborted, Some("cancelled"));
    }
}

/// Records an OTLP int attribute (tracing-opentelemetry turns `u64` into a string, so cast;
/// values above `i64::MAX` are kept as decimal strings rather than wrapped).
pub(crate) fn record_int(span: &Span, key: &str, v: u64) {
    match i64::try_from(v) {
        Ok(i) => span.record(key, i),
        Err(_) => span.record(key, v.to_string().as_str()),
    };
}
