//! Phase 3: the events of step and tool spans (inputs, actions, tool calls and results,
//! outputs) and of LLM calls, with the facts later phases need (first goal, last verdict).

use super::children::{Children, Steps};
use super::drafts::{Draft, Drafts, Par, Slots};
use super::tree::Tree;
use crate::attributes::{attr_str, attr_u32};
use crate::payloads::{self as pl, Ctx};
use crate::rules::MappingRules;
use crate::warnings::Warnings;
use traj_schema::{keys, EventType, Payload, Role, Verdict};

/// What the step events tell the root events and the session.
#[derive(Default)]
pub(super) struct StepFacts {
    /// The first planner input's goal (the session's goal when the root carries none).
    pub first_goal: String,
    /// The verdict of the last verifier span, in start order.
    pub last_verdict: Option<Verdict>,
}

/// Drafts for one span: `push(time, type, parent, payload)` returns the draft's index.
struct SpanDrafts<'d, 'r> {
    drafts: &'d mut Drafts<'r>,
    node: usize,
    role: Role,
    step: u32,
    source: &'r str,
}

impl SpanDrafts<'_, '_> {
    fn push(&mut self, time: u64, ty: EventType, parent: Par, payload: Payload) -> usize {
        self.drafts.push(Draft {
            time,
            node: self.node,
            ty,
            ordinal: 0,
            role: self.role,
            step: self.step,
            parent,
            payload,
            source: self.source,
            role_event: true,
        })
    }
}

pub(super) fn step_and_tool_events<'r>(
    tree: &Tree<'_, 'r>,
    steps: &Steps,
    children: &mut Children,
    rules: &MappingRules,
    drafts: &mut Drafts<'r>,
    w: &mut Warnings,
) -> StepFacts {
    let mut facts = StepFacts::default();
    let root_goal = tree
        .root
        .and_then(|r| attr_str(&tree.idx.nodes[r].rec.span.attributes, keys::GOAL))
        .unwrap_or_default();
    for i in 0..tree.len() {
        let Some((role, source)) = tree.roles[i] else {
            continue;
        };
        let nd = &tree.idx.nodes[i];
        let sp = &nd.rec.span;
        let start = sp.start_time_unix_nano;
        let end = sp.end_time_unix_nano.max(start);
        let summaries = std::mem::take(&mut children.llm_summaries_of[i]);
        let mut c = Ctx {
            span: sp,
            hex: &nd.hex,
            native: tree.native,
            warnings: w,
            llm: &children.llm_records_of[i],
            rules,
        };
        let mut out = SpanDrafts {
            drafts,
            node: i,
            role,
            step: steps.of[i],
            source,
        };
        let slots = match role {
            Role::Planner => {
                let input = pl::planner_input(&mut c, root_goal);
                if facts.first_goal.is_empty() {
                    facts.first_goal = input.goal.clone();
                }
                let output = pl::planner_output(&mut c, summaries);
                let a = out.push(
                    start,
                    EventType::PlannerInput,
                    Par::Pending,
                    Payload::PlannerInput(input),
                );
                let b = out.push(
                    end,
                    EventType::PlannerOutput,
                    Par::Event(a),
                    Payload::PlannerOutput(output),
                );
                io_slots(a, None, b)
            }
            Role::Worker => {
                let tools = &children.tools_of[i];
                let input = pl::worker_input(&mut c);
                let first_tool = tools.first().map(|&t| {
                    let f = pl::tool_facts(&tree.idx.nodes[t].rec.span);
                    (f.tool, f.arguments)
                });
                let action = pl::worker_action(&mut c, first_tool);
                let retries = tools
                    .iter()
                    .filter(|&&t| {
                        attr_u32(&tree.idx.nodes[t].rec.span.attributes, keys::RETRY_ATTEMPT)
                            .is_some_and(|a| a > 1)
                    })
                    .count() as u32;
                let output = pl::worker_output(&mut c, retries, summaries);
                let acted = start.saturating_add(1);
                let a = out.push(
                    start,
                    EventType::WorkerInput,
                    Par::Pending,
                    Payload::WorkerInput(input),
                );
                let b = out.push(
                    acted,
                    EventType::WorkerAction,
                    Par::Event(a),
                    Payload::WorkerAction(action),
                );
                let o = out.push(
                    end.max(acted),
                    EventType::WorkerOutput,
                    Par::Event(b),
                    Payload::WorkerOutput(output),
                );
                io_slots(a, Some(b), o)
            }
            Role::Verifier => {
                let input = pl::verifier_input(&mut c);
                let output = pl::verifier_output(&mut c, summaries);
                facts.last_verdict = Some(output.verdict);
                let a = out.push(
                    start,
                    EventType::VerifierInput,
                    Par::Pending,
                    Payload::VerifierInput(input),
                );
                let b = out.push(
                    end,
                    EventType::VerifierOutput,
                    Par::Event(a),
                    Payload::VerifierOutput(output),
                );
                io_slots(a, None, b)
            }
            Role::Tool => {
                let f = pl::tool_facts(sp);
                let call = pl::tool_call(&f);
                let result = pl::tool_result(&mut c, f);
                let a = out.push(
                    start,
                    EventType::WorkerToolCall,
                    Par::Pending,
                    Payload::WorkerToolCall(call),
                );
                let b = out.push(
                    end,
                    EventType::WorkerToolResult,
                    Par::Event(a),
                    Payload::WorkerToolResult(result),
                );
                io_slots(a, None, b)
            }
            Role::Llm | Role::Run => continue,
        };
        drafts.slots[i] = slots;
    }
    facts
}

fn io_slots(input: usize, action: Option<usize>, output: usize) -> Slots {
    Slots {
        input: Some(input),
        action,
        output: Some(output),
    }
}

/// One `llm_call` event per LLM call of a step, at the call's end, under the step's input event.
pub(super) fn llm_call_events<'r>(
    tree: &Tree<'_, 'r>,
    steps: &Steps,
    children: &mut Children,
    drafts: &mut Drafts<'r>,
) {
    for o in 0..tree.len() {
        for (i, record) in std::mem::take(&mut children.llm_records_of[o]) {
            let sp = &tree.idx.nodes[i].rec.span;
            let parent = drafts.slots[o].input.map(Par::Event).unwrap_or(Par::Root);
            drafts.push(Draft {
                time: sp.end_time_unix_nano.max(sp.start_time_unix_nano),
                node: i,
                ty: EventType::LlmCall,
                ordinal: 0,
                role: Role::Llm,
                step: steps.of[o],
                parent,
                payload: Payload::LlmCall(record),
                source: tree.source(i),
                role_event: true,
            });
        }
    }
}
