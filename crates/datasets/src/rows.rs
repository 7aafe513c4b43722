//! The format-neutral row of a dataset view (prompt messages, completion, tools, lineage
//! metadata) and its rendering as TRL conversational JSON or OpenAI fine-tuning JSON.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The dataset views (one JSONL file each per split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    PlannerSft,
    WorkerSft,
    VerifierSft,
    VerifierPrefPairs,
    WorkerRecoveryCases,
    /// Unpaired preference (KTO): verifier answers labelled by ex-post correctness.
    VerifierKto,
    /// Unpaired preference (KTO): worker actions labelled by their tool outcome.
    WorkerKto,
    /// Stepwise supervision (process reward models): a plan's worker steps, one label each.
    WorkerPrm,
}

impl View {
    pub const ALL: [View; 8] = [
        View::PlannerSft,
        View::WorkerSft,
        View::VerifierSft,
        View::VerifierPrefPairs,
        View::WorkerRecoveryCases,
        View::VerifierKto,
        View::WorkerKto,
        View::WorkerPrm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            View::PlannerSft => "planner_sft",
            View::WorkerSft => "worker_sft",
            View::VerifierSft => "verifier_sft",
            View::VerifierPrefPairs => "verifier_pref_pairs",
            View::WorkerRecoveryCases => "worker_recovery_cases",
            View::VerifierKto => "verifier_kto",
            View::WorkerKto => "worker_kto",
            View::WorkerPrm => "worker_prm",
        }
    }

    pub fn parse(s: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The views a format writes: OpenAI fine-tuning has no unpaired or stepwise form.
    pub fn for_format(format: Format) -> &'static [View] {
        match format {
            Format::Trl => &View::ALL,
            Format::Openai => &View::ALL[..5],
        }
    }
}

/// Output format of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// TRL conversational: `messages` (SFT) or `prompt`/`chosen`/`rejected` (preference), with
    /// tool-call arguments as JSON objects and `metadata` in the row.
    #[default]
    Trl,
    /// OpenAI fine-tuning: `messages` + `tools` (SFT) or `input`/`preferred_output`/
    /// `non_preferred_output` (preference); tool-call arguments as JSON strings. OpenAI rejects
    /// unknown keys, so `metadata` goes to a line-aligned `<view>.metadata.jsonl` beside it.
    Openai,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "trl" => Some(Format::Trl),
            "openai" => Some(Format::Openai),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Trl => "trl",
            Format::Openai => "openai",
        }
    }
}

/// A tool call made by an assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub role: &'static str,
    pub content: String,
    pub tool_calls: Vec<Call>,
    /// For `tool` messages: the call answered and the tool's name.
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
}

impl Msg {
    pub fn system(content: &str) -> Msg {
        Msg::new("system", content.to_string())
    }
    pub fn user(content: String) -> Msg {
        Msg::new("user", content)
    }
    pub fn assistant(content: String) -> Msg {
        Msg::new("assistant", content)
    }
    pub fn assistant_call(content: String, call: Call) -> Msg {
        let mut m = Msg::new("assistant", content);
        m.tool_calls.push(call);
        m
    }
    pub fn tool(call_id: &str, name: &str, content: String) -> Msg {
        let mut m = Msg::new("tool", content);
        m.tool_call_id = Some(call_id.to_string());
        m.name = Some(name.to_string());
        m
    }
    /// A message of the given role (`system`, `user`, `assistant`, `tool`).
    pub fn with_role(role: &'static str, content: String) -> Msg {
        Msg::new(role, content)
    }
    fn new(role: &'static str, content: String) -> Msg {
        Msg {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    fn render(&self, format: Format) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), json!(self.role));
        m.insert("content".into(), json!(self.content));
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|c| match format {
                    Format::Trl => json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }),
                    Format::Openai => json!({
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": traj_schema::hashing::canonical_json(&c.arguments),
                        },
                    }),
                })
                .collect();
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), json!(id));
        }
        if let (Some(n), Format::Trl) = (&self.name, format) {
            m.insert("name".into(), json!(n));
        }
        Value::Object(m)
    }
}

/// What is wrong with an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    #[error("assistant turn with neither text nor tool calls")]
    Empty,
    #[error("tool call {0:?} has no name")]
    UnnamedCall(String),
}

/// A rule of the trainer formats that a row breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("empty prompt")]
    EmptyPrompt,
    #[error("message {0}: {1}")]
    Message(usize, TurnError),
    #[error("message {index}: tool result {id:?} answers no earlier tool call")]
    OrphanToolResult { index: usize, id: String },
    #[error("completion has role {0}")]
    CompletionRole(&'static str),
    #[error("completion: {0}")]
    Completion(TurnError),
    #[error("stepwise row with {steps} steps and {labels} labels")]
    StepLabels { steps: usize, labels: usize },
    #[error("step {0} is empty")]
    EmptyStep(usize),
}

fn check_assistant(m: &Msg) -> Result<(), TurnError> {
    if m.role != "assistant" {
        return Ok(());
    }
    if m.content.is_empty() && m.tool_calls.is_empty() {
        return Err(TurnError::Empty);
    }
    match m.tool_calls.iter().find(|c| c.name.is_empty()) {
        Some(c) => Err(TurnError::UnnamedCall(c.id.clone())),
        None => Ok(()),
    }
}

/// What the row teaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The assistant turn of an SFT row.
    Sft(Msg),
    /// A preference pair on the same prompt.
    Pref { chosen: Msg, rejected: Msg },
    /// One answer with a desirable / undesirable label (KTO).
    Unpaired { answer: Msg, label: bool },
    /// Steps of a process with one label each; the prompt is its first message's text.
    Stepwise {
        steps: Vec<String>,
        labels: Vec<bool>,
    },
}

/// One row of one view, before rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub view: View,
    pub prompt: Vec<Msg>,
    pub completion: Completion,
    /// Tool JSON schemas (`{"type": "function", "function": {...}}`).
    pub tools: Vec<Value>,
    pub metadata: Value,
}

impl Row {
    /// The rules both trainer formats share (TRL's chat templates and OpenAI's fine-tuning
    /// validator refuse rows that break them): a prompt; assistant turns that say something
    /// (text or tool calls with names); every tool message answering a tool call made earlier in
    /// the conversation; an SFT completion (or both preference sides) from the assistant.
    pub fn check(&self) -> Result<(), RowError> {
        if self.prompt.is_empty() {
            return Err(RowError::EmptyPrompt);
        }
        let mut call_ids: Vec<&str> = Vec::new();
        for (i, m) in self.prompt.iter().enumerate() {
            check_assistant(m).map_err(|e| RowError::Message(i, e))?;
            call_ids.extend(m.tool_calls.iter().map(|c| c.id.as_str()));
            if m.role == "tool" {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                if !call_ids.contains(&id) {
                    return Err(RowError::OrphanToolResult {
                        index: i,
                        id: id.to_owned(),
                    });
                }
            }
        }
        let answers: Vec<&Msg> = match &self.completion {
            Completion::Sft(a) | Completion::Unpaired { answer: a, .. } => vec![a],
            Completion::Pref { chosen, rejected } => vec![chosen, rejected],
            Completion::Stepwise { steps, labels } => {
                if steps.is_empty() || steps.len() != labels.len() {
                    return Err(RowError::StepLabels {
                        steps: steps.len(),
                        labels: labels.len(),
                    });
                }
                if let Some(i) = steps.iter().position(|s| s.is_empty()) {
                    return Err(RowError::EmptyStep(i));
                }
                vec![]
            }
        };
        for a in answers {
            if a.role != "assistant" {
                return Err(RowError::CompletionRole(a.role));
            }
            check_assistant(a).map_err(RowError::Completion)?;
        }
        Ok(())
    }

    /// Whether only the completion is to be learned, not the assistant turns of the prompt: a
    /// recovery case's prompt holds the failed calls, which must not be taught.
    pub fn completion_only(&self) -> bool {
        self.view == View::WorkerRecoveryCases
    }

    /// Renders the row; returns the row and, for OpenAI, the metadata line kept beside it.
    /// Objects are built from their parts (moved, not serialized again through `json!`);
    /// `Map` keeps its keys sorted, so the bytes are the same either way.
    pub fn render(&self, format: Format) -> (Value, Option<Value>) {
        let msgs = |ms: &[Msg]| Value::Array(ms.iter().map(|m| m.render(format)).collect());
        let one = |m: &Msg| msgs(std::slice::from_ref(m));
        let tools = || Value::Array(self.tools.clone());
        let meta = || self.metadata.clone();
        let with = |m: &Msg| {
            let mut all = self.prompt.clone();
            all.push(m.clone());
            all
        };
        match (format, &self.completion) {
            // TRL's prompt-completion form: SFTTrainer learns the completion only.
            (Format::Trl, Completion::Sft(a)) if self.completion_only() => (
                object([
                    ("prompt", msgs(&self.prompt)),
                    ("completion", one(a)),
                    ("tools", tools()),
                    ("metadata", meta()),
                ]),
                None,
            ),
            (Format::Trl, Completion::Sft(a)) => (
                object([
                    ("messages", msgs(&with(a))),
                    ("tools", tools()),
                    ("metadata", meta()),
                ]),
                None,
            ),
            (Format::Trl, Completion::Pref { chosen, rejected }) => (
                object([
                    ("prompt", msgs(&self.prompt)),
                    ("chosen", one(chosen)),
                    ("rejected", one(rejected)),
                    ("tools", tools()),
                    ("metadata", meta()),
                ]),
                None,
            ),
            (Format::Trl, Completion::Unpaired { answer, label }) => (
                object([
                    ("prompt", msgs(&self.prompt)),
                    ("completion", one(answer)),
                    ("label", json!(label)),
                    ("tools", tools()),
                    ("metadata", meta()),
                ]),
                None,
            ),
            // TRL's stepwise supervision is in the standard (text) form.
            (_, Completion::Stepwise { steps, labels }) => (
                object([
                    (
                        "prompt",
                        json!(self
                            .prompt
                            .first()
                            .map(|m| m.content.as_str())
                            .unwrap_or("")),
                    ),
                    ("completions", json!(steps)),
                    ("labels", json!(labels)),
                    ("metadata", meta()),
                ]),
                None,
            ),
            // Not written in OpenAI format (see `View::for_format`); rendered as an SFT row.
            (Format::Openai, Completion::Unpaired { answer, .. }) => (
                object([("messages", msgs(&with(answer))), ("tools", tools())]),
                Some(meta()),
            ),
            (Format::Openai, Completion::Sft(a)) => {
                let all = with(a);
                // OpenAI requires `parallel_tool_calls: true` when a turn makes several calls.
                let parallel = all.iter().any(|m| m.tool_calls.len() > 1);
                let mut rendered = msgs(&all);
                if self.completion_only() {
                    // `weight: 0`: the prompt's assistant turns are context, not taught.
                    if let Value::Array(list) = &mut rendered {
                        let n = list.len();
                        for m in list.iter_mut().take(n.saturating_sub(1)) {
                            if m["role"] == "assistant" {
                                m["weight"] = json!(0);
                            }
                        }
                    }
                }
                (
                    object([
                        ("messages", rendered),
                        ("tools", tools()),
                        ("parallel_tool_calls", Value::Bool(parallel)),
                    ]),
                    Some(meta()),
                )
            }
            (Format::Openai, Completion::Pref { chosen, rejected }) => (
                object([
                    (
                        "input",
                        object([("messages", msgs(&self.prompt)), ("tools", tools())]),
                    ),
                    ("preferred_output", one(chosen)),
                    ("non_preferred_output", one(rejected)),
                ]),
                Some(meta()),
            ),
        }
    }
}

/// A JSON object from its fields (moved in).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(completion: Completion) -> Row {
        Row {
            view: View::WorkerSft,
            prompt: vec![Msg::system("sys"), Msg::user("do it".into())],
            completion,
            tools: vec![json!({"type": "function", "function": {"name": "grep"}})],
            metadata: json!({"run_id": "r"}),
        }
    }

    #[test]
    fn trl_keeps_arguments_as_objects_openai_as_strings() {
        let call = Call {
            id: "c1".into(),
            name: "grep".into(),
            arguments: json!({"pattern": "x", "a": 1}),
        };
        let r = row(Completion::Sft(Msg::assistant_call("why".into(), call)));
        let (trl, side) = r.render(Format::Trl);
        assert!(side.is_none());
        assert_eq!(
            trl["messages"][2]["tool_calls"][0]["function"]["arguments"]["pattern"],
            "x"
        );
        assert_eq!(trl["metadata"]["run_id"], "r");
        let (oa, side) = r.render(Format::Openai);
        assert_eq!(
            oa["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"a":1,"pattern":"x"}"#
        );
        assert!(oa.get("metadata").is_none());
        assert_eq!(oa["parallel_tool_calls"], false, "one call per turn");
        assert_eq!(side.unwrap()["run_id"], "r");
    }

    #[test]
    fn rows_that_break_the_formats_rules_are_refused() {
        let call = Call {
            id: "c1".into(),
            name: "grep".into(),
            arguments: json!({}),
        };
        let mut ok = row(Completion::Sft(Msg::assistant("done".into())));
        ok.prompt.push(Msg::assistant_call(String::new(), call));
        ok.prompt.push(Msg::tool("c1", "grep", "x".into()));
        assert_eq!(ok.check(), Ok(()));
        let mut orphan = ok.clone();
        orphan.prompt.push(Msg::tool("c9", "grep", "x".into()));
        assert!(orphan
            .check()
            .unwrap_err()
            .to_string()
            .contains("answers no earlier tool call"));
        let empty = row(Completion::Sft(Msg::assistant(String::new())));
        assert_eq!(empty.check(), Err(RowError::Completion(TurnError::Empty)));
        let user = row(Completion::Sft(Msg::user("hi".into())));
        assert!(user.check().is_err());
    }

    #[test]
    fn recovery_cases_teach_only_the_recovering_turn() {
        let call = Call {
            id: "c1".into(),
            name: "grep".into(),
            arguments: json!({}),
        };
        let mut r = row(Completion::Sft(Msg::assistant("fixed".into())));
        r.view = View::WorkerRecoveryCases;
        r.prompt.push(Msg::assistant_call(String::new(), call));
        r.prompt.push(Msg::tool("c1", "grep", "error".into()));
        let (trl, _) = r.render(Format::Trl);
        assert!(trl.get("messages").is_none());
        assert_eq!(trl["prompt"].as_array().unwrap().len(), 4);
        assert_eq!(trl["completion"][0]["content"], "fixed");
        let (oa, _) = r.render(Format::Openai);
        assert_eq!(oa["messages"][2]["weight"], 0, "the failed call is context");
        assert!(
            oa["messages"][4].get("weight").is_none(),
            "the recovery is taught"
        );
    }

    #[test]
    fn preference_rows_use_each_formats_keys() {
        let r = row(Completion::Pref {
            chosen: Msg::assistant("good".into()),
            rejected: Msg::assistant("bad".into()),
        });
        let (trl, _) = r.render(Format::Trl);
        assert_eq!(trl["chosen"][0]["content"], "good");
        assert_eq!(trl["rejected"][0]["content"], "bad");
        assert_eq!(trl["prompt"].as_array().unwrap().len(), 2);
        let (oa, _) = r.render(Format::Openai);
        assert_eq!(oa["preferred_output"][0]["content"], "good");
        assert_eq!(oa["non_preferred_output"][0]["content"], "bad");
        assert_eq!(oa["input"]["messages"][1]["content"], "do it");
    }
}
