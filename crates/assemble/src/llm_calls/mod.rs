//! LLM calls, whatever instrumentation recorded them: which spans are calls
//! ([`llm_convention`]), and what each call was given and answered ([`read_call`]), from GenAI
//! attributes, GenAI span events, OTLP log records tied to the span, OpenInference or OpenLLMetry
//! attributes. `docs/conventions.md` lists what is read from where.

mod flat;
mod genai_events;
pub(crate) mod genai_messages;
mod openinference;
mod traceloop;

use crate::attributes::{any_to_json, attr, attr_str, attr_u64};
use crate::log_record::LogEntry;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use serde_json::{Map, Value};
use traj_schema::{
    keys, ChatMessage, ContentSource, LlmCallRecord, MessagePart, ToolDefinition, Usage,
};

/// Content found in one convention.
#[derive(Debug, Default, Clone)]
pub(crate) struct Found {
    pub system: Vec<MessagePart>,
    pub input: Vec<ChatMessage>,
    pub output: Vec<ChatMessage>,
    pub tools: Vec<ToolDefinition>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.system.is_empty() && self.input.is_empty() && self.output.is_empty()
    }
}

const LLM_OPERATIONS: &[&str] = &["chat", "text_completion", "generate_content", "embeddings"];

/// The convention by which `span` is an LLM call, if it is one: `traj` (`traj.role = llm`),
/// `genai` (`gen_ai.operation.name`), `openinference` (`openinference.span.kind = LLM`) or
/// `traceloop` (`llm.request.type`).
pub(crate) fn llm_convention(span: &Span) -> Option<&'static str> {
    let a = &span.attributes;
    if attr_str(a, keys::ROLE) == Some("llm") {
        return Some("traj");
    }
    if attr_str(a, keys::GEN_AI_OPERATION_NAME).is_some_and(|op| LLM_OPERATIONS.contains(&op)) {
        return Some("genai");
    }
    if attr_str(a, keys::OPENINFERENCE_SPAN_KIND)
        .is_some_and(|k| k.eq_ignore_ascii_case("LLM") || k.eq_ignore_ascii_case("EMBEDDING"))
    {
        return Some("openinference");
    }
    if attr(a, "llm.request.type").is_some() {
        return Some("traceloop");
    }
    None
}

/// Reads one LLM call from its span and the log records tied to it (in time order).
pub(crate) fn read_call(
    span: &Span,
    hex: &str,
    logs: &[&LogEntry],
    w: &mut Warnings,
) -> LlmCallRecord {
    let a = &span.attributes;
    let mut found = contents(span, hex, logs, w);
    let (content_source, content) = if found.is_empty() {
        match attr_str(a, keys::PROMPT_RENDERED) {
            Some(p) => (
                ContentSource::RenderedPrompt,
                Found {
                    input: vec![ChatMessage::new("user", vec![MessagePart::text(p)])],
                    ..Default::default()
                },
            ),
            None => (ContentSource::None, Found::default()),
        }
    } else {
        found.remove(0)
    };
    let also_found_in: Vec<ContentSource> = found.iter().map(|(s, _)| *s).collect();
    if !also_found_in.is_empty() {
        let names: Vec<&str> = also_found_in.iter().map(|s| s.as_str()).collect();
        w.push(format!(
            "span {hex}: LLM content recorded in two conventions at once ({} and {}); used {}",
            content_source.as_str(),
            names.join(", "),
            content_source.as_str()
        ));
    }
    let log_attrs: Vec<&[KeyValue]> = logs
        .iter()
        .map(|l| l.record.attributes.as_slice())
        .collect();
    let lookup = |key: &str| -> Option<String> {
        std::iter::once(a.as_slice())
            .chain(log_attrs.iter().copied())
            .find_map(|attrs| attr_str(attrs, key).map(str::to_owned))
    };
    let number = |keys_: &[&str]| -> Option<u64> {
        std::iter::once(a.as_slice())
            .chain(log_attrs.iter().copied())
            .find_map(|attrs| keys_.iter().find_map(|k| attr_u64(attrs, k)))
    };
    let (oi_response_id, oi_reasons) = openinference::response_facts(a);
    let mut finish_reasons = finish_reasons(a);
    if finish_reasons.is_empty() {
        finish_reasons = oi_reasons;
    }
    if finish_reasons.is_empty() {
        finish_reasons.extend(lookup("llm.finish_reason"));
    }
    if finish_reasons.is_empty() {
        finish_reasons = content
            .output
            .iter()
            .filter_map(|m| m.finish_reason.clone())
            .collect();
    }
    let response_model = lookup("gen_ai.response.model");
    let model = lookup(keys::GEN_AI_REQUEST_MODEL)
        .or_else(|| lookup("llm.model_name"))
        .or_else(|| response_model.clone())
        .unwrap_or_default();
    let error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    LlmCallRecord {
        operation: operation(a),
        provider: lookup("gen_ai.provider.name")
            .or_else(|| lookup("gen_ai.system"))
            .or_else(|| lookup("llm.provider"))
            .or_else(|| lookup("llm.system")),
        model,
        response_model,
        request: request_parameters(a),
        system_instructions: content.system,
        input_messages: content.input,
        output_messages: content.output,
        tool_definitions: content.tools,
        usage: Usage {
            input_tokens: number(&[
                keys::GEN_AI_USAGE_INPUT_TOKENS,
                "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt",
            ])
            .unwrap_or(0),
            output_tokens: number(&[
                keys::GEN_AI_USAGE_OUTPUT_TOKENS,
                "gen_ai.usage.completion_tokens",
                "llm.token_count.completion",
            ])
            .unwrap_or(0),
        },
        finish_reasons,
        response_id: lookup("gen_ai.response.id").or(oi_response_id),
        content_source,
        also_found_in,
        error_type: error.then(|| lookup(keys::ERROR_TYPE).unwrap_or_else(|| "error".to_owned())),
    }
}

/// Every convention's content for the span, in order of preference, non-empty ones only.
fn contents(
    span: &Span,
    hex: &str,
    logs: &[&LogEntry],
    w: &mut Warnings,
) -> Vec<(ContentSource, Found)> {
    let a = &span.attributes;
    let mut out: Vec<(ContentSource, Found)> = Vec::new();
    let mut push = |src, f: Option<Found>| {
        if let Some(f) = f.filter(|f| !f.is_empty()) {
            out.push((src, f));
        }
    };
    push(
        ContentSource::GenaiAttributes,
        genai_messages::from_attributes(a, hex, w),
    );
    push(ContentSource::GenaiLogs, from_logs(logs, hex, w));
    let mut events = Found::default();
    for ev in &span.events {
        if genai_events::is_message_event(&ev.name) {
            let f = genai_events::fields(None, &ev.attributes, hex, w);
            genai_events::add(&mut events, &ev.name, &f);
        }
    }
    push(ContentSource::GenaiSpanEvents, Some(events));
    push(ContentSource::Openinference, openinference::read(a, hex, w));
    push(ContentSource::Traceloop, traceloop::read(a, hex, w));
    out
}

/// Content from log records: the current GenAI keys (as attributes, or as the fields of a kvlist
/// body), or the older per-message events (`event_name` / `event.name`, fields in the body).
fn from_logs(logs: &[&LogEntry], hex: &str, w: &mut Warnings) -> Option<Found> {
    let mut merged = Found::default();
    for l in logs {
        let r = &l.record;
        let body_fields: &[KeyValue] = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Av::KvlistValue(kv)) => &kv.values,
            _ => &[],
        };
        let current = genai_messages::from_attributes(&r.attributes, hex, w)
            .or_else(|| genai_messages::from_attributes(body_fields, hex, w));
        if let Some(f) = current {
            if merged.system.is_empty() {
                merged.system = f.system;
            }
            merged.input.extend(f.input);
            merged.output.extend(f.output);
            if merged.tools.is_empty() {
                merged.tools = f.tools;
            }
            continue;
        }
        let name = if r.event_name.is_empty() {
            attr_str(&r.attributes, "event.name").unwrap_or("")
        } else {
            r.event_name.as_str()
        };
        if genai_events::is_message_event(name) {
            let f = genai_events::fields(r.body.as_ref(), &r.attributes, hex, w);
            genai_events::add(&mut merged, name, &f);
        }
    }
    (!merged.is_empty()).then_some(merged)
}

fn operation(a: &[KeyValue]) -> String {
    if let Some(op) =
        attr_str(a, keys::GEN_AI_OPERATION_NAME).filter(|op| LLM_OPERATIONS.contains(op))
    {
        return op.to_owned();
    }
    match attr_str(a, "llm.request.type") {
        Some("completion") => return "text_completion".into(),
        Some("embedding") | Some("embeddings") => return "embeddings".into(),
        _ => {}
    }
    if attr_str(a, keys::OPENINFERENCE_SPAN_KIND)
        .is_some_and(|k| k.eq_ignore_ascii_case("EMBEDDING"))
    {
        return "embeddings".into();
    }
    "chat".into()
}

/// `gen_ai.request.*` (but the model) and OpenInference `llm.invocation_parameters`.
fn request_parameters(a: &[KeyValue]) -> Map<String, Value> {
    let mut m = openinference::invocation_parameters(a);
    for kv in a {
        let Some(name) = kv.key.strip_prefix("gen_ai.request.") else {
            continue;
        };
        if name == "model" {
            continue;
        }
        if let Some(v) = &kv.value {
            m.insert(name.to_owned(), any_to_json(v));
        }
    }
    m
}

/// `gen_ai.response.finish_reasons`: a string array, or a JSON / plain string.
fn finish_reasons(a: &[KeyValue]) -> Vec<String> {
    let Some(v) = attr(a, "gen_ai.response.finish_reasons") else {
        return Vec::new();
    };
    match any_to_json(v) {
        Value::Array(xs) => xs
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(xs)) => xs
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => vec![s],
        },
        _ => Vec::new(),
    }
}
