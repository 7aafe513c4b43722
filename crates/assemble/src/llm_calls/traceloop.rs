//! OpenLLMetry / Traceloop LLM spans: `gen_ai.prompt.N.*`, `gen_ai.completion.N.*` (with
//! `tool_calls.M.*`), `llm.request.functions.N.*`.

use super::flat::{self, below, get_str, Item};
use super::genai_messages::arguments;
use super::Found;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::Value;
use traj_schema::{ChatMessage, MessagePart, ToolDefinition};

pub(crate) fn read(attrs: &[KeyValue], hex: &str, w: &mut Warnings) -> Option<Found> {
    let prompt = flat::group(flat::pairs(attrs), "gen_ai.prompt.");
    let completion = flat::group(flat::pairs(attrs), "gen_ai.completion.");
    if prompt.is_empty() && completion.is_empty() {
        return None;
    }
    let mut found = Found {
        input: prompt.values().map(message).collect(),
        output: completion.values().map(message).collect(),
        ..Default::default()
    };
    for f in flat::group(flat::pairs(attrs), "llm.request.functions.").values() {
        let Some(name) = get_str(f, "name") else {
            continue;
        };
        let parameters = match get_str(f, "parameters").map(|s| serde_json::from_str::<Value>(&s)) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                w.push(format!(
                    "span {hex}: llm.request.functions.N.parameters is not JSON ({e})"
                ));
                Value::Null
            }
            None => Value::Null,
        };
        found.tools.push(ToolDefinition {
            name,
            description: get_str(f, "description").unwrap_or_default(),
            parameters,
            strict: None,
        });
    }
    Some(found)
}

fn message(m: &Item) -> ChatMessage {
    let role = get_str(m, "role").unwrap_or_else(|| "user".into());
    let content = get_str(m, "content");
    let mut parts = Vec::new();
    if role == "tool" {
        parts.push(MessagePart::ToolCallResponse {
            id: get_str(m, "tool_call_id").unwrap_or_default(),
            response: Value::String(content.unwrap_or_default()),
        });
    } else if let Some(c) = content.filter(|c| !c.is_empty()) {
        parts.push(MessagePart::text(c));
    }
    for c in below(m, "tool_calls.").values() {
        let Some(name) = get_str(c, "name") else {
            continue;
        };
        parts.push(MessagePart::ToolCall {
            id: get_str(c, "id").unwrap_or_default(),
            name,
            arguments: arguments(Value::String(get_str(c, "arguments").unwrap_or_default())),
        });
    }
    ChatMessage {
        role,
        parts,
        name: None,
        finish_reason: get_str(m, "finish_reason"),
    }
}
