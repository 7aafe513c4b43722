//! OpenInference LLM spans: `llm.input_messages.N.message.*`, `llm.output_messages.N.message.*`
//! (with `tool_calls` and multimodal `contents`), `llm.tools.N.tool.json_schema`,
//! `llm.invocation_parameters`, and the response id / finish reasons from `output.value`.

use super::flat::{self, below, get_str, Item};
use super::genai_messages::{arguments, blob_digest, tool_definition};
use super::Found;
use crate::attributes::attr_str;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::Value;
use traj_schema::{ChatMessage, MessagePart};

const INPUT: &str = "llm.input_messages.";
const OUTPUT: &str = "llm.output_messages.";
const TOOLS: &str = "llm.tools.";

pub(crate) fn read(attrs: &[KeyValue], hex: &str, w: &mut Warnings) -> Option<Found> {
    let input = flat::group(flat::pairs(attrs), INPUT);
    let output = flat::group(flat::pairs(attrs), OUTPUT);
    if input.is_empty() && output.is_empty() {
        return None;
    }
    let mut found = Found {
        input: input.values().map(|m| message(m, hex, w)).collect(),
        output: output.values().map(|m| message(m, hex, w)).collect(),
        ..Default::default()
    };
    for t in flat::group(flat::pairs(attrs), TOOLS).values() {
        match get_str(t, "tool.json_schema").map(|s| serde_json::from_str::<Value>(&s)) {
            Some(Ok(v)) => found.tools.extend(tool_definition(&v)),
            Some(Err(e)) => w.push(format!(
                "span {hex}: llm.tools.N.tool.json_schema is not JSON ({e})"
            )),
            None => {}
        }
    }
    Some(found)
}

fn message(m: &Item, hex: &str, w: &mut Warnings) -> ChatMessage {
    let role = get_str(m, "message.role").unwrap_or_else(|| "user".into());
    let mut parts = Vec::new();
    let content = get_str(m, "message.content");
    if role == "tool" {
        parts.push(MessagePart::ToolCallResponse {
            id: get_str(m, "message.tool_call_id").unwrap_or_default(),
            response: Value::String(content.unwrap_or_default()),
        });
    } else if let Some(c) = content {
        parts.push(MessagePart::text(c));
    }
    for c in below(m, "message.contents.").values() {
        match get_str(c, "message_content.type").as_deref() {
            Some("text") | None => {
                if let Some(t) = get_str(c, "message_content.text") {
                    parts.push(MessagePart::text(t));
                }
            }
            Some("image") => {
                let url = get_str(c, "message_content.image.image.url").unwrap_or_default();
                parts.push(image_part(&url, hex, w));
            }
            Some(other) => {
                w.push(format!(
                    "span {hex}: OpenInference content of unknown type {other:?} kept as `other`"
                ));
                parts.push(MessagePart::Other {
                    original_type: other.to_owned(),
                    value: Value::Null,
                });
            }
        }
    }
    for c in below(m, "message.tool_calls.").values() {
        let Some(name) = get_str(c, "tool_call.function.name") else {
            continue;
        };
        parts.push(MessagePart::ToolCall {
            id: get_str(c, "tool_call.id").unwrap_or_default(),
            name,
            arguments: arguments(Value::String(
                get_str(c, "tool_call.function.arguments").unwrap_or_default(),
            )),
        });
    }
    ChatMessage {
        role,
        parts,
        name: get_str(m, "message.name"),
        finish_reason: None,
    }
}

/// An image given as a URL: a `data:` URL becomes a blob reference (size and digest only).
fn image_part(url: &str, hex: &str, w: &mut Warnings) -> MessagePart {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').unwrap_or((rest, ""));
        let (size_bytes, sha256) = blob_digest(data, hex, w);
        return MessagePart::Blob {
            modality: "image".into(),
            mime_type: meta
                .split(';')
                .next()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            size_bytes,
            sha256,
        };
    }
    MessagePart::Uri {
        modality: "image".into(),
        mime_type: None,
        uri: url.to_owned(),
    }
}

/// `llm.invocation_parameters` (a JSON object) as request parameters.
pub(crate) fn invocation_parameters(attrs: &[KeyValue]) -> serde_json::Map<String, Value> {
    attr_str(attrs, "llm.invocation_parameters")
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

/// The response id and finish reasons from an OpenAI response in `output.value`.
pub(crate) fn response_facts(attrs: &[KeyValue]) -> (Option<String>, Vec<String>) {
    let Some(v) =
        attr_str(attrs, "output.value").and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return (None, Vec::new());
    };
    let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
    let reasons = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("finish_reason")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (id, reasons)
}
