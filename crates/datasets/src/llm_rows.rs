//! Rows from what the model really saw and said: an LLM call's system instructions and input
//! messages become the prompt, its output message the completion, its tool definitions the
//! `tools`. A step with several calls (a tool loop) becomes one multi-turn conversation when each
//! call's input carries the earlier turns, else one conversation per call.

use crate::rows::{Call, Msg};
use crate::runview::LlmCallRef;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use traj_schema::hashing::canonical_json;
use traj_schema::{ChatMessage, LlmCallRecord, MessagePart};

/// How a step with several LLM calls becomes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmRows {
    /// One multi-turn row per step: the last call's full conversation, training on every
    /// assistant turn (falls back to `call` when a call's input does not carry the earlier turns).
    #[default]
    Step,
    /// One row per LLM call: its prompt and its answer.
    Call,
}

/// One conversation a row is made of.
#[derive(Debug, Clone)]
pub struct Conversation<'a> {
    pub prompt: Vec<Msg>,
    pub answer: Msg,
    /// Tool definitions the model was offered (`{"type": "function", "function": {...}}`).
    pub tools: Vec<Value>,
    /// The calls it covers, in time order.
    pub calls: Vec<LlmCallRef<'a>>,
}

impl Conversation<'_> {
    /// Lineage and provenance for the row's metadata.
    pub fn provenance(&self) -> Value {
        let rec = |f: fn(&LlmCallRecord) -> Value| -> Vec<Value> {
            self.calls.iter().map(|(_, r)| f(r)).collect()
        };
        json!({
            "llm_span_ids": self.calls.iter().map(|(e, _)| e.span_id.as_str()).collect::<Vec<_>>(),
            "llm_event_ids": self.calls.iter().map(|(e, _)| e.event_id.as_str()).collect::<Vec<_>>(),
            "models": rec(|r| json!(r.model)),
            "response_ids": rec(|r| json!(r.response_id)),
            "content_source": self.calls.last().map(|(_, r)| r.content_source.as_str()),
        })
    }
}

/// The conversations of a step's LLM calls (none when no call recorded a conversation).
pub fn conversations<'a>(calls: &[LlmCallRef<'a>], mode: LlmRows) -> Vec<Conversation<'a>> {
    let trainable: Vec<LlmCallRef<'a>> = calls
        .iter()
        .copied()
        .filter(|(_, r)| r.has_conversation())
        .collect();
    let Some(&last) = trainable.last() else {
        return Vec::new();
    };
    if mode == LlmRows::Step {
        let (prompt, answer) = (prompt_msgs(last.1), answer_msg(last.1));
        let earlier_carried = trainable[..trainable.len() - 1]
            .iter()
            .all(|(_, r)| answer_msg(r).is_some_and(|a| prompt.iter().any(|m| same_turn(m, &a))));
        if let (true, Some(answer)) = (earlier_carried, answer) {
            return vec![Conversation {
                prompt,
                answer,
                tools: tools_of(&trainable),
                calls: trainable,
            }];
        }
    }
    trainable
        .iter()
        .filter_map(|&c| {
            Some(Conversation {
                prompt: prompt_msgs(c.1),
                answer: answer_msg(c.1)?,
                tools: tools_of(std::slice::from_ref(&c)),
                calls: vec![c],
            })
        })
        .collect()
}

/// Whether the LLM calls exist but recorded no conversation (content capture off).
pub fn content_missing(calls: &[LlmCallRef]) -> bool {
    !calls.is_empty() && calls.iter().all(|(_, r)| !r.has_conversation())
}

/// An assistant turn the model produced, as found again in a later prompt.
fn same_turn(m: &Msg, answer: &Msg) -> bool {
    m.role == answer.role
        && m.content == answer.content
        && m.tool_calls.len() == answer.tool_calls.len()
        && m.tool_calls
            .iter()
            .zip(&answer.tool_calls)
            .all(|(a, b)| a.id == b.id && a.name == b.name)
}

/// The tools of the last call that recorded any.
fn tools_of(calls: &[LlmCallRef]) -> Vec<Value> {
    calls
        .iter()
        .rev()
        .find(|(_, r)| !r.tool_definitions.is_empty())
        .map(|(_, r)| {
            r.tool_definitions
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    }})
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The model's input: system instructions, then the input messages in order.
pub fn prompt_msgs(r: &LlmCallRecord) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    if !r.system_instructions.is_empty() {
        out.push(Msg::system(&parts_text(&r.system_instructions)));
    }
    for m in &r.input_messages {
        push_message(m, &mut names, &mut out);
    }
    out
}

/// The model's answer: its first assistant output message.
pub fn answer_msg(r: &LlmCallRecord) -> Option<Msg> {
    let m = r
        .output_messages
        .iter()
        .find(|m| m.role == "assistant" || m.role == "model")
        .or_else(|| r.output_messages.first())?;
    let mut out = Vec::new();
    push_message(m, &mut BTreeMap::new(), &mut out);
    out.into_iter().find(|m| m.role == "assistant")
}

fn role(r: &str) -> &'static str {
    match r {
        "system" | "developer" => "system",
        "assistant" | "model" => "assistant",
        "tool" | "function" => "tool",
        _ => "user",
    }
}

/// Appends one recorded message: its text and tool calls as one message, each tool response as
/// a `tool` message of its own (tool names looked up from the calls seen so far).
fn push_message(m: &ChatMessage, names: &mut BTreeMap<String, String>, out: &mut Vec<Msg>) {
    let mut calls = Vec::new();
    let mut responses = Vec::new();
    let mut rest = Vec::new();
    for p in &m.parts {
        match p {
            MessagePart::ToolCall {
                id,
                name,
                arguments,
            } => {
                names.insert(id.clone(), name.clone());
                calls.push(Call {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
            }
            MessagePart::ToolCallResponse { id, response } => responses.push((id, response)),
            other => rest.push(other.clone()),
        }
    }
    let text = parts_text(&rest);
    let r = role(&m.role);
    if !calls.is_empty() || !text.is_empty() || (responses.is_empty() && r != "tool") {
        let mut msg = Msg::with_role(r, text);
        msg.tool_calls = calls;
        out.push(msg);
    }
    for (id, response) in responses {
        let content = match response {
            Value::String(s) => s.clone(),
            other => canonical_json(other),
        };
        let name = names.get(id.as_str()).cloned().unwrap_or_default();
        out.push(Msg::tool(id, &name, content));
    }
}

/// The text of parts; binary and referenced content appear as a short reference, never inline.
fn parts_text(parts: &[MessagePart]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match p {
            MessagePart::Text { content } => out.push(content.clone()),
            MessagePart::Blob {
                modality,
                mime_type,
                size_bytes,
                sha256,
            } => out.push(format!(
                "[{modality} {} sha256:{sha256} {size_bytes} bytes]",
                mime_type.as_deref().unwrap_or("blob")
            )),
            MessagePart::Uri { modality, uri, .. } => out.push(format!("[{modality} {uri}]")),
            MessagePart::File {
                modality, file_id, ..
            } => out.push(format!("[{modality} file {file_id}]")),
            MessagePart::Other { original_type, .. } => out.push(format!("[{original_type} part]")),
            MessagePart::Reasoning { .. }
            | MessagePart::ToolCall { .. }
            | MessagePart::ToolCallResponse { .. } => {}
        }
    }
    out.join("\n")
}

/// A verdict written in the form of a recorded answer: the same JSON keys when the answer was a
/// JSON object, else `template` with `{verdict}` and `{feedback}` filled in.
pub fn verdict_like(
    recorded: &Msg,
    verdict: &str,
    feedback: &str,
    risk_flags: &[String],
    template: &str,
) -> Msg {
    if let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(recorded.content.trim()) {
        let key = if o.contains_key("decision") && !o.contains_key("verdict") {
            "decision"
        } else {
            "verdict"
        };
        o.insert(key.into(), json!(verdict));
        for (k, v) in [
            ("feedback", json!(feedback)),
            ("risk_flags", json!(risk_flags)),
        ] {
            if o.contains_key(k) {
                o.insert(k.into(), v);
            }
        }
        return Msg::assistant(Value::Object(o).to_string());
    }
    let text = template
        .replace("{verdict}", verdict)
        .replace("{feedback}", feedback);
    Msg::assistant(text.trim().trim_end_matches(':').trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use traj_schema::{ContentSource, ToolDefinition, Usage};

    fn rec(input: Vec<ChatMessage>, output: Vec<ChatMessage>) -> LlmCallRecord {
        LlmCallRecord {
            operation: "chat".into(),
            provider: None,
            model: "m".into(),
            response_model: None,
            request: Default::default(),
            system_instructions: vec![],
            input_messages: input,
            output_messages: output,
            tool_definitions: vec![ToolDefinition {
                name: "read_file".into(),
                description: "Read a file".into(),
                parameters: json!({"type": "object", "required": ["path"]}),
                strict: None,
            }],
            usage: Usage::default(),
            finish_reasons: vec![],
            response_id: None,
            content_source: ContentSource::GenaiAttributes,
            also_found_in: vec![],
            error_type: None,
        }
    }

    fn text(role: &str, t: &str) -> ChatMessage {
        ChatMessage::new(role, vec![MessagePart::text(t)])
    }

    fn call(id: &str) -> ChatMessage {
        ChatMessage::new(
            "assistant",
            vec![MessagePart::ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: json!({"path": "a"}),
            }],
        )
    }

    fn response(id: &str) -> ChatMessage {
        ChatMessage::new(
            "tool",
            vec![MessagePart::ToolCallResponse {
                id: id.into(),
                response: json!("contents"),
            }],
        )
    }

    fn event(id: &str) -> traj_schema::Event {
        serde_json::from_value(json!({
            "schema_version": "2", "run_id": "r", "trace_id": "r", "span_id": id, "step": 0,
            "event_id": id, "timestamp": "2026-01-01T00:00:00Z", "time_unix_nano": 1,
            "role": "llm", "parent_event_id": null, "lineage": "root",
            "event_type": "episode_end", "payload": {"outcome": "success", "steps": 1}
        }))
        .unwrap()
    }

    #[test]
    fn a_tool_loop_is_one_multi_turn_conversation() {
        let first = rec(
            vec![text("system", "sys"), text("user", "go")],
            vec![call("c1")],
        );
        let second = rec(
            vec![
                text("system", "sys"),
                text("user", "go"),
                call("c1"),
                response("c1"),
            ],
            vec![text("assistant", "done")],
        );
        let (e1, e2) = (event("a"), event("b"));
        let calls = vec![(&e1, &first), (&e2, &second)];
        let convs = conversations(&calls, LlmRows::Step);
        assert_eq!(convs.len(), 1);
        let c = &convs[0];
        let roles: Vec<&str> = c.prompt.iter().map(|m| m.role).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(c.prompt[3].name.as_deref(), Some("read_file"));
        assert_eq!(c.prompt[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(c.answer.content, "done");
        assert_eq!(c.tools[0]["function"]["parameters"]["required"][0], "path");
        assert_eq!(conversations(&calls, LlmRows::Call).len(), 2);
    }

    #[test]
    fn calls_that_do_not_carry_history_become_one_conversation_each() {
        let first = rec(vec![text("user", "a")], vec![text("assistant", "x")]);
        let second = rec(vec![text("user", "b")], vec![text("assistant", "y")]);
        let (e1, e2) = (event("a"), event("b"));
        let calls = vec![(&e1, &first), (&e2, &second)];
        let convs = conversations(&calls, LlmRows::Step);
        assert_eq!(convs.len(), 2);
        assert_eq!(convs[1].answer.content, "y");
    }

    #[test]
    fn synthetic_verdicts_take_the_recorded_form() {
        let json_answer = Msg::assistant(r#"{"verdict":"end","feedback":"ok"}"#.into());
        let m = verdict_like(
            &json_answer,
            "continue",
            "keep going",
            &[],
            "{verdict}: {feedback}",
        );
        let v: Value = serde_json::from_str(&m.content).unwrap();
        assert_eq!(v, json!({"verdict": "continue", "feedback": "keep going"}));
        let text_answer = Msg::assistant("end: looks done".into());
        let m = verdict_like(&text_answer, "replan", "", &[], "{verdict}: {feedback}");
        assert_eq!(m.content, "replan");
    }
}
