//! Builds the typed payload of each event from span attributes: the `traj.*` JSON payloads when
//! present and well-formed, otherwise a default payload assembled from what the span does carry
//! (GenAI messages, OpenInference `input.value` / `output.value`, tool call attributes, status).

use crate::attributes::{attr_json, attr_json_value, attr_str, attr_u32};
use crate::rules::MappingRules;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use serde::de::DeserializeOwned;
use serde_json::Value;
use traj_schema::event::{
    EnvObservation, EpisodeError, LlmCall, OrchestratorTransition, PlanStep, PlannerInput,
    PlannerOutput, VerifierInput, VerifierOutput, WorkerAction, WorkerInput, WorkerOutput,
    WorkerToolCall, WorkerToolResult,
};
use traj_schema::{keys, LlmCallRecord, ToolStatus, Verdict};

const OI_INPUT: &str = "input.value";
const OI_OUTPUT: &str = "output.value";

/// Context for building the payloads of one span.
pub(crate) struct Ctx<'s, 'w> {
    pub span: &'s Span,
    pub hex: &'s str,
    /// The trace follows schema v2: a missing `traj.*` payload is worth a warning.
    pub native: bool,
    pub warnings: &'w mut Warnings,
    /// The LLM calls the span's subtree made, in start order (content fallbacks when the span
    /// itself carries no payload).
    pub llm: &'s [(usize, LlmCallRecord)],
    pub rules: &'s MappingRules,
}

impl Ctx<'_, '_> {
    fn attrs(&self) -> &[KeyValue] {
        &self.span.attributes
    }

    /// The `traj.*` payload at `key`, or `None` (with a warning when it is malformed, or when
    /// missing from a native span).
    fn typed<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        match attr_json::<T>(&self.span.attributes, key) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                if self.native {
                    self.warnings
                        .push(format!("span {}: {key} missing; default payload", self.hex));
                }
                None
            }
            Err(e) => {
                self.warnings.push(format!(
                    "span {}: {key} malformed ({e}); default payload",
                    self.hex
                ));
                None
            }
        }
    }

    fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32)
    }

    fn error_class(&self) -> Option<String> {
        attr_str(self.attrs(), keys::ERROR_CLASS)
            .or_else(|| attr_str(self.attrs(), keys::ERROR_TYPE))
            .or_else(|| exception(self.span).map(|(t, _)| t))
            .map(str::to_owned)
    }

    /// The span's own input text, else the last user turn of its first LLM call.
    fn input_text(&self) -> String {
        message_text(self.attrs(), keys::GEN_AI_INPUT_MESSAGES, true)
            .or_else(|| attr_str(self.attrs(), OI_INPUT).map(str::to_owned))
            .filter(|t| !t.is_empty())
            .or_else(|| {
                let (_, first) = self.llm.first()?;
                let user = first
                    .input_messages
                    .iter()
                    .rev()
                    .find(|m| m.role == "user")?;
                Some(user.text())
            })
            .unwrap_or_default()
    }

    /// The span's own output text, else the text of its last LLM call's answer.
    fn output_text(&self) -> String {
        message_text(self.attrs(), keys::GEN_AI_OUTPUT_MESSAGES, false)
            .or_else(|| attr_str(self.attrs(), OI_OUTPUT).map(str::to_owned))
            .filter(|t| !t.is_empty())
            .or_else(|| {
                let (_, last) = self.llm.last()?;
                let texts: Vec<String> = last
                    .output_messages
                    .iter()
                    .map(|m| m.text())
                    .filter(|t| !t.is_empty())
                    .collect();
                (!texts.is_empty()).then(|| texts.join("\n"))
            })
            .unwrap_or_default()
    }

    /// A `gen_ai.evaluation.result` span event: its label (parsed as a verdict) and explanation.
    fn evaluation_result(&self) -> Option<(Option<Verdict>, String)> {
        let ev = self
            .span
            .events
            .iter()
            .rev()
            .find(|e| e.name == keys::EVENT_EVALUATION_RESULT)?;
        let label = attr_str(&ev.attributes, "gen_ai.evaluation.score.label")
            .and_then(|l| self.rules.verdict_from_text(l));
        let explanation =
            attr_str(&ev.attributes, "gen_ai.evaluation.explanation").unwrap_or_default();
        Some((label, explanation.to_owned()))
    }
}

/// `exception.type` / `exception.message` of the span's last `exception` event.
pub(crate) fn exception(span: &Span) -> Option<(&str, &str)> {
    span.events
        .iter()
        .rev()
        .find(|e| e.name == keys::EVENT_EXCEPTION)
        .map(|e| {
            (
                attr_str(&e.attributes, keys::EXCEPTION_TYPE).unwrap_or("exception"),
                attr_str(&e.attributes, keys::EXCEPTION_MESSAGE).unwrap_or(""),
            )
        })
}

/// Text of GenAI messages (`[{role, parts: [{type, content}]}]` or `[{role, content}]`).
/// For inputs, the last `user` message is preferred; otherwise all text is joined.
pub(crate) fn message_text(
    attrs: &[KeyValue],
    key: &str,
    prefer_last_user: bool,
) -> Option<String> {
    let v = attr_json_value(attrs, key)?;
    let msgs = match &v {
        Value::Array(a) => a.as_slice(),
        Value::String(s) => return Some(s.clone()),
        _ => return None,
    };
    let text_of = |m: &Value| -> String {
        let mut out = String::new();
        if let Some(parts) = m.get("parts").and_then(Value::as_array) {
            for p in parts {
                if let Some(t) = p.get("content").and_then(Value::as_str) {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(t);
                }
            }
        } else if let Some(t) = m.get("content").and_then(Value::as_str) {
            out.push_str(t);
        }
        out
    };
    if prefer_last_user {
        if let Some(m) = msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        {
            return Some(text_of(m));
        }
    }
    let all: Vec<String> = msgs.iter().map(text_of).filter(|t| !t.is_empty()).collect();
    Some(all.join("\n"))
}

pub(crate) fn planner_input(c: &mut Ctx, goal: &str) -> PlannerInput {
    c.typed(keys::PLANNER_INPUT).unwrap_or_else(|| {
        let text = c.input_text();
        PlannerInput {
            goal: if text.is_empty() {
                goal.to_owned()
            } else {
                text
            },
            ..Default::default()
        }
    })
}

pub(crate) fn planner_output(c: &mut Ctx, llm_calls: Vec<LlmCall>) -> PlannerOutput {
    let mut p: PlannerOutput = c.typed(keys::PLANNER_OUTPUT).unwrap_or_else(|| {
        let text = c.output_text();
        PlannerOutput {
            plan: plan_from_text(&text),
            rationale: String::new(),
            confidence: None,
            llm_calls: vec![],
        }
    });
    if !llm_calls.is_empty() {
        p.llm_calls = llm_calls;
    }
    p
}

pub(crate) fn worker_input(c: &mut Ctx) -> WorkerInput {
    c.typed(keys::WORKER_INPUT).unwrap_or_else(|| WorkerInput {
        current_step: c.input_text(),
        ..Default::default()
    })
}

/// `first_tool`: name and arguments of the worker's first tool call, for the default action.
pub(crate) fn worker_action(c: &mut Ctx, first_tool: Option<(String, Value)>) -> WorkerAction {
    c.typed(keys::WORKER_ACTION)
        .unwrap_or_else(|| match first_tool {
            Some((tool, arguments)) => WorkerAction {
                action: "tool_call".into(),
                tool: Some(tool),
                arguments,
                reasoning: String::new(),
            },
            None => WorkerAction {
                action: "respond".into(),
                ..Default::default()
            },
        })
}

pub(crate) fn worker_output(c: &mut Ctx, retries: u32, llm_calls: Vec<LlmCall>) -> WorkerOutput {
    let mut w: WorkerOutput = c.typed(keys::WORKER_OUTPUT).unwrap_or_else(|| {
        let err = c.is_error();
        WorkerOutput {
            status: if err {
                ToolStatus::Error
            } else {
                ToolStatus::Ok
            },
            summary: c.output_text(),
            error_class: if err { c.error_class() } else { None },
            retries,
            llm_calls: vec![],
        }
    });
    if !llm_calls.is_empty() {
        w.llm_calls = llm_calls;
    }
    w
}

pub(crate) fn verifier_input(c: &mut Ctx) -> VerifierInput {
    c.typed(keys::VERIFIER_INPUT).unwrap_or_else(|| {
        let text = c.input_text();
        VerifierInput {
            evidence: if text.is_empty() {
                Value::Null
            } else {
                Value::String(text)
            },
            ..Default::default()
        }
    })
}

pub(crate) fn verifier_output(c: &mut Ctx, llm_calls: Vec<LlmCall>) -> VerifierOutput {
    let verdict_attr = attr_str(c.attrs(), keys::VERDICT).and_then(Verdict::parse);
    let mut v: VerifierOutput = c.typed(keys::VERIFIER_OUTPUT).unwrap_or_else(|| {
        let evaluation = c.evaluation_result();
        let mut feedback = c.output_text();
        if feedback.is_empty() {
            feedback = evaluation
                .as_ref()
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
        }
        let verdict = verdict_attr
            .or_else(|| evaluation.and_then(|(l, _)| l))
            .or_else(|| c.rules.verdict_from_text(&feedback))
            .unwrap_or_else(|| {
                if !c.native {
                    c.warnings.push(format!(
                        "span {}: no verdict found in the verifier's output; recorded as continue",
                        c.hex
                    ));
                }
                Verdict::Continue
            });
        VerifierOutput {
            verdict,
            feedback,
            risk_flags: vec![],
            confidence: None,
            llm_calls: vec![],
        }
    });
    if let Some(a) = verdict_attr {
        if a != v.verdict {
            c.warnings.push(format!(
                "span {}: traj.verdict {} contradicts the output payload's {}; kept the payload's",
                c.hex,
                a.as_str(),
                v.verdict.as_str()
            ));
        }
    }
    if !llm_calls.is_empty() {
        v.llm_calls = llm_calls;
    }
    v
}

/// The tool's name, call id, arguments and attempt (shared by the call and result events).
pub(crate) struct ToolFacts {
    pub tool: String,
    pub call_id: String,
    pub arguments: Value,
    pub attempt: u32,
}

pub(crate) fn tool_facts(span: &Span) -> ToolFacts {
    let a = &span.attributes;
    let tool = attr_str(a, keys::GEN_AI_TOOL_NAME)
        .or_else(|| attr_str(a, "tool.name"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            span.name
                .strip_prefix("execute_tool ")
                .unwrap_or(&span.name)
                .to_owned()
        });
    ToolFacts {
        tool,
        call_id: attr_str(a, keys::GEN_AI_TOOL_CALL_ID)
            .unwrap_or_default()
            .to_owned(),
        arguments: attr_json_value(a, keys::GEN_AI_TOOL_CALL_ARGUMENTS)
            .or_else(|| attr_json_value(a, OI_INPUT))
            .unwrap_or(Value::Null),
        attempt: attr_u32(a, keys::RETRY_ATTEMPT).unwrap_or(1).max(1),
    }
}

pub(crate) fn tool_call(f: &ToolFacts) -> WorkerToolCall {
    WorkerToolCall {
        tool: f.tool.clone(),
        call_id: f.call_id.clone(),
        arguments: f.arguments.clone(),
        attempt: f.attempt,
    }
}

pub(crate) fn tool_is_error(span: &Span) -> bool {
    match attr_str(&span.attributes, keys::TOOL_STATUS) {
        Some(s) => s.eq_ignore_ascii_case("error"),
        None => span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32),
    }
}

pub(crate) fn tool_result(c: &mut Ctx, f: ToolFacts) -> WorkerToolResult {
    let err = tool_is_error(c.span);
    let exc = exception(c.span);
    let duration_ns = c
        .span
        .end_time_unix_nano
        .saturating_sub(c.span.start_time_unix_nano);
    WorkerToolResult {
        tool: f.tool,
        call_id: f.call_id,
        status: if err {
            ToolStatus::Error
        } else {
            ToolStatus::Ok
        },
        result: attr_json_value(c.attrs(), keys::GEN_AI_TOOL_CALL_RESULT)
            .or_else(|| attr_json_value(c.attrs(), OI_OUTPUT))
            .unwrap_or(Value::Null),
        error_class: if err { c.error_class() } else { None },
        error_message: if err {
            exc.map(|(_, m)| m.to_owned())
                .or_else(|| c.span.status.as_ref().map(|s| s.message.clone()))
                .filter(|m| !m.is_empty())
        } else {
            None
        },
        attempt: f.attempt,
        duration_ms: duration_ns as f64 / 1e6,
    }
}

/// One LLM-call span as an entry of its owner's `llm_calls` (the summary; the full call is the
/// `llm_call` event).
pub(crate) fn llm_call(span: &Span, hex: &str, record: &LlmCallRecord) -> LlmCall {
    let a = &span.attributes;
    LlmCall {
        span_id: hex.to_owned(),
        model: record.model.clone(),
        prompt_hash: attr_str(a, keys::PROMPT_HASH)
            .unwrap_or_default()
            .to_owned(),
        rendered_prompt: attr_str(a, keys::PROMPT_RENDERED).map(str::to_owned),
        input_tokens: record.usage.input_tokens,
        output_tokens: record.usage.output_tokens,
    }
}

/// A plan from a planner's text answer: a JSON `{"plan"|"steps": [...]}` or list, else one step
/// per non-empty line with list markers (`1.`, `2)`, `-`, `*`) stripped.
pub(crate) fn plan_from_text(text: &str) -> Vec<PlanStep> {
    let step = |i: usize, description: String, tool: Option<String>| PlanStep {
        index: u32::try_from(i).unwrap_or(u32::MAX),
        description,
        tool,
    };
    if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        let list = match &v {
            Value::Array(a) => Some(a),
            Value::Object(o) => o
                .get("plan")
                .or_else(|| o.get("steps"))
                .and_then(Value::as_array),
            _ => None,
        };
        if let Some(list) = list {
            return list
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Value::String(d) => step(i, d.clone(), None),
                    other => step(
                        i,
                        other
                            .get("description")
                            .or_else(|| other.get("step"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| other.to_string()),
                        other.get("tool").and_then(Value::as_str).map(str::to_owned),
                    ),
                })
                .collect();
        }
    }
    text.lines()
        .map(strip_list_marker)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| step(i, l.to_owned(), None))
        .collect()
}

fn strip_list_marker(line: &str) -> &str {
    let l = line.trim();
    let digits = l.bytes().take_while(u8::is_ascii_digit).count();
    let rest = if digits > 0 {
        match l[digits..]
            .strip_prefix('.')
            .or_else(|| l[digits..].strip_prefix(')'))
        {
            Some(r) => r,
            None => l,
        }
    } else {
        l.strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .unwrap_or(l)
    };
    rest.trim()
}

pub(crate) fn transition(attrs: &[KeyValue]) -> OrchestratorTransition {
    let s = |k| attr_str(attrs, k).unwrap_or_default().to_owned();
    OrchestratorTransition {
        from_state: s(keys::TRANSITION_FROM),
        to_state: s(keys::TRANSITION_TO),
        reason: s(keys::TRANSITION_REASON),
    }
}

pub(crate) fn observation(attrs: &[KeyValue], default_source: &str) -> EnvObservation {
    EnvObservation {
        source: attr_str(attrs, keys::OBSERVATION_SOURCE)
            .unwrap_or(default_source)
            .to_owned(),
        observation: attr_json_value(attrs, keys::OBSERVATION_DATA).unwrap_or(Value::Null),
    }
}

pub(crate) fn episode_error(attrs: &[KeyValue], fatal: bool) -> EpisodeError {
    EpisodeError {
        error_class: attr_str(attrs, keys::EXCEPTION_TYPE)
            .unwrap_or("exception")
            .to_owned(),
        message: attr_str(attrs, keys::EXCEPTION_MESSAGE)
            .unwrap_or_default()
            .to_owned(),
        fatal,
    }
}
