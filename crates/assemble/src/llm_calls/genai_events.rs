//! The older GenAI events (`gen_ai.system.message`, `gen_ai.user.message`,
//! `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`), whether recorded as span
//! events (fields as event attributes) or as OTLP log records (fields in the body).

use super::genai_messages::{content_json, openai_tool_call};
use super::Found;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use serde_json::{Map, Value};
use traj_schema::{ChatMessage, MessagePart};

pub(crate) const SYSTEM: &str = "gen_ai.system.message";
pub(crate) const USER: &str = "gen_ai.user.message";
pub(crate) const ASSISTANT: &str = "gen_ai.assistant.message";
pub(crate) const TOOL: &str = "gen_ai.tool.message";
pub(crate) const CHOICE: &str = "gen_ai.choice";

pub(crate) fn is_message_event(name: &str) -> bool {
    matches!(name, SYSTEM | USER | ASSISTANT | TOOL | CHOICE)
}

/// One event's fields as a JSON object: the body (a kvlist, or a JSON string) when there is
/// one, else the attributes.
pub(crate) fn fields(
    body: Option<&AnyValue>,
    attrs: &[KeyValue],
    hex: &str,
    w: &mut Warnings,
) -> Map<String, Value> {
    if let Some(b) = body.filter(|b| b.value.is_some()) {
        if let Some(Value::Object(m)) = content_json(b, "log body", hex, w) {
            return m;
        }
        if let Some(Av::StringValue(s)) = &b.value {
            let mut m = Map::new();
            m.insert("content".into(), Value::String(s.clone()));
            return m;
        }
    }
    let mut m = Map::new();
    for kv in attrs {
        if let Some(v) = &kv.value {
            let j = match &v.value {
                Some(Av::StringValue(s)) if kv.key != "content" => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                _ => crate::attributes::any_to_json(v),
            };
            m.insert(kv.key.clone(), j);
        }
    }
    m
}

/// Adds one event to the conversation being rebuilt (events come in time order).
pub(crate) fn add(found: &mut Found, name: &str, f: &Map<String, Value>) {
    let text = |f: &Map<String, Value>| match f.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let calls = |f: &Map<String, Value>| -> Vec<MessagePart> {
        f.get("tool_calls")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(openai_tool_call).collect())
            .unwrap_or_default()
    };
    match name {
        SYSTEM | USER | ASSISTANT => {
            let role = match name {
                SYSTEM => "system",
                USER => "user",
                _ => "assistant",
            };
            let mut parts: Vec<MessagePart> = text(f).into_iter().map(MessagePart::text).collect();
            parts.extend(calls(f));
            found.input.push(ChatMessage::new(role, parts));
        }
        TOOL => found.input.push(ChatMessage::new(
            "tool",
            vec![MessagePart::ToolCallResponse {
                id: f
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                response: f.get("content").cloned().unwrap_or(Value::Null),
            }],
        )),
        CHOICE => {
            let msg = f
                .get("message")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut parts: Vec<MessagePart> =
                text(&msg).into_iter().map(MessagePart::text).collect();
            parts.extend(calls(&msg));
            let mut m = ChatMessage::new(
                msg.get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("assistant"),
                parts,
            );
            m.finish_reason = f
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            found.output.push(m);
        }
        _ => {}
    }
}
