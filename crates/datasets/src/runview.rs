//! One run indexed for conversion: its events grouped into planner / worker / verifier stages in
//! time order (tool calls attached to the worker that made them), with human labels applied.
//! Every view, every labelling rule and every dedup key reads a run through this.

use crate::labels::Labels;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use traj_schema::event::{
    EnvObservation, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput, WorkerAction,
    WorkerInput, WorkerOutput, WorkerToolCall, WorkerToolResult,
};
use traj_schema::{Event, LlmCallRecord, Outcome, Payload, Session, ToolStatus, Verdict};

/// An `llm_call` event and its record.
pub type LlmCallRef<'a> = (&'a Event, &'a LlmCallRecord);

/// A planner span.
#[derive(Debug, Clone)]
pub struct PlanStage<'a> {
    pub span_id: &'a str,
    pub step: u32,
    /// The model calls the step made, in time order.
    pub llm_calls: Vec<LlmCallRef<'a>>,
    pub input: Option<(&'a Event, &'a PlannerInput)>,
    pub output: Option<(&'a Event, &'a PlannerOutput)>,
}

/// One tool execution (a tool span): the call and, if it ended, its result.
#[derive(Debug, Clone)]
pub struct ToolExec<'a> {
    pub span_id: &'a str,
    pub call: (&'a Event, &'a WorkerToolCall),
    pub result: Option<(&'a Event, &'a WorkerToolResult)>,
}

impl ToolExec<'_> {
    pub fn failed(&self) -> bool {
        matches!(self.result, Some((_, r)) if r.status == ToolStatus::Error)
    }
    pub fn succeeded(&self) -> bool {
        matches!(self.result, Some((_, r)) if r.status == ToolStatus::Ok)
    }
}

/// A worker span with its tool executions and observations.
#[derive(Debug, Clone)]
pub struct WorkStage<'a> {
    pub span_id: &'a str,
    pub step: u32,
    pub llm_calls: Vec<LlmCallRef<'a>>,
    pub input: Option<(&'a Event, &'a WorkerInput)>,
    /// The recorded action event and the effective action (after a human correction).
    pub action: Option<(&'a Event, WorkerAction)>,
    pub action_label: Option<String>,
    pub tools: Vec<ToolExec<'a>>,
    pub observations: Vec<(&'a Event, &'a EnvObservation)>,
    pub output: Option<(&'a Event, &'a WorkerOutput)>,
}

impl WorkStage<'_> {
    /// The worker step failed: its output says error, or its last tool execution failed.
    pub fn failed(&self) -> bool {
        match self.output {
            Some((_, o)) => o.status == ToolStatus::Error,
            None => self.tools.last().is_some_and(|t| t.failed()),
        }
    }
}

/// A verifier span, with the effective verdict (after a human correction).
#[derive(Debug, Clone)]
pub struct VerifyStage<'a> {
    pub span_id: &'a str,
    pub step: u32,
    pub llm_calls: Vec<LlmCallRef<'a>>,
    pub input: Option<(&'a Event, &'a VerifierInput)>,
    pub output: Option<(&'a Event, &'a VerifierOutput)>,
    /// Effective verdict and feedback (human label if any, else the recorded ones).
    pub verdict: Option<Verdict>,
    pub feedback: String,
    pub label: Option<String>,
}

impl VerifyStage<'_> {
    /// The verdict the agent recorded.
    pub fn recorded_verdict(&self) -> Option<Verdict> {
        self.output.map(|(_, o)| o.verdict)
    }

    /// `evidence.goal_met == true` in the verifier input: the environment check said the goal
    /// was already met when the verifier judged.
    pub fn goal_met(&self) -> bool {
        self.input
            .and_then(|(_, i)| i.evidence.get("goal_met"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone)]
pub enum Stage<'a> {
    Plan(PlanStage<'a>),
    Work(WorkStage<'a>),
    Verify(VerifyStage<'a>),
}

impl Stage<'_> {
    pub fn span_id(&self) -> &str {
        match self {
            Stage::Plan(p) => p.span_id,
            Stage::Work(w) => w.span_id,
            Stage::Verify(v) => v.span_id,
        }
    }
}

/// A run ready for conversion.
#[derive(Debug, Clone)]
pub struct RunIndex<'a> {
    pub session: &'a Session,
    pub stages: Vec<Stage<'a>>,
    pub end: Option<&'a Event>,
    pub errors: Vec<&'a Event>,
    /// Final outcome (human label if any, else `episode_end`, else the session summary).
    pub outcome: Outcome,
    pub failure_class: Option<String>,
    pub outcome_label: Option<String>,
    /// Keys of the human labels that matched something in this run.
    pub labels_used: BTreeSet<String>,
}

impl<'a> RunIndex<'a> {
    /// Indexes `events` (any order; they are taken in (time, event id) order).
    pub fn new(session: &'a Session, events: &'a [Event], labels: &Labels) -> RunIndex<'a> {
        let mut order: Vec<&'a Event> = events.iter().collect();
        order.sort_by(|a, b| (a.time_unix_nano, &a.event_id).cmp(&(b.time_unix_nano, &b.event_id)));
        let mut ix = Indexer {
            labels,
            by_id: order.iter().map(|e| (e.event_id.as_str(), *e)).collect(),
            stages: Vec::new(),
            slot: BTreeMap::new(),
            tool_slot: BTreeMap::new(),
            labels_used: BTreeSet::new(),
            end: None,
            errors: Vec::new(),
        };
        for e in &order {
            ix.add(e);
        }
        let (outcome, failure_class, outcome_label) = ix.final_outcome(session);
        RunIndex {
            session,
            stages: ix.stages,
            end: ix.end,
            errors: ix.errors,
            outcome,
            failure_class,
            outcome_label,
            labels_used: ix.labels_used,
        }
    }

    pub fn plans(&self) -> impl Iterator<Item = (usize, &PlanStage<'a>)> {
        self.stages.iter().enumerate().filter_map(|(i, s)| match s {
            Stage::Plan(p) => Some((i, p)),
            _ => None,
        })
    }

    pub fn works(&self) -> impl Iterator<Item = (usize, &WorkStage<'a>)> {
        self.stages.iter().enumerate().filter_map(|(i, s)| match s {
            Stage::Work(w) => Some((i, w)),
            _ => None,
        })
    }

    pub fn verifies(&self) -> impl Iterator<Item = (usize, &VerifyStage<'a>)> {
        self.stages.iter().enumerate().filter_map(|(i, s)| match s {
            Stage::Verify(v) => Some((i, v)),
            _ => None,
        })
    }

    /// The last plan before stage `i`.
    pub fn plan_before(&self, i: usize) -> Option<&PlanStage<'a>> {
        self.stages[..i.min(self.stages.len())]
            .iter()
            .rev()
            .find_map(|s| match s {
                Stage::Plan(p) => Some(p),
                _ => None,
            })
    }

    /// The first plan after stage `i`.
    pub fn plan_after(&self, i: usize) -> Option<&PlanStage<'a>> {
        self.stages.iter().skip(i + 1).find_map(|s| match s {
            Stage::Plan(p) => Some(p),
            _ => None,
        })
    }

    /// Worker stages between the previous verifier (or plan) and stage `i`: the cycle judged.
    pub fn cycle_works(&self, i: usize) -> Vec<&WorkStage<'a>> {
        let mut out = Vec::new();
        for s in self.stages[..i.min(self.stages.len())].iter().rev() {
            match s {
                Stage::Work(w) => out.push(w),
                _ => break,
            }
        }
        out.reverse();
        out
    }
}

/// Builds the stages of a run, one event at a time in time order.
struct Indexer<'a, 'l> {
    labels: &'l Labels,
    by_id: BTreeMap<&'a str, &'a Event>,
    stages: Vec<Stage<'a>>,
    /// Stage of each planner / worker / verifier span.
    slot: BTreeMap<&'a str, usize>,
    /// (stage, tool index) of each tool span.
    tool_slot: BTreeMap<&'a str, (usize, usize)>,
    labels_used: BTreeSet<String>,
    end: Option<&'a Event>,
    errors: Vec<&'a Event>,
}

impl<'a> Indexer<'a, '_> {
    fn add(&mut self, e: &'a Event) {
        let sid = e.span_id.as_str();
        match &e.payload {
            Payload::PlannerInput(p) => {
                if let Stage::Plan(s) = self.plan(sid, e.step) {
                    s.input = Some((e, p));
                }
            }
            Payload::PlannerOutput(p) => {
                if let Stage::Plan(s) = self.plan(sid, e.step) {
                    s.output = Some((e, p));
                }
            }
            Payload::WorkerInput(p) => {
                if let Stage::Work(s) = self.work(sid, e.step) {
                    s.input = Some((e, p));
                }
            }
            Payload::WorkerAction(p) => self.add_action(e, p),
            Payload::WorkerOutput(p) => {
                if let Stage::Work(s) = self.work(sid, e.step) {
                    s.output = Some((e, p));
                }
            }
            Payload::WorkerToolCall(p) => self.add_tool_call(e, p),
            Payload::WorkerToolResult(p) => {
                if let Some((i, j)) = self.tool_slot.get(sid).copied() {
                    if let Stage::Work(s) = &mut self.stages[i] {
                        s.tools[j].result = Some((e, p));
                    }
                }
            }
            Payload::EnvObservation(p) => {
                let owner = match self.tool_slot.get(sid) {
                    Some((i, _)) => Some(*i),
                    None => self.slot.get(sid).copied(),
                };
                if let Some(Stage::Work(s)) = owner.map(|i| &mut self.stages[i]) {
                    s.observations.push((e, p));
                }
            }
            Payload::VerifierInput(p) => {
                if let Stage::Verify(s) = self.verify(sid, e.step) {
                    s.input = Some((e, p));
                }
            }
            Payload::VerifierOutput(p) => self.add_verdict(e, p),
            Payload::EpisodeEnd(_) => self.end = Some(e),
            Payload::EpisodeError(_) => self.errors.push(e),
            Payload::LlmCall(call) => {
                // Under the input event of the step that made it.
                let owner = e
                    .parent_event_id
                    .as_deref()
                    .and_then(|p| self.by_id.get(p))
                    .map(|p| p.span_id.as_str());
                if let Some(i) = owner.and_then(|o| self.slot.get(o).copied()) {
                    stage_llm_calls(&mut self.stages[i]).push((e, call));
                }
            }
            Payload::OrchestratorTransition(_) => {}
        }
    }

    fn plan(&mut self, sid: &'a str, step: u32) -> &mut Stage<'a> {
        let i = plan_slot(&mut self.stages, &mut self.slot, sid, step);
        &mut self.stages[i]
    }

    fn work(&mut self, sid: &'a str, step: u32) -> &mut Stage<'a> {
        let i = work_slot(&mut self.stages, &mut self.slot, sid, step);
        &mut self.stages[i]
    }

    fn verify(&mut self, sid: &'a str, step: u32) -> &mut Stage<'a> {
        let i = verify_slot(&mut self.stages, &mut self.slot, sid, step);
        &mut self.stages[i]
    }

    /// The worker's action, with a human correction applied.
    fn add_action(&mut self, e: &'a Event, p: &WorkerAction) {
        let sid = e.span_id.as_str();
        let mut action = p.clone();
        let mut label = None;
        if let Some((k, patch)) = self.labels.action_for(&e.event_id, sid) {
            apply_action_patch(&mut action, &patch);
            self.labels_used.insert(k.clone());
            label = Some(k);
        }
        if let Stage::Work(s) = self.work(sid, e.step) {
            s.action = Some((e, action));
            s.action_label = label;
        }
    }

    /// A tool call belongs to the span of the nearest worker-role ancestor event.
    fn add_tool_call(&mut self, e: &'a Event, p: &'a WorkerToolCall) {
        let sid = e.span_id.as_str();
        let owner = ancestor_worker_span(e, &self.by_id).unwrap_or(sid);
        let i = work_slot(&mut self.stages, &mut self.slot, owner, e.step);
        if let Stage::Work(s) = &mut self.stages[i] {
            self.tool_slot.insert(sid, (i, s.tools.len()));
            s.tools.push(ToolExec {
                span_id: sid,
                call: (e, p),
                result: None,
            });
        }
    }

    /// The verifier's verdict, with a human correction applied.
    fn add_verdict(&mut self, e: &'a Event, p: &'a VerifierOutput) {
        let sid = e.span_id.as_str();
        let label = self.labels.verdict_for(&e.event_id, sid);
        let mut used = None;
        if let Stage::Verify(s) = self.verify(sid, e.step) {
            s.output = Some((e, p));
            s.verdict = Some(p.verdict);
            s.feedback = p.feedback.clone();
            if let Some((k, o)) = label {
                s.verdict = Some(o.verdict);
                if let Some(f) = o.feedback {
                    s.feedback = f;
                }
                s.label = Some(k.clone());
                used = Some(k);
            }
        }
        self.labels_used.extend(used);
    }

    /// Final outcome and failure class: a human label, else `episode_end`, else the summary.
    fn final_outcome(&mut self, session: &Session) -> (Outcome, Option<String>, Option<String>) {
        let (mut outcome, mut failure_class) = match self.end.map(|e| &e.payload) {
            Some(Payload::EpisodeEnd(p)) => (p.outcome, p.failure_class.clone()),
            _ => (
                session.summary.outcome,
                session.summary.failure_class.clone(),
            ),
        };
        let root_span = self.end.map(|e| e.span_id.as_str()).unwrap_or("");
        let end_id = self.end.map(|e| e.event_id.as_str()).unwrap_or("");
        let mut outcome_label = None;
        if let Some((k, o)) = self.labels.outcome_for(end_id, root_span) {
            if o != outcome {
                failure_class = match o {
                    Outcome::Success => None,
                    _ => Some("human_label".to_string()),
                };
            }
            outcome = o;
            self.labels_used.insert(k.clone());
            outcome_label = Some(k);
        }
        (outcome, failure_class, outcome_label)
    }
}

/// The LLM calls of a stage, whatever its role.
fn stage_llm_calls<'s, 'a>(s: &'s mut Stage<'a>) -> &'s mut Vec<LlmCallRef<'a>> {
    match s {
        Stage::Plan(p) => &mut p.llm_calls,
        Stage::Work(w) => &mut w.llm_calls,
        Stage::Verify(v) => &mut v.llm_calls,
    }
}

fn slot_of<'a>(
    stages: &mut Vec<Stage<'a>>,
    slot: &mut BTreeMap<&'a str, usize>,
    sid: &'a str,
    make: impl FnOnce() -> Stage<'a>,
) -> usize {
    *slot.entry(sid).or_insert_with(|| {
        stages.push(make());
        stages.len() - 1
    })
}

fn plan_slot<'a>(
    stages: &mut Vec<Stage<'a>>,
    slot: &mut BTreeMap<&'a str, usize>,
    sid: &'a str,
    step: u32,
) -> usize {
    slot_of(stages, slot, sid, || {
        Stage::Plan(PlanStage {
            span_id: sid,
            step,
            llm_calls: Vec::new(),
            input: None,
            output: None,
        })
    })
}

fn work_slot<'a>(
    stages: &mut Vec<Stage<'a>>,
    slot: &mut BTreeMap<&'a str, usize>,
    sid: &'a str,
    step: u32,
) -> usize {
    slot_of(stages, slot, sid, || {
        Stage::Work(WorkStage {
            span_id: sid,
            step,
            llm_calls: Vec::new(),
            input: None,
            action: None,
            action_label: None,
            tools: Vec::new(),
            observations: Vec::new(),
            output: None,
        })
    })
}

fn verify_slot<'a>(
    stages: &mut Vec<Stage<'a>>,
    slot: &mut BTreeMap<&'a str, usize>,
    sid: &'a str,
    step: u32,
) -> usize {
    slot_of(stages, slot, sid, || {
        Stage::Verify(VerifyStage {
            span_id: sid,
            step,
            llm_calls: Vec::new(),
            input: None,
            output: None,
            verdict: None,
            feedback: String::new(),
            label: None,
        })
    })
}

/// Follows `parent_event_id` up to the first worker-role event (bounded, so a cycle cannot loop).
fn ancestor_worker_span<'a>(e: &'a Event, by_id: &BTreeMap<&str, &'a Event>) -> Option<&'a str> {
    let mut cur = e;
    for _ in 0..64 {
        let parent = by_id.get(cur.parent_event_id.as_deref()?)?;
        if parent.role == traj_schema::Role::Worker {
            return Some(parent.span_id.as_str());
        }
        cur = parent;
    }
    None
}

fn apply_action_patch(action: &mut WorkerAction, patch: &Value) {
    if let Some(a) = patch.get("action").and_then(Value::as_str) {
        action.action = a.to_string();
    }
    match patch.get("tool") {
        Some(Value::String(t)) => action.tool = Some(t.clone()),
        Some(Value::Null) => action.tool = None,
        _ => {}
    }
    if let Some(args) = patch.get("arguments") {
        action.arguments = args.clone();
    }
    if let Some(r) = patch.get("reasoning").and_then(Value::as_str) {
        action.reasoning = r.to_string();
    }
}
