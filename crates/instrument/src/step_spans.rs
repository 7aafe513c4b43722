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
use traj_schema::keys;
use traj_schema::llm::{ChatMessage, MessagePart, ToolDefinition, Usage};

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
        gen_ai.system_instructions = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.tool.definitions = Empty,
        gen_ai.response.id = Empty,
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
///
/// What the model was given and what it answered are recorded in the GenAI form
/// (`gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`,
/// `gen_ai.tool.definitions`: JSON strings of the [`traj_schema::llm`] types), after the same
/// source-side redaction as every payload, and only when a subscriber wants the span. Record
/// each once per call.
///
/// ```no_run
/// # use traj_instrument::{RunInfo, RunSpan};
/// use traj_schema::llm::{ChatMessage, MessagePart, Usage};
/// # let run = RunSpan::start(RunInfo::default());
/// let worker = run.worker(0);
/// let input = [ChatMessage::new("user", vec![MessagePart::text("Read a.txt")])];
/// let llm = worker.llm_call("gpt-x", "user: Read a.txt");
/// llm.system_instructions(&[MessagePart::text("You are the worker.")])
///     .input_messages(&input)
///     .output_messages(&[ChatMessage {
///         finish_reason: Some("stop".into()),
///         ..ChatMessage::new("assistant", vec![MessagePart::text("a.txt says hi")])
///     }])
///     .response("resp-1", Usage { input_tokens: 12, output_tokens: 4 });
/// drop(llm); // ends the span: before the worker's output is recorded
/// ```
#[derive(Debug)]
pub struct LlmSpan {
    span: Span,
}

/// A tool definition in the GenAI form: `{"type": "function", "name", "description",
/// "parameters"}`.
#[derive(Serialize)]
struct FunctionTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    definition: &'a ToolDefinition,
}

/// A request parameter as an OTel attribute value: booleans, integers, floats and strings as
/// such, an array of strings as a string array, anything else as its JSON. Strings are redacted.
fn request_value(v: &Value) -> opentelemetry::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) if !n.is_u64() => f.into(),
            _ => n.to_string().into(),
        },
        Value::String(s) => redaction::redact_str(s).into_owned().into(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let strings: Vec<opentelemetry::StringValue> = items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| redaction::redact_str(s).into_owned().into())
                .collect();
            opentelemetry::Value::Array(strings.into())
        }
        other => payload_json(other).into(),
    }
}

impl LlmSpan {
    /// Request parameters (`temperature`, `max_tokens`, `top_p`, ...), each recorded as
    /// `gen_ai.request.<name>`; a `ModelSpec`'s `params` map fits as is. `model` is skipped
    /// (it is the `llm_call` argument).
    pub fn request<'a, K: AsRef<str>>(
        &self,
        params: impl IntoIterator<Item = (K, &'a Value)>,
    ) -> &Self {
        if self.span.is_disabled() {
            return self;
        }
        for (name, value) in params {
            let name = name.as_ref();
            if name != "model" {
                self.span
                    .set_attribute(format!("gen_ai.request.{name}"), request_value(value));
            }
        }
        self
    }

    /// The system instructions given apart from the messages (`gen_ai.system_instructions`).
    pub fn system_instructions(&self, parts: &[MessagePart]) -> &Self {
        record_payload(&self.span, "gen_ai.system_instructions", &parts);
        self
    }

    /// The conversation sent to the model (`gen_ai.input.messages`): earlier turns included,
    /// e.g. the assistant's tool-call turn and the `tool` message with its response.
    pub fn input_messages(&self, messages: &[ChatMessage]) -> &Self {
        record_payload(&self.span, "gen_ai.input.messages", &messages);
        self
    }

    /// The tools offered to the model (`gen_ai.tool.definitions`, each with `"type":
    /// "function"`).
    pub fn tool_definitions(&self, tools: &[ToolDefinition]) -> &Self {
        if self.span.is_disabled() {
            return self;
        }
        let tools: Vec<FunctionTool<'_>> = tools
            .iter()
            .map(|definition| FunctionTool {
                kind: "function",
                definition,
            })
            .collect();
        record_payload(&self.span, "gen_ai.tool.definitions", &tools);
        self
    }

    /// The model's answer (`gen_ai.output.messages`, one message per choice). Their
    /// `finish_reason`s, when set, also become `gen_ai.response.finish_reasons`.
    pub fn output_messages(&self, messages: &[ChatMessage]) -> &Self {
        if self.span.is_disabled() {
            return self;
        }
        record_payload(&self.span, "gen_ai.output.messages", &messages);
        let reasons: Vec<opentelemetry::StringValue> = messages
            .iter()
            .filter_map(|m| m.finish_reason.clone())
            .map(Into::into)
            .collect();
        if !reasons.is_empty() {
            self.span.set_attribute(
                keys::GEN_AI_RESPONSE_FINISH_REASONS,
                opentelemetry::Value::Array(reasons.into()),
            );
        }
        self
    }

    /// A plain-text answer: one assistant message with finish reason `stop`.
    pub fn output_text(&self, text: &str) -> &Self {
        self.output_messages(&[ChatMessage {
            finish_reason: Some("stop".into()),
            ..ChatMessage::new("assistant", vec![MessagePart::text(text)])
        }])
    }

    /// The provider's response id (`gen_ai.response.id`) and the call's token usage.
    pub fn response(&self, id: &str, usage: Usage) -> &Self {
        self.span.record("gen_ai.response.id", id);
        self.usage(usage.input_tokens, usage.output_tokens)
    }

    /// Token usage of the call.
    pub fn usage(&self, input_tokens: u64, output_tokens: u64) -> &Self {
        record_int(&self.span, "gen_ai.usage.input_tokens", input_tokens);
        record_int(&self.span, "gen_ai.usage.output_tokens", output_tokens);
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
