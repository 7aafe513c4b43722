//! Spans below the root: planner / worker / verifier step spans, and the tool-call and
//! LLM-call spans they make. Every required schema v2 key of a role is set here, so agent code
//! never types an attribute key.

use crate::redaction;
use crate::run_span::record_int;
use opentelemetry::trace::TraceContextExt;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use traj_schema::event::{
    PlannerInput, PlannerOutput, ToolStatus, VerifierInput, VerifierOutput, WorkerAction,
    WorkerInput, WorkerOutput,
};
use traj_schema::hashing::hash_str;

/// `tracing` target of every span and span event the helpers create.
pub const TARGET: &str = "traj";

/// Serializes a payload to the JSON string an attribute carries, after source-side redaction.
pub(crate) fn payload_json<T: Serialize>(payload: &T) -> String {
    match serde_json::to_value(payload) {
        Ok(mut v) => {
            redaction::redact_json(&mut v);
            v.to_string()
        }
        Err(e) => {
            tracing::warn!(target: crate::export_stats::LOG_TARGET, error = %e, "payload not serializable");
            serde_json::json!({ "serialization_error": e.to_string() }).to_string()
        }
    }
}

/// Records `payload` (serialized, redacted) in `field`, unless no subscriber wants the span: then
/// the serialization and redaction, most of a role span's cost on the caller's thread, are skipped.
pub(crate) fn record_payload<T: Serialize>(span: &Span, field: &str, payload: &T) {
    if span.is_disabled() {
        return;
    }
    span.record(field, payload_json(payload).as_str());
}

/// Marks `span` as failed: `error.type` / `traj.error.class`, status `ERROR`, and an
/// `exception` span event with `exception.type` / `exception.message`.
pub(crate) fn record_error(span: &Span, error_class: &str, message: &str) {
    let message = redaction::redact_str(message);
    span.record("traj.error.class", error_class);
    span.record("error.type", error_class);
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", &*message);
    tracing::event!(
        target: TARGET,
        parent: span,
        tracing::Level::INFO,
        { "exception.type" = error_class, "exception.message" = &*message },
        "exception"
    );
}

/// Anything that wraps a `tracing` span made by these helpers.
pub trait SpanHandle {
    /// The underlying `tracing` span (enter it to nest your own spans under it).
    fn span(&self) -> &Span;

    /// The OpenTelemetry span id in hex (16 digits).
    fn span_id(&self) -> String {
        format!("{}", self.span().context().span().span_context().span_id())
    }

    /// A handle to link to later, after this span has ended (links need only the context).
    fn link_target(&self) -> LinkTarget {
        LinkTarget(self.span().context().span().span_context().clone())
    }
}

/// What a span link points at: the span context of an (possibly ended) span.
#[derive(Debug, Clone)]
pub struct LinkTarget(opentelemetry::trace::SpanContext);

/// Orchestrator states used by `traj.transition` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrchestratorState {
    Planning,
    Working,
    Verifying,
    Done,
}

impl OrchestratorState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrchestratorState::Planning => "planning",
            OrchestratorState::Working => "working",
            OrchestratorState::Verifying => "verifying",
            OrchestratorState::Done => "done",
        }
    }
}

fn transition(span: &Span, from: OrchestratorState, to: OrchestratorState, reason: &str) {
    let reason = redaction::redact_str(reason);
    tracing::event!(
        target: TARGET,
        parent: span,
        tracing::Level::INFO,
        {
            traj.transition.from = from.as_str(),
            traj.transition.to = to.as_str(),
            traj.transition.reason = &*reason,
        },
        "traj.transition"
    );
}

fn observation(span: &Span, source: &str, data: &Value) {
    let data = payload_json(data);
    tracing::event!(
        target: TARGET,
        parent: span,
        tracing::Level::INFO,
        { traj.observation.source = source, traj.observation.data = data.as_str() },
        "traj.observation"
    );
}

fn link(span: &Span, to: &LinkTarget) {
    span.add_link(to.0.clone());
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StepKind {
    Planner,
    Worker,
    Verifier,
}

impl StepKind {
    pub(crate) fn make_span(self, parent: &Span, step: u32, run_id: &str) -> Span {
        let step = i64::from(step);
        match self {
            StepKind::Planner => tracing::info_span!(
                target: TARGET,
                parent: parent,
                "plan planner",
                traj.role = "planner",
                traj.step = step,
                gen_ai.operation.name = "plan",
                gen_ai.agent.name = "planner",
                openinference.span.kind = "AGENT",
                gen_ai.conversation.id = run_id,
                traj.planner.input = Empty,
                traj.planner.output = Empty,
                traj.error.class = Empty,
                "error.type" = Empty,
                otel.status_code = Empty,
                otel.status_description = Empty,
            ),
            StepKind::Worker => tracing::info_span!(
                target: TARGET,
                parent: parent,
                "invoke_agent worker",
                traj.role = "worker",
                traj.step = step,
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = "worker",
                openinference.span.kind = "AGENT",
                gen_ai.conversation.id = run_id,
                traj.worker.input = Empty,
                traj.worker.action = Empty,
                traj.worker.output = Empty,
                traj.error.class = Empty,
                "error.type" = Empty,
                otel.status_code = Empty,
                otel.status_description = Empty,
            ),
            StepKind::Verifier => tracing::info_span!(
                target: TARGET,
                parent: parent,
                "invoke_agent verifier",
                traj.role = "verifier",
                traj.step = step,
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = "verifier",
                openinference.span.kind = "EVALUATOR",
                gen_ai.conversation.id = run_id,
                traj.verifier.input = Empty,
                traj.verifier.output = Empty,
                traj.verdict = Empty,
                traj.error.class = Empty,
                "error.type" = Empty,
                otel.status_code = Empty,
                otel.status_description = Empty,
            ),
        }
    }
}

fn llm_span(parent: &Span, run_id: &str, model: &str, rendered_prompt: &str) -> LlmSpan {
    let prompt = redaction::redact_str(rendered_prompt);
    let otel_name = format!("chat {model}");
    let span = tracing::info_span!(
        target: TARGET,
        parent: parent,
        "chat",
        otel.name = otel_name.as_str(),
        traj.role = "llm",
        gen_ai.operation.name = "chat",
        openinference.span.kind = "LLM",
        gen_ai.conversation.id = run_id,
        gen_ai.request.model = model,
        traj.prompt.rendered = &*prompt,
        traj.prompt_hash = hash_str(&prompt).as_str(),
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.output.messages = Empty,
        traj.error.class = Empty,
        "error.type" = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    LlmSpan { span }
}

macro_rules! step_common {
    ($ty:ident) => {
        impl $ty {
            pub(crate) fn new(span: Span, run_id: Arc<str>) -> Self {
                $ty { span, run_id }
            }

            /// Starts an LLM-call span (`chat <model>`) under this step; ends when dropped.
            pub fn llm_call(&self, model: &str, rendered_prompt: &str) -> LlmSpan {
                llm_span(&self.span, &self.run_id, model, rendered_prompt)
            }

            /// Records a `traj.transition` span event (an `orchestrator_transition` event whose
            /// parent is this span's output).
            pub fn transition(
                &self,
                from: OrchestratorState,
                to: OrchestratorState,
                reason: &str,
            ) -> &Self {
                transition(&self.span, from, to, reason);
                self
            }

            /// Marks this step as failed (status `ERROR`, `error.type`, `exception` event).
            pub fn error(&self, error_class: &str, message: &str) -> &Self {
                record_error(&self.span, error_class, message);
                self
            }

            /// Ends the span now (dropping it does the same).
            pub fn end(self) {}
        }

        impl SpanHandle for $ty {
            fn span(&self) -> &Span {
                &self.span
            }
        }
    };
}

/// A planner step (`plan planner`).
#[derive(Debug)]
pub struct PlannerSpan {
    span: Span,
    run_id: Arc<str>,
}
step_common!(PlannerSpan);

impl PlannerSpan {
    /// Links this planner to the verifier span that asked for the replan.
    pub fn link(self, verifier: &LinkTarget) -> Self {
        link(&self.span, verifier);
        self
    }

    pub fn input(&self, input: &PlannerInput) -> &Self {
        record_payload(&self.span, "traj.planner.input", input);
        self
    }

    pub fn output(&self, output: &PlannerOutput) -> &Self {
        record_payload(&self.span, "traj.planner.output", output);
        self
    }
}

/// A worker step (`invoke_agent worker`).
#[derive(Debug)]
pub struct WorkerSpan {
    span: Span,
    run_id: Arc<str>,
}
step_common!(WorkerSpan);

impl WorkerSpan {
    /// Links this worker to the planner span whose plan it executes (or to the previous
    /// cycle's verifier, when it continues without a new plan).
    pub fn link(self, to: &LinkTarget) -> Self {
        link(&self.span, to);
        self
    }

    pub fn input(&self, input: &WorkerInput) -> &Self {
        record_payload(&self.span, "traj.worker.input", input);
        self
    }

    pub fn action(&self, action: &WorkerAction) -> &Self {
        record_payload(&self.span, "traj.worker.action", action);
        self
    }

    /// Records the output; an `Error` status with an error class also marks the span failed.
    pub fn output(&self, output: &WorkerOutput) -> &Self {
        record_payload(&self.span, "traj.worker.output", output);
        if output.status == ToolStatus::Error {
            let class = output.error_class.as_deref().unwrap_or("worker_error");
            record_error(&self.span, class, &output.summary);
        }
        self
    }

    /// Records what the environment showed (a `traj.observation` event on this span).
    pub fn observation(&self, source: &str, data: &Value) -> &Self {
        observation(&self.span, source, data);
        self
    }

    /// Starts a tool-call span (`execute_tool <tool>`). `attempt` is 1 for the first try,
    /// 2 for the first retry (same `call_id`), ...
    pub fn tool_call(
        &self,
        tool: &str,
        call_id: &str,
        arguments: &Value,
        attempt: u32,
    ) -> ToolSpan {
        let otel_name = format!("execute_tool {tool}");
        let span = tracing::info_span!(
            target: TARGET,
            parent: &self.span,
            "execute_tool",
            otel.name = otel_name.as_str(),
            traj.role = "tool",
            gen_ai.operation.name = "execute_tool",
            openinference.span.kind = "TOOL",
            gen_ai.conversation.id = &*self.run_id,
            gen_ai.tool.name = tool,
            gen_ai.tool.call.id = call_id,
            gen_ai.tool.call.arguments = payload_json(arguments).as_str(),
            traj.retry.attempt = i64::from(attempt),
            traj.tool.status = Empty,
            gen_ai.tool.call.result = Empty,
            traj.error.class = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        );
        ToolSpan { span, done: false }
    }
}

/// A verifier step (`invoke_agent verifier`).
#[derive(Debug)]
pub struct VerifierSpan {
    span: Span,
    run_id: Arc<str>,
}
step_common!(VerifierSpan);

impl VerifierSpan {
    /// Links this verifier to the worker span whose output it judges.
    pub fn link(self, worker: &LinkTarget) -> Self {
        link(&self.span, worker);
        self
    }

    pub fn input(&self, input: &VerifierInput) -> &Self {
        record_payload(&self.span, "traj.verifier.input", input);
        self
    }

    /// Records the verifier output and `traj.verdict`.
    pub fn verdict(&self, output: &VerifierOutput) -> &Self {
        record_payload(&self.span, "traj.verifier.output", output);
        self.span.record("traj.verdict", output.verdict.as_str());
        self
    }
}

/// One tool execution (`execute_tool <tool>`). End it with [`ToolSpan::ok`] or
/// [`ToolSpan::err`]; dropped without either, it is recorded as an `abandoned` error.
#[derive(Debug)]
pub struct ToolSpan {
    span: Span,
    done: bool,
}

impl ToolSpan {
    /// Records what the environment showed (a `traj.observation` event on this span).
    pub fn observation(&self, source: &str, data: &Value) -> &Self {
        observation(&self.span, source, data);
        self
    }

    /// The tool succeeded with `result`.
    pub fn ok(mut self, result: &Value) {
        self.done = true;
        self.span.record("traj.tool.status", "ok");
        record_payload(&self.span, "gen_ai.tool.call.result", result);
    }

    /// The tool failed: status `ERROR`, `error.type` = `error_class`, `exception` event.
    pub fn err(mut self, error_class: &str, message: &str) {
        self.done = true;
        self.span.record("traj.tool.status", "error");
        record_error(&self.span, error_class, message);
    }
}

impl SpanHandle for ToolSpan {
    fn span(&self) -> &Span {
        &self.span
    }
}

impl Drop for ToolSpan {
    fn drop(&mut self) {
        if !self.done {
            self.span.record("traj.tool.status", "error");
            record_error(&self.span, "abandoned", "tool span ended without a result");
        }
    }
}

/// One model call (`chat <model>`); ends when dropped.
#[derive(Debug)]
pub struct LlmSpan {
    span: Span,
}

impl LlmSpan {
    /// Token usage of the call.
    pub fn usage(&self, input_tokens: u64, output_tokens: u64) -> &Self {
        record_int(&self.span, "gen_ai.usage.input_tokens", input_tokens);
        record_int(&self.span, "gen_ai.usage.output_tokens", output_tokens);
        self
    }

    /// The model's answer, recorded as `gen_ai.output.messages`.
    pub fn output_text(&self, text: &str) -> &Self {
        let text = redaction::redact_str(text);
        let messages = serde_json::json!([{
            "role": "assistant",
            "parts": [{ "type": "text", "content": &*text }],
            "finish_reason": "stop",
        }]);
        self.span
            .record("gen_ai.output.messages", messages.to_string().as_str());
        self
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

impl SpanHandle for LlmSpan {
    fn span(&self) -> &Span {
        &self.span
    }
}
