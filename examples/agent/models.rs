//! The simulated models of the three roles, as chat models: each has its system prompt, sees its
//! role's input as a user turn, and answers with an assistant message (the plan or the verdict as
//! JSON, the worker's tool calls and its closing sentence). Every model turn is recorded on an LLM
//! span of the role span in the GenAI form, so the rows built from it are the real conversation.
//!
//! The answers themselves are decided by the scripted policy in `episode.rs`; this module only
//! says them in chat form. Nothing here draws from the episode's random stream.

use super::tools;
use serde::Serialize;
use serde_json::{json, Value};
use traj_instrument::LlmSpan;
use traj_schema::event::{
    PlanStep, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput, WorkerInput,
};
use traj_schema::llm::{ChatMessage, MessagePart, ToolDefinition, Usage};
use traj_schema::session::ModelSpec;

pub const PLANNER_SYSTEM: &str = "\
You are the planner of an agent that works in a sandboxed workspace of text files and a small \
knowledge base. Given the user's goal, the files in the workspace, the available tools and what \
happened so far, write the shortest plan that reaches the goal. Each step must be doable by the \
worker with exactly one tool call.

Rules:
- Use only the tools listed, and name files exactly as they appear in the workspace or the goal.
- When the verifier asks for a new plan, keep the steps that already succeeded out of it and fix \
what it reported.
- Do not carry out any step yourself.

Answer with one JSON object and nothing else:
{\"plan\": [{\"index\": 0, \"description\": \"<what to do>\", \"tool\": \"<tool name>\"}], \
\"rationale\": \"<one sentence>\"}";

pub const WORKER_SYSTEM: &str = "\
You are the worker of an agent that works in a sandboxed workspace of text files and a small \
knowledge base. You carry out one plan step at a time by calling one of the provided tools, with \
arguments that follow its schema. Take file names, values and text from the step and from the \
result of the previous step; never make content up.

If a tool call fails, read the error: correct the arguments when they were wrong, call the tool \
again when it timed out or was unavailable. Stop after three attempts.

When the step is done, or cannot be done, answer with one sentence saying what happened and do \
not call a tool.";

pub const VERIFIER_SYSTEM: &str = "\
You are the verifier of an agent that works in a sandboxed workspace of text files and a small \
knowledge base. After every worker step you decide how the run goes on, from the goal, the \
progress of the plan, the worker's actions and the evidence read from the environment:
- \"continue\": the plan is sound and steps remain;
- \"replan\": a step failed, or the plan is finished but the goal is not met;
- \"end\": the evidence shows that the goal is met.

Answer with one JSON object and nothing else:
{\"verdict\": \"continue\" | \"replan\" | \"end\", \"feedback\": \"<one sentence for the \
planner>\", \"risk_flags\": [\"<flag>\"]}";

const PLANNER_USER: &str = "\
Goal: {goal}

Files in the workspace: {files}

Available tools:
{tools}

What happened so far:
{history}{replan}";

const WORKER_USER: &str = "\
Current step ({position}): {step}
Tool named by the plan: {tool}

Result of the previous step: {previous}
Files in the workspace: {files}
Earlier failures in this run:
{failures}";

const VERIFIER_USER: &str = "\
Goal: {goal}

Plan progress: {done} of {total} step(s) done
Worker actions this cycle:
{actions}

Evidence from the environment: {evidence}";

/// Every prompt template by name (what the run's `prompt_hash` covers).
pub const PROMPTS: &[(&str, &str)] = &[
    ("planner.system", PLANNER_SYSTEM),
    ("planner.user", PLANNER_USER),
    ("worker.system", WORKER_SYSTEM),
    ("worker.user", WORKER_USER),
    ("verifier.system", VERIFIER_SYSTEM),
    ("verifier.user", VERIFIER_USER),
];

/// Fills the `{name}` placeholders of `template`.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Token estimate of a text: one token per four bytes, rounded up.
pub fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// `- item` lines, or `fallback` for none.
fn bullets<S: AsRef<str>>(items: &[S], fallback: &str) -> String {
    if items.is_empty() {
        return fallback.to_string();
    }
    items
        .iter()
        .map(|s| format!("- {}", s.as_ref()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn files_line(files: &Value) -> String {
    let names: Vec<&str> = files
        .get("files")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

pub fn user(text: String) -> ChatMessage {
    ChatMessage::new("user", vec![MessagePart::text(text)])
}

/// A final text answer (finish reason `stop`).
pub fn text_answer(text: String) -> ChatMessage {
    ChatMessage {
        finish_reason: Some("stop".into()),
        ..ChatMessage::new("assistant", vec![MessagePart::text(text)])
    }
}

/// An answer that calls one tool (finish reason `tool_call`).
pub fn tool_call_answer(call_id: &str, tool: &str, arguments: &Value) -> ChatMessage {
    ChatMessage {
        finish_reason: Some("tool_call".into()),
        ..ChatMessage::new(
            "assistant",
            vec![MessagePart::ToolCall {
                id: call_id.into(),
                name: tool.into(),
                arguments: arguments.clone(),
            }],
        )
    }
}

/// An answer as a later call's input carries it (`finish_reason` is for output messages).
pub fn as_input(answer: ChatMessage) -> ChatMessage {
    ChatMessage {
        finish_reason: None,
        ..answer
    }
}

/// The `tool` message that gives a call's result (or error) back to the model.
pub fn tool_response(call_id: &str, response: Value) -> ChatMessage {
    ChatMessage::new(
        "tool",
        vec![MessagePart::ToolCallResponse {
            id: call_id.into(),
            response,
        }],
    )
}

/// What a failed tool call gives back to the model.
pub fn tool_error(class: &str, message: &str) -> Value {
    json!({"error": {"type": class, "message": message}})
}

/// The planner's user turn: goal, workspace, the tools it may plan with, history, replan reason.
pub fn planner_turn(input: &PlannerInput) -> ChatMessage {
    let tools: Vec<String> = tools::tool_definitions()
        .into_iter()
        .filter(|t| input.tool_mask.get(&t.name).copied().unwrap_or(false))
        .map(|t| format!("{}: {}", t.name, t.description))
        .collect();
    let replan = input
        .replan_reason
        .as_ref()
        .map(|r| format!("\n\nThe verifier asked for a new plan: {r}"))
        .unwrap_or_default();
    user(render(
        PLANNER_USER,
        &[
            ("goal", input.goal.clone()),
            ("files", files_line(&input.observation)),
            ("tools", bullets(&tools, "none")),
            ("history", bullets(&input.history, "nothing yet")),
            ("replan", replan),
        ],
    ))
}

/// The worker's user turn: the step (`position` says where it is in the plan), the tool the plan
/// names, the previous step's result, the workspace and the earlier failures.
pub fn worker_turn(
    input: &WorkerInput,
    position: &str,
    tool: &str,
    previous: &Value,
) -> ChatMessage {
    let failures: Vec<String> = input
        .prior_failures
        .iter()
        .map(|f| {
            format!(
                "{} failed ({}): {}",
                f.tool.as_deref().unwrap_or("a step"),
                f.error_class,
                f.message
            )
        })
        .collect();
    let previous = if previous.is_null() {
        "none".to_string()
    } else {
        previous.to_string()
    };
    user(render(
        WORKER_USER,
        &[
            ("position", position.to_string()),
            ("step", input.current_step.clone()),
            ("tool", tool.to_string()),
            ("previous", previous),
            ("files", files_line(&input.env_state)),
            ("failures", bullets(&failures, "none")),
        ],
    ))
}

/// The verifier's user turn: goal, plan progress, the worker's actions and the evidence.
pub fn verifier_turn(goal: &str, input: &VerifierInput) -> ChatMessage {
    user(render(
        VERIFIER_USER,
        &[
            ("goal", goal.to_string()),
            ("done", input.plan_progress.completed.to_string()),
            ("total", input.plan_progress.total.to_string()),
            ("actions", bullets(&input.action_traces, "none")),
            ("evidence", input.evidence.to_string()),
        ],
    ))
}

/// The planner's answer: the plan and rationale of its output, as JSON.
pub fn plan_answer(output: &PlannerOutput) -> ChatMessage {
    #[derive(Serialize)]
    struct Answer<'a> {
        plan: &'a [PlanStep],
        rationale: &'a str,
    }
    let answer = Answer {
        plan: &output.plan,
        rationale: &output.rationale,
    };
    text_answer(serde_json::to_string(&answer).unwrap_or_default())
}

/// The verifier's answer: verdict, feedback and risk flags of its output, as JSON.
pub fn verdict_answer(output: &VerifierOutput) -> ChatMessage {
    #[derive(Serialize)]
    struct Answer<'a> {
        verdict: &'a str,
        feedback: &'a str,
        risk_flags: &'a [String],
    }
    let answer = Answer {
        verdict: output.verdict.as_str(),
        feedback: &output.feedback,
        risk_flags: &output.risk_flags,
    };
    text_answer(serde_json::to_string(&answer).unwrap_or_default())
}

/// The text of message parts as a chat template renders them (tool calls and responses in
/// `<tool_call>` / `<tool_response>` tags).
fn parts_text(parts: &[MessagePart]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match p {
            MessagePart::Text { content } | MessagePart::Reasoning { content } => {
                out.push(content.clone())
            }
            MessagePart::ToolCall {
                name, arguments, ..
            } => out.push(format!(
                "<tool_call>\n{}\n</tool_call>",
                json!({"name": name, "arguments": arguments})
            )),
            MessagePart::ToolCallResponse { response, .. } => {
                out.push(format!("<tool_response>\n{response}\n</tool_response>"))
            }
            _ => {}
        }
    }
    out.join("\n")
}

/// The prompt as the model reads it (ChatML, tools in the system turn), ending where the model's
/// answer starts: `traj.prompt.rendered`, and what the input token count is estimated from.
pub fn transcript(system: &str, tools: &[ToolDefinition], messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    let mut turn = |role: &str, text: &str| {
        out.push_str(&format!("<|im_start|>{role}\n{text}<|im_end|>\n"));
    };
    let mut system = system.to_string();
    if !tools.is_empty() {
        system.push_str("\n\n# Tools\n\n<tools>\n");
        for t in tools {
            let t = json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters,
            }});
            system.push_str(&format!("{t}\n"));
        }
        system.push_str("</tools>");
    }
    turn("system", &system);
    for m in messages {
        turn(&m.role, &parts_text(&m.parts));
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// One role's simulated model: name and request parameters from the model stack, system prompt,
/// the tools it is offered, and the episode seed its response ids derive from.
#[derive(Debug, Clone)]
pub struct SimModel {
    role: &'static str,
    spec: ModelSpec,
    system: &'static str,
    tools: Vec<ToolDefinition>,
    seed: u64,
}

impl SimModel {
    pub fn new(
        role: &'static str,
        spec: ModelSpec,
        system: &'static str,
        tools: Vec<ToolDefinition>,
        seed: u64,
    ) -> SimModel {
        SimModel {
            role,
            spec,
            system,
            tools,
            seed,
        }
    }

    /// The response id of turn `turn` (from 1) of cycle `cycle`: deterministic by seed.
    pub fn response_id(&self, cycle: u32, turn: u32) -> String {
        format!("sim-{:x}-{}-{cycle}.{turn}", self.seed, self.role)
    }

    /// One model turn: starts its LLM span with `start` (the role span's `llm_call`), records
    /// the request, the conversation `input` and the `answer`, and ends the span.
    pub fn call(
        &self,
        start: impl FnOnce(&str, &str) -> LlmSpan,
        cycle: u32,
        turn: u32,
        input: &[ChatMessage],
        answer: &ChatMessage,
    ) {
        let prompt = transcript(self.system, &self.tools, input);
        let llm = start(&self.spec.model, &prompt);
        llm.request(&self.spec.params)
            .system_instructions(&[MessagePart::text(self.system)]);
        if !self.tools.is_empty() {
            llm.tool_definitions(&self.tools);
        }
        llm.input_messages(input)
            .output_messages(std::slice::from_ref(answer))
            .response(
                &self.response_id(cycle, turn),
                Usage {
                    input_tokens: tokens(&prompt),
                    output_tokens: tokens(&parts_text(&answer.parts)),
                },
            );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traj_schema::event::Verdict;

    #[test]
    fn answers_say_what_the_payloads_hold() {
        let output = PlannerOutput {
            plan: vec![PlanStep {
                index: 0,
                description: "read a.txt".into(),
                tool: Some("read_file".into()),
            }],
            rationale: "1 step(s) from step 0".into(),
            confidence: Some(0.7),
            llm_calls: vec![],
        };
        let plan: Value = serde_json::from_str(&plan_answer(&output).text()).unwrap();
        assert_eq!(
            plan,
            json!({"plan": [{"index": 0, "description": "read a.txt", "tool": "read_file"}],
                   "rationale": "1 step(s) from step 0"})
        );
        let verdict = VerifierOutput {
            verdict: Verdict::Replan,
            feedback: "step failed".into(),
            risk_flags: vec!["tool_failure".into()],
            confidence: None,
            llm_calls: vec![],
        };
        let text = verdict_answer(&verdict).text();
        assert!(text.starts_with(r#"{"verdict":"replan""#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["risk_flags"], json!(["tool_failure"]));
    }

    #[test]
    fn the_transcript_ends_where_the_answer_starts() {
        let tools = tools::tool_definitions();
        let msgs = [
            user("Read a.txt".into()),
            tool_call_answer("c1", "read_file", &json!({"path": "a.txt"})),
            tool_response("c1", tool_error("timeout", "no answer")),
        ];
        let t = transcript("sys", &tools, &msgs);
        assert!(t.starts_with("<|im_start|>system\nsys\n\n# Tools\n\n<tools>\n"));
        assert!(t.contains(r#""name":"submit_answer""#));
        assert!(t.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"arguments\":{\"path\":\"a.txt\"},\"name\":\"read_file\"}\n</tool_call><|im_end|>"
        ));
        assert!(t.contains("<tool_response>\n{\"error\":{\"message\":\"no answer\",\"type\":\"timeout\"}}\n</tool_response>"));
        assert!(t.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    }
}
