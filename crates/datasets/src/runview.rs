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
        let by_id: BTreeMap<&str, &'a Event> =
            order.iter().map(|e| (e.event_id.as_str(), *e)).collect();

        let mut stages: Vec<Stage<'a>> = Vec::new();
        let mut slot: BTreeMap<&'a str, usize> = BTreeMap::new();
        let mut tool_slot: BTreeMap<&'a str, (usize, usize)> = BTreeMap::new();
        let mut labels_used = BTreeSet::new();
        let mut end = None;
        let mut errors = Vec::new();

        for e in &order {
            let sid = e.span_id.as_str();
            match &e.payload {
                Payload::PlannerInput(p) => {
                    let i = plan_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Plan(s) = &mut stages[i] {
                        s.input = Some((e, p));
                    }
                }
                Payload::PlannerOutput(p) => {
                    let i = plan_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Plan(s) = &mut stages[i] {
                        s.output = Some((e, p));
                    }
                }
                Payload::WorkerInput(p) => {
                    let i = work_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Work(s) = &mut stages[i] {
                        s.input = Some((e, p));
                    }
                }
                Payload::WorkerAction(p) => {
                    let i = work_slot(&mut stages, &mut slot, sid, e.step);
                    let mut action = p.clone();
                    let mut label = None;
                    if let Some((k, patch)) = labels.action_for(&e.event_id, sid) {
                        apply_action_patch(&mut action, &patch);
                        labels_used.insert(k.clone());
                        label = Some(k);
                    }
                    if let Stage::Work(s) = &mut stages[i] {
                        s.action = Some((e, action));
                        s.action_label = label;
                    }
                }
                Payload::WorkerOutput(p) => {
                    let i = work_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Work(s) = &mut stages[i] {
                        s.output = Some((e, p));
                    }
                }
                Payload::WorkerToolCall(p) => {
                    // The worker is the span of the nearest worker-role ancestor event.
                    let owner = ancestor_worker_span(e, &by_id).unwrap_or(sid);
                    let i = work_slot(&mut stages, &mut slot, owner, e.step);
                    if let Stage::Work(s) = &mut stages[i] {
                        tool_slot.insert(sid, (i, s.tools.len()));
                        s.tools.push(ToolExec {
                            span_id: sid,
                            call: (e, p),
                            result: None,
                        });
                    }
                }
                Payload::WorkerToolResult(p) => {
                    if let Some((i, j)) = tool_slot.get(sid).copied() {
                        if let Stage::Work(s) = &mut stages[i] {
                            s.tools[j].result = Some((e, p));
                        }
                    }
                }
                Payload::EnvObservation(p) => {
                    let owner = match tool_slot.get(sid) {
                        Some((i, _)) => Some(*i),
                        None => slot.get(sid).copied(),
                    };
                    if let Some(i) = owner {
                        if let Stage::Work(s) = &mut stages[i] {
                            s.observations.push((e, p));
                        }
                    }
                }
                Payload::VerifierInput(p) => {
                    let i = verify_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Verify(s) = &mut stages[i] {
                        s.input = Some((e, p));
                    }
                }
                Payload::VerifierOutput(p) => {
                    let i = verify_slot(&mut stages, &mut slot, sid, e.step);
                    if let Stage::Verify(s) = &mut stages[i] {
                        s.output = Some((e, p));
                        s.verdict = Some(p.verdict);
                        s.feedback = p.feedback.clone();
                        if let Some((k, o)) = labels.verdict_for(&e.event_id, sid) {
                            s.verdict = Some(o.verdict);
                            if let Some(f) = o.feedback {
                                s.feedback = f;
                            }
                            labels_used.insert(k.clone());
                            s.label = Some(k);
                        }
                    }
                }
                Payload::EpisodeEnd(_) => end = Some(*e),
                Payload::EpisodeError(_) => errors.push(*e),
                Payload::LlmCall(call) => {
                    // Under the input event of the step that made it.
                    let owner = e
                        .parent_event_id
                        .as_deref()
                        .and_then(|p| by_id.get(p))
                        .map(|p| p.span_id.as_str());
                    if let Some(i) = owner.and_then(|o| slot.get(o).copied()) {
                        stage_llm_calls(&mut stages[i]).push((e, call));
                    }
                }
                Payload::OrchestratorTransition(_) => {}
            }
        }

        let (mut outcome, mut failure_class) = match end.map(|e| &e.payload) {
            Some(Payload::EpisodeEnd(p)) => (p.outcome, p.failure_class.clone()),
            _ => (
                session.summary.outcome,
                session.summary.failure_class.clone(),
            ),
        };
        let mut outcome_label = None;
        let root_span = end.map(|e| e.span_id.as_str()).unwrap_or("");
        let end_id = end.map(|e| e.event_id.as_str()).unwrap_or("");
        if let Some((k, o)) = labels.outcome_for(end_id, root_span) {
            if o != outcome {
                failure_class = match o {
                    Outcome::Success => None,
                    _ => Some("human_label".to_string()),
                };
            }
            outcome = o;
            labels_used.insert(k.clone());
            outcome_label = Some(k);
        }

        RunIndex {
            session,
            stages,
            end,
            errors,
            outcome,
            failure_class,
            outcome_label,
            labels_used,
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

    /// True when any row of this run is affected by a human label.
    pub fn any_human_label(&self) -> bool {
        !self.labels_used.is_empty()
    }
}

/// Index of the stage of span `sid`, created by `make` the first time the span is seen.
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
