//! The GenAI message-parts JSON (`gen_ai.system_instructions`, `gen_ai.input.messages`,
//! `gen_ai.output.messages`, `gen_ai.tool.definitions`) read into the schema's message types,
//! whether it came as a JSON string or as a structured `AnyValue` (span attribute or log record).

use super::Found;
use crate::attributes::{any_to_json, attr};
use crate::warnings::Warnings;
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use serde_json::Value;
use sha2::{Digest, Sha256};
use traj_schema::{keys, ChatMessage, MessagePart, ToolDefinition};

/// The JSON of a content attribute: a string is parsed (a malformed one is a warning: it is often
/// a value the SDK truncated at its attribute length limit), a structured value converted.
pub(crate) fn content_json(
    value: &AnyValue,
    key: &str,
    hex: &str,
    w: &mut Warnings,
) -> Option<Value> {
    match value.value.as_ref()? {
        Av::StringValue(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Some(v),
            Err(e) => {
                w.push(format!(
                    "span {hex}: {key} is not valid JSON ({e}; {} bytes, possibly truncated by an attribute length limit); content not used",
                    s.len()
                ));
                None
            }
        },
        _ => Some(any_to_json(value)),
    }
}

/// Reads the four GenAI content keys from an attribute list (span attributes, or a log record's
/// attributes / body fields). `None` when none of them is present.
pub(crate) fn from_attributes(attrs: &[KeyValue], hex: &str, w: &mut Warnings) -> Option<Found> {
    let get =
        |key: &str, w: &mut Warnings| attr(attrs, key).and_then(|v| content_json(v, key, hex, w));
    let present = [
        keys::GEN_AI_SYSTEM_INSTRUCTIONS,
        keys::GEN_AI_INPUT_MESSAGES,
        keys::GEN_AI_OUTPUT_MESSAGES,
        keys::GEN_AI_TOOL_DEFINITIONS,
    ]
    .iter()
    .any(|k| attr(attrs, k).is_some());
    if !present {
        return None;
    }
    let mut found = Found::default();
    if let Some(v) = get(keys::GEN_AI_SYSTEM_INSTRUCTIONS, w) {
        found.system = system_parts(&v, hex, w);
    }
    if let Some(v) = get(keys::GEN_AI_INPUT_MESSAGES, w) {
        found.input = messages(&v, keys::GEN_AI_INPUT_MESSAGES, hex, w);
    }
    if let Some(v) = get(keys::GEN_AI_OUTPUT_MESSAGES, w) {
        found.output = messages(&v, keys::GEN_AI_OUTPUT_MESSAGES, hex, w);
    }
    if let Some(v) = get(keys::GEN_AI_TOOL_DEFINITIONS, w) {
        found.tools = tool_definitions(&v, hex, w);
    }
    Some(found)
}

/// `gen_ai.system_instructions`: an array of parts, or a plain string.
pub(crate) fn system_parts(v: &Value, hex: &str, w: &mut Warnings) -> Vec<MessagePart> {
    match v {
        Value::String(s) => vec![MessagePart::text(s.clone())],
        Value::Array(parts) => parts.iter().filter_map(|p| part(p, hex, w)).collect(),
        Value::Object(_) => part(v, hex, w).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// A message array (`[{role, parts: [...]}]`; `content` strings and OpenAI-style `tool_calls`
/// are accepted too, as some instrumentations write them).
pub(crate) fn messages(v: &Value, key: &str, hex: &str, w: &mut Warnings) -> Vec<ChatMessage> {
    let Value::Array(list) = v else {
        w.push(format!(
            "span {hex}: {key} is not an array of messages; content not used"
        ));
        return Vec::new();
    };
    list.iter().filter_map(|m| message(m, hex, w)).collect()
}

fn message(m: &Value, hex: &str, w: &mut Warnings) -> Option<ChatMessage> {
    let Value::Object(obj) = m else {
        w.push(format!("span {hex}: a message is not an object; skipped"));
        return None;
    };
    let role = obj
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user")
        .to_owned();
    let mut parts: Vec<MessagePart> = Vec::new();
    match obj.get("parts") {
        Some(Value::Array(ps)) => parts.extend(ps.iter().filter_map(|p| part(p, hex, w))),
        _ => match obj.get("content") {
            Some(Value::String(s)) if role == "tool" => parts.push(MessagePart::ToolCallResponse {
                id: str_field(obj, "tool_call_id")
                    .or_else(|| str_field(obj, "id"))
                    .unwrap_or_default(),
                response: Value::String(s.clone()),
            }),
            Some(Value::String(s)) => parts.push(MessagePart::text(s.clone())),
            Some(Value::Array(ps)) => parts.extend(ps.iter().filter_map(|p| part(p, hex, w))),
            _ => {}
        },
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls") {
        parts.extend(calls.iter().filter_map(openai_tool_call));
    }
    Some(ChatMessage {
        role,
        parts,
        name: str_field(obj, "name"),
        finish_reason: str_field(obj, "finish_reason"),
    })
}

fn str_field(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An OpenAI-style `{id, type: function, function: {name, arguments}}` tool call.
pub(crate) fn openai_tool_call(c: &Value) -> Option<MessagePart> {
    let f = c.get("function").unwrap_or(c);
    Some(MessagePart::ToolCall {
        id: c
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: f.get("name").and_then(Value::as_str)?.to_owned(),
        arguments: arguments(f.get("arguments").cloned().unwrap_or(Value::Null)),
    })
}

/// Tool-call arguments as a JSON value: a string holding JSON is parsed, anything else kept.
pub(crate) fn arguments(v: Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// One part by its `type`; unknown types are kept as `other` with a warning.
pub(crate) fn part(p: &Value, hex: &str, w: &mut Warnings) -> Option<MessagePart> {
    let Value::Object(obj) = p else {
        return match p {
            Value::String(s) => Some(MessagePart::text(s.clone())),
            _ => None,
        };
    };
    let s = |k: &str| str_field(obj, k);
    let ty = s("type").unwrap_or_else(|| "text".to_owned());
    Some(match ty.as_str() {
        "text" => MessagePart::Text {
            content: s("content").or_else(|| s("text")).unwrap_or_default(),
        },
        "tool_call" | "function_call" => MessagePart::ToolCall {
            id: s("id").unwrap_or_default(),
            name: s("name").unwrap_or_default(),
            arguments: arguments(obj.get("arguments").cloned().unwrap_or(Value::Null)),
        },
        "tool_call_response" | "tool_result" | "function_call_output" => {
            MessagePart::ToolCallResponse {
                id: s("id").or_else(|| s("call_id")).unwrap_or_default(),
                response: obj
                    .get("response")
                    .or_else(|| obj.get("result"))
                    .or_else(|| obj.get("content"))
                    .or_else(|| obj.get("output"))
                    .cloned()
                    .unwrap_or(Value::Null),
            }
        }
        "reasoning" | "thinking" => MessagePart::Reasoning {
            content: s("content").or_else(|| s("text")).unwrap_or_default(),
        },
        "blob" => {
            let content = s("content").unwrap_or_default();
            let (size_bytes, sha256) = blob_digest(&content, hex, w);
            MessagePart::Blob {
                modality: s("modality").unwrap_or_default(),
                mime_type: s("mime_type"),
                size_bytes,
                sha256,
            }
        }
        "uri" => MessagePart::Uri {
            modality: s("modality").unwrap_or_default(),
            mime_type: s("mime_type"),
            uri: s("uri").unwrap_or_default(),
        },
        "file" => MessagePart::File {
            modality: s("modality").unwrap_or_default(),
            mime_type: s("mime_type"),
            file_id: s("file_id").unwrap_or_default(),
        },
        other => {
            w.push(format!(
                "span {hex}: message part of unknown type {other:?} kept as `other`"
            ));
            MessagePart::Other {
                original_type: other.to_owned(),
                value: p.clone(),
            }
        }
    })
}

/// Size and sha256 of base64 content (of the text itself when it is not base64, with a warning).
pub(crate) fn blob_digest(content: &str, hex: &str, w: &mut Warnings) -> (u64, String) {
    let bytes = match base64::engine::general_purpose::STANDARD.decode(content.trim()) {
        Ok(b) => b,
        Err(_) => {
            w.push(format!(
                "span {hex}: blob part is not base64; digest taken over its text"
            ));
            content.as_bytes().to_vec()
        }
    };
    (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)))
}

/// `gen_ai.tool.definitions` (or OpenAI's `tools`): `[{type, name, description, parameters}]` or
/// `[{type: function, function: {...}}]`.
pub(crate) fn tool_definitions(v: &Value, hex: &str, w: &mut Warnings) -> Vec<ToolDefinition> {
    let Value::Array(list) = v else {
        w.push(format!(
            "span {hex}: tool definitions are not an array; not used"
        ));
        return Vec::new();
    };
    list.iter().filter_map(tool_definition).collect()
}

pub(crate) fn tool_definition(t: &Value) -> Option<ToolDefinition> {
    let f = t.get("function").unwrap_or(t);
    let parameters = f
        .get("parameters")
        .or_else(|| f.get("input_schema"))
        .or_else(|| f.get("parameters_json_schema"))
        .cloned()
        .map(arguments)
        .unwrap_or(Value::Null);
    Some(ToolDefinition {
        name: f.get("name").and_then(Value::as_str)?.to_owned(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parameters,
        strict: f.get("strict").and_then(Value::as_bool),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_of_every_known_type_and_unknown_ones_kept() {
        let mut w = Warnings::default();
        let v = json!([
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "assistant", "parts": [
                {"type": "reasoning", "content": "think"},
                {"type": "tool_call", "id": "c1", "name": "grep", "arguments": "{\"q\": 1}"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "aGVsbG8="},
                {"type": "uri", "modality": "image", "uri": "https://x/y.png"},
                {"type": "hologram", "depth": 3}
            ]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "ok"}]}
        ]);
        let ms = messages(&v, "k", "s", &mut w);
        assert_eq!(ms.len(), 3);
        assert_eq!(ms[0].text(), "be brief");
        let p = &ms[1].parts;
        assert_eq!(
            p[1],
            MessagePart::ToolCall {
                id: "c1".into(),
                name: "grep".into(),
                arguments: json!({"q": 1})
            }
        );
        match &p[2] {
            MessagePart::Blob {
                size_bytes, sha256, ..
            } => {
                assert_eq!(*size_bytes, 5);
                assert_eq!(
                    sha256,
                    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&p[4], MessagePart::Other { original_type, .. } if original_type == "hologram")
        );
        let warnings = w.finish();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("hologram"));
    }

    #[test]
    fn openai_style_messages_and_tools_are_accepted() {
        let mut w = Warnings::default();
        let v = json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c9", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "a b"}
        ]);
        let ms = messages(&v, "k", "s", &mut w);
        assert_eq!(
            ms[0].parts,
            vec![MessagePart::ToolCall {
                id: "c9".into(),
                name: "ls".into(),
                arguments: json!({})
            }]
        );
        assert_eq!(
            ms[1].parts,
            vec![MessagePart::ToolCallResponse {
                id: "c9".into(),
                response: json!("a b")
            }]
        );
        let tools = tool_definitions(
            &json!([{"type": "function", "function": {"name": "ls", "description": "list", "parameters": {"type": "object", "required": ["p"]}}}]),
            "s",
            &mut w,
        );
        assert_eq!(tools[0].description, "list");
        assert_eq!(tools[0].parameters["required"][0], "p");
    }
}
