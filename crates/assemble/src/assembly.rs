//! [`assemble`]: the spans of one trace → one run (session + events), following the tables of
//! `docs/conventions.md` (native schema v2 traces) or the [`MappingRules`] (foreign traces).
//!
//! Deterministic by construction: spans are deduplicated by a total order and processed in
//! canonical order (start time, span id); event ids are content-derived; events are sorted by
//! (time, event id). Nothing walks the tree recursively.

// Per-span facts live in parallel vectors indexed by node; index loops read best here.
#![allow(clippy::needless_range_loop)]

use crate::attributes::{attr_str, attr_u32};
use crate::llm_calls::{llm_convention, read_call};
use crate::log_record::LogEntry;
use crate::payloads::{self as pl, Ctx};
use crate::rules::MappingRules;
use crate::session_builder::{build_session, RunFacts};
use crate::span_index::{Chain, ParentSlot, SpanIndex};
use crate::span_record::{span_id_bytes, SpanRecord};
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use std::collections::BTreeMap;
use std::collections::HashMap;
use traj_schema::event::{event_id, EpisodeEnd, EpisodeError, LlmCall};
use traj_schema::LlmCallRecord;
use traj_schema::{
    keys, time_fmt, Event, EventType, Lineage, LineageStats, Payload, Role, Session, SCHEMA_VERSION,
};

/// One assembled run, in memory (writing it is `traj-runs`' job).
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledRun {
    pub session: Session,
    /// Sorted by (`time_unix_nano`, `event_id`).
    pub events: Vec<Event>,
    /// Spans that mapped to no role (also in `session.lineage.unmapped_spans`).
    pub unmapped_spans: u64,
    /// Extra copies of an already-seen span id (also in `session.lineage.duplicate_spans`).
    pub duplicate_spans: u64,
    /// Spans skipped for a malformed span id or a trace id other than the run's.
    pub invalid_spans: u64,
    /// Problems met on the way (malformed payloads, broken links, cycles, ...), bounded.
    pub warnings: Vec<String>,
}

/// How an event's parent is found.
#[derive(Debug, Clone, Copy)]
enum Par {
    Root,
    Event(usize),
    Broken([u8; 8]),
    /// Resolved after all ids are known.
    Pending,
    /// The last role event at or before this time (episode_error, root span events).
    LastBefore,
    /// The last event of any kind at or before this time (episode_end).
    LastAny,
    /// The last step output (planner / worker / verifier) at or before this time, else root.
    PrevStep,
}

struct Draft<'a> {
    time: u64,
    node: usize,
    ty: EventType,
    ordinal: u32,
    role: Role,
    step: u32,
    parent: Par,
    payload: Payload,
    source: &'a str,
    /// Derived from a non-root span (a candidate for `LastBefore`).
    role_event: bool,
}

#[derive(Default, Clone, Copy)]
struct Slots {
    input: Option<usize>,
    action: Option<usize>,
    output: Option<usize>,
}

fn is_step_role(r: Role) -> bool {
    matches!(r, Role::Planner | Role::Worker | Role::Verifier)
}

fn chain_parent(c: Chain) -> Par {
    match c {
        Chain::Rooted => Par::Root,
        Chain::Missing(p) | Chain::Cycle(p) => Par::Broken(p),
    }
}

/// Preference of link targets for an input event: lower is better.
fn link_rank(input_role: Role, target: Role) -> u8 {
    match (input_role, target) {
        (Role::Planner, Role::Verifier) => 0,
        (Role::Worker, Role::Planner) => 0,
        (Role::Worker, Role::Verifier) => 1,
        (Role::Verifier, Role::Worker) => 0,
        _ => 9,
    }
}

/// Assembles the spans of one trace into a run. Never panics on malformed input: bad spans are
/// skipped and counted, bad payloads replaced by defaults and reported in `warnings`.
pub fn assemble(trace_id: [u8; 16], spans: &[SpanRecord], rules: &MappingRules) -> AssembledRun {
    assemble_with_logs(trace_id, spans, &[], rules)
}

/// [`assemble`] with the trace's OTLP log records (LLM content some instrumentations send as
/// logs), joined to their spans by span id whatever order they arrived in.
pub fn assemble_with_logs<'r>(
    trace_id: [u8; 16],
    spans: &[SpanRecord],
    logs: &[LogEntry],
    rules: &'r MappingRules,
) -> AssembledRun {
    let trace_hex = hex::encode(trace_id);
    let mut w = Warnings::default();
    let idx = SpanIndex::build(&trace_id, spans);
    let n = idx.nodes.len();
    if idx.invalid > 0 {
        w.push(format!(
            "{} spans skipped: malformed span id or foreign trace id",
            idx.invalid
        ));
    }

    // ---- roles -------------------------------------------------------------------------------
    // Native when any span speaks schema v2 (the root carries the version; without the root,
    // as after an idle-timeout, `traj.role` on the other spans still tells).
    let native = idx.nodes.iter().any(|nd| {
        let a = &nd.rec.span.attributes;
        crate::payloads::has(a, keys::SCHEMA_VERSION) || crate::payloads::has(a, keys::ROLE)
    });
    let mut roles: Vec<Option<(Role, &'r str)>> = Vec::with_capacity(n);
    for nd in &idx.nodes {
        let r = if native {
            match attr_str(&nd.rec.span.attributes, keys::ROLE) {
                Some(s) => match Role::parse(s) {
                    Some(r) => Some((r, "traj")),
                    None => {
                        w.push(format!("span {}: unknown traj.role {s:?}", nd.hex));
                        None
                    }
                },
                // Auto-instrumented children (no traj keys) that are LLM calls.
                None => llm_convention(&nd.rec.span).map(|c| (Role::Llm, c)),
            }
        } else {
            rules
                .match_span(&nd.rec.span)
                .map(|r| (r.role, r.name.as_str()))
                .or_else(|| llm_convention(&nd.rec.span).map(|c| (Role::Llm, c)))
        };
        roles.push(r);
    }
    let mut root = (0..n)
        .find(|&i| {
            matches!(roles[i], Some((Role::Run, _))) && idx.nodes[i].parent == ParentSlot::None
        })
        .or_else(|| (0..n).find(|&i| matches!(roles[i], Some((Role::Run, _)))));
    if root.is_none() && !native {
        // A foreign trace without a run span: its (first) parentless span stands for the run.
        root = (0..n).find(|&i| idx.nodes[i].parent == ParentSlot::None);
        if let Some(r) = root {
            if roles[r].is_none() {
                roles[r] = Some((Role::Run, "foreign.root"));
            }
        }
    }
    for i in 0..n {
        if Some(i) != root && matches!(roles[i], Some((Role::Run, _))) {
            w.push(format!(
                "span {}: a second run span; counted as unmapped",
                idx.nodes[i].hex
            ));
            roles[i] = None;
        }
    }
    let unmapped = roles.iter().filter(|r| r.is_none()).count() as u64;
    let logs_of = join_logs(&idx, logs, |i| role_of_node(&roles, i), &mut w);
    let role_of = |i: usize| roles[i].map(|(r, _)| r);
    let (owner, chain) = idx.owners(root, |i| role_of(i).is_some_and(is_step_role));
    for i in 0..n {
        if let Chain::Cycle(p) = chain[i] {
            if role_of(i).is_some() {
                w.push(format!(
                    "span {}: parent chain is a cycle (via {})",
                    idx.nodes[i].hex,
                    hex::encode(p)
                ));
            }
        }
    }

    // ---- steps, children per owner, counts ---------------------------------------------------
    let mut step = vec![0u32; n];
    let mut cycle = 0u32;
    let mut last_rank: Option<u8> = None;
    let mut max_step: Option<u32> = None;
    for i in 0..n {
        let rank = match role_of(i) {
            Some(Role::Planner) => 0u8,
            Some(Role::Worker) => 1,
            Some(Role::Verifier) => 2,
            _ => continue,
        };
        if last_rank.is_some_and(|l| rank <= l) {
            cycle += 1;
        }
        last_rank = Some(rank);
        let explicit = attr_u32(&idx.nodes[i].rec.span.attributes, keys::STEP);
        if native && explicit.is_none() {
            w.push(format!(
                "span {}: traj.step missing; derived {cycle} from start order",
                idx.nodes[i].hex
            ));
        }
        step[i] = explicit.unwrap_or(cycle);
        max_step = Some(max_step.map_or(step[i], |m: u32| m.max(step[i])));
    }
    let mut tools_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut llms_of: Vec<Vec<LlmCall>> = vec![Vec::new(); n];
    let mut records_of: Vec<Vec<(usize, LlmCallRecord)>> = vec![Vec::new(); n];
    let (mut llm_count, mut tool_count, mut tool_errors) = (0u32, 0u32, 0u32);
    let (mut in_tok, mut out_tok, mut cost) = (0u64, 0u64, 0f64);
    let mut observed_models: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..n {
        let nd = &idx.nodes[i];
        match role_of(i) {
            Some(Role::Tool) => {
                tool_count += 1;
                if pl::tool_is_error(&nd.rec.span) {
                    tool_errors += 1;
                }
                if let Some(o) = owner[i] {
                    step[i] = step[o];
                    tools_of[o].push(i);
                }
            }
            Some(Role::Llm) => {
                llm_count += 1;
                let record = read_call(&nd.rec.span, &nd.hex, &logs_of[i], &mut w);
                let call = pl::llm_call(&nd.rec.span, &nd.hex, &record);
                in_tok += call.input_tokens;
                out_tok += call.output_tokens;
                if let Some(p) = rules.prices.get(&call.model) {
                    cost += call.input_tokens as f64 / 1e6 * p.input_per_mtok
                        + call.output_tokens as f64 / 1e6 * p.output_per_mtok;
                }
                match owner[i] {
                    Some(o) => {
                        step[i] = step[o];
                        if let Some(r) = role_of(o) {
                            if !call.model.is_empty() {
                                observed_models
                                    .entry(r.as_str().to_owned())
                                    .or_insert_with(|| call.model.clone());
                            }
                        }
                        llms_of[o].push(call);
                        records_of[o].push((i, record));
                    }
                    None => w.push(format!(
                        "span {}: LLM call outside any planner/worker/verifier span",
                        nd.hex
                    )),
                }
            }
            _ => {}
        }
    }
    let max_step = max_step.unwrap_or(0);

    // ---- pass 1: span-derived events ----------------------------------------------------------
    let mut drafts: Vec<Draft<'r>> = Vec::with_capacity(n * 3);
    let mut slots = vec![Slots::default(); n];
    let mut fallback_goal = String::new();
    let mut last_verdict: Option<traj_schema::Verdict> = None;
    let root_goal = root
        .and_then(|r| attr_str(&idx.nodes[r].rec.span.attributes, keys::GOAL))
        .unwrap_or_default();
    for i in 0..n {
        let Some((role, source)) = roles[i] else {
            continue;
        };
        let nd = &idx.nodes[i];
        let sp = &nd.rec.span;
        let start = sp.start_time_unix_nano;
        let end = sp.end_time_unix_nano.max(start);
        let push = |drafts: &mut Vec<Draft<'r>>, time, ty, parent, payload| {
            drafts.push(Draft {
                time,
                node: i,
                ty,
                ordinal: 0,
                role,
                step: step[i],
                parent,
                payload,
                source,
                role_event: true,
            });
            drafts.len() - 1
        };
        let mut c = Ctx {
            span: sp,
            hex: &nd.hex,
            native,
            warnings: &mut w,
            llm: &records_of[i],
            rules,
        };
        match role {
            Role::Planner => {
                let input = pl::planner_input(&mut c, root_goal);
                if fallback_goal.is_empty() {
                    fallback_goal = input.goal.clone();
                }
                let output = pl::planner_output(&mut c, std::mem::take(&mut llms_of[i]));
                let a = push(
                    &mut drafts,
                    start,
                    EventType::PlannerInput,
                    Par::Pending,
                    Payload::PlannerInput(input),
                );
                let b = push(
                    &mut drafts,
                    end,
                    EventType::PlannerOutput,
                    Par::Event(a),
                    Payload::PlannerOutput(output),
                );
                slots[i] = Slots {
                    input: Some(a),
                    action: None,
                    output: Some(b),
                };
            }
            Role::Worker => {
                let input = pl::worker_input(&mut c);
                let first_tool = tools_of[i].first().map(|&t| {
                    let f = pl::tool_facts(&idx.nodes[t].rec.span);
                    (f.tool, f.arguments)
                });
                let action = pl::worker_action(&mut c, first_tool);
                let retries = tools_of[i]
                    .iter()
                    .filter(|&&t| {
                        attr_u32(&idx.nodes[t].rec.span.attributes, keys::RETRY_ATTEMPT)
                            .is_some_and(|a| a > 1)
                    })
                    .count() as u32;
                let output = pl::worker_output(&mut c, retries, std::mem::take(&mut llms_of[i]));
                let a = push(
                    &mut drafts,
                    start,
                    EventType::WorkerInput,
                    Par::Pending,
                    Payload::WorkerInput(input),
                );
                let b = push(
                    &mut drafts,
                    start.saturating_add(1),
                    EventType::WorkerAction,
                    Par::Event(a),
                    Payload::WorkerAction(action),
                );
                let o = push(
                    &mut drafts,
                    end.max(start.saturating_add(1)),
                    EventType::WorkerOutput,
                    Par::Event(b),
                    Payload::WorkerOutput(output),
                );
                slots[i] = Slots {
                    input: Some(a),
                    action: Some(b),
                    output: Some(o),
                };
            }
            Role::Verifier => {
                let input = pl::verifier_input(&mut c);
                let output = pl::verifier_output(&mut c, std::mem::take(&mut llms_of[i]));
                last_verdict = Some(output.verdict);
                let a = push(
                    &mut drafts,
                    start,
                    EventType::VerifierInput,
                    Par::Pending,
                    Payload::VerifierInput(input),
                );
                let b = push(
                    &mut drafts,
                    end,
                    EventType::VerifierOutput,
                    Par::Event(a),
                    Payload::VerifierOutput(output),
                );
                slots[i] = Slots {
                    input: Some(a),
                    action: None,
                    output: Some(b),
                };
            }
            Role::Tool => {
                let facts = pl::tool_facts(sp);
                let call = pl::tool_call(&facts);
                let result = pl::tool_result(&mut c, facts);
                let a = push(
                    &mut drafts,
                    start,
                    EventType::WorkerToolCall,
                    Par::Pending,
                    Payload::WorkerToolCall(call),
                );
                let b = push(
                    &mut drafts,
                    end,
                    EventType::WorkerToolResult,
                    Par::Event(a),
                    Payload::WorkerToolResult(result),
                );
                slots[i] = Slots {
                    input: Some(a),
                    action: None,
                    output: Some(b),
                };
            }
            Role::Llm | Role::Run => {}
        }
    }

    // ---- pass 1b: LLM calls, each under the input event of the step that made it --------------
    for o in 0..n {
        for (i, record) in std::mem::take(&mut records_of[o]) {
            let sp = &idx.nodes[i].rec.span;
            drafts.push(Draft {
                time: sp.end_time_unix_nano.max(sp.start_time_unix_nano),
                node: i,
                ty: EventType::LlmCall,
                ordinal: 0,
                role: Role::Llm,
                step: step[o],
                parent: slots[o].input.map(Par::Event).unwrap_or(Par::Root),
                payload: Payload::LlmCall(record),
                source: roles[i].map(|(_, s)| s).unwrap_or("traj"),
                role_event: true,
            });
        }
    }

    // ---- pass 2: parents of input events (links, owners, chains) ------------------------------
    for i in 0..n {
        let (Some(role), Some(input)) = (role_of(i), slots[i].input) else {
            continue;
        };
        let nd = &idx.nodes[i];
        let parent = if role == Role::Tool {
            match owner[i] {
                Some(o) => match role_of(o) {
                    Some(Role::Worker) => slots[o].action.map(Par::Event),
                    _ => slots[o].input.map(Par::Event),
                }
                .unwrap_or(Par::Root),
                None => chain_parent(chain[i]),
            }
        } else {
            let mut best: Option<(u8, usize)> = None;
            let mut missing: Option<[u8; 8]> = None;
            for l in &nd.rec.span.links {
                if !l.trace_id.is_empty() && l.trace_id.as_slice() != trace_id.as_slice() {
                    continue; // a link to another trace is not lineage within this run
                }
                let Some(lid) = span_id_bytes(&l.span_id) else {
                    continue;
                };
                match idx.by_id.get(&lid) {
                    Some(&t) if t != i => {
                        let (Some(tr), Some(out)) = (role_of(t), slots[t].output) else {
                            continue;
                        };
                        let rank = link_rank(role, tr);
                        if best.is_none_or(|(r, _)| rank < r) {
                            best = Some((rank, out));
                        }
                    }
                    Some(_) => {}
                    None => {
                        if missing.is_none() {
                            missing = Some(lid);
                        }
                    }
                }
            }
            match (best, missing) {
                (Some((_, out)), _) => Par::Event(out),
                (None, Some(m)) => {
                    w.push(format!(
                        "span {}: linked span {} never arrived",
                        nd.hex,
                        hex::encode(m)
                    ));
                    Par::Broken(m)
                }
                // No link: the step follows the previous step's output (one root per run).
                (None, None) => match chain[i] {
                    Chain::Rooted => Par::PrevStep,
                    c => chain_parent(c),
                },
            }
        };
        drafts[input].parent = parent;
    }

    // ---- pass 3: span events (transitions, observations) --------------------------------------
    let mut result_times: Vec<(u64, usize)> = Vec::new();
    for i in 0..n {
        let Some((role, source)) = roles[i] else {
            continue;
        };
        let sp = &idx.nodes[i].rec.span;
        if sp.events.is_empty() {
            continue;
        }
        let (mut n_tr, mut n_obs) = (0u32, 0u32);
        for ev in &sp.events {
            let is_tr = ev.name == keys::EVENT_TRANSITION;
            let is_obs = ev.name == keys::EVENT_OBSERVATION;
            if !is_tr && !is_obs {
                continue;
            }
            if role == Role::Llm {
                w.push(format!(
                    "span {}: {} on an LLM-call span ignored",
                    idx.nodes[i].hex, ev.name
                ));
                continue;
            }
            let time = if ev.time_unix_nano == 0 {
                sp.end_time_unix_nano.max(sp.start_time_unix_nano)
            } else {
                ev.time_unix_nano
            };
            let (ty, ordinal, payload, parent) = if is_tr {
                n_tr += 1;
                let parent = match role {
                    Role::Run => Par::LastBefore,
                    _ => slots[i].output.map(Par::Event).unwrap_or(Par::LastBefore),
                };
                (
                    EventType::OrchestratorTransition,
                    n_tr - 1,
                    Payload::OrchestratorTransition(pl::transition(&ev.attributes)),
                    parent,
                )
            } else {
                n_obs += 1;
                let default_source = match role {
                    Role::Tool => pl::tool_facts(sp).tool,
                    r => r.as_str().to_owned(),
                };
                // Candidates: the span's own events before its end, plus (on a worker) the
                // results of its tool calls; the last at or before the observation wins.
                result_times.clear();
                let own = [slots[i].input, slots[i].action];
                let mut cands: Vec<usize> = own.iter().flatten().copied().collect();
                if role == Role::Tool {
                    cands.extend(slots[i].output);
                }
                if role == Role::Worker {
                    cands.extend(tools_of[i].iter().filter_map(|&t| slots[t].output));
                }
                result_times.extend(cands.iter().map(|&d| (drafts[d].time, d)));
                let parent = match role {
                    Role::Run => Par::LastBefore,
                    _ => result_times
                        .iter()
                        .filter(|(t, _)| *t <= time)
                        .max_by_key(|(t, d)| (*t, *d))
                        .or_else(|| result_times.iter().min_by_key(|(t, d)| (*t, *d)))
                        .map(|&(_, d)| Par::Event(d))
                        .unwrap_or(Par::LastBefore),
                };
                (
                    EventType::EnvObservation,
                    n_obs - 1,
                    Payload::EnvObservation(pl::observation(&ev.attributes, &default_source)),
                    parent,
                )
            };
            drafts.push(Draft {
                time,
                node: i,
                ty,
                ordinal,
                role,
                step: if role == Role::Run { max_step } else { step[i] },
                parent,
                payload,
                source,
                role_event: role != Role::Run,
            });
        }
    }

    // ---- pass 4: root events ------------------------------------------------------------------
    let steps_taken = if (0..n).any(|i| role_of(i).is_some_and(is_step_role)) {
        max_step.saturating_add(1)
    } else {
        0
    };
    let mut run_outcome: Option<traj_schema::Outcome> = None;
    if let Some(r) = root {
        let sp = &idx.nodes[r].rec.span;
        let source = roles[r].map(|(_, s)| s).unwrap_or("traj");
        let end = sp.end_time_unix_nano.max(sp.start_time_unix_nano);
        let root_error = sp
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32);
        let exceptions: Vec<_> = sp
            .events
            .iter()
            .filter(|e| e.name == keys::EVENT_EXCEPTION)
            .collect();
        let mk = |time, ty, ordinal, parent, payload| Draft {
            time,
            node: r,
            ty,
            ordinal,
            role: Role::Run,
            step: max_step,
            parent,
            payload,
            source,
            role_event: false,
        };
        for (k, ev) in exceptions.iter().enumerate() {
            let fatal = root_error && k + 1 == exceptions.len();
            let time = if ev.time_unix_nano == 0 {
                end
            } else {
                ev.time_unix_nano
            };
            drafts.push(mk(
                time,
                EventType::EpisodeError,
                k as u32,
                Par::LastBefore,
                Payload::EpisodeError(pl::episode_error(&ev.attributes, fatal)),
            ));
        }
        if root_error && exceptions.is_empty() {
            let a = &sp.attributes;
            let class = attr_str(a, keys::ERROR_TYPE)
                .or_else(|| attr_str(a, keys::FAILURE_CLASS))
                .unwrap_or("error");
            drafts.push(mk(
                end,
                EventType::EpisodeError,
                0,
                Par::LastBefore,
                Payload::EpisodeError(EpisodeError {
                    error_class: class.to_owned(),
                    message: sp
                        .status
                        .as_ref()
                        .map(|s| s.message.clone())
                        .unwrap_or_default(),
                    fatal: true,
                }),
            ));
        }
        let outcome = match attr_str(&sp.attributes, keys::OUTCOME) {
            Some(o) => traj_schema::Outcome::parse(o),
            None if root_error => traj_schema::Outcome::Failure,
            None if !native
                && rules.facts.success_on_final_end
                && last_verdict == Some(traj_schema::Verdict::End) =>
            {
                traj_schema::Outcome::Success
            }
            None => traj_schema::Outcome::Unknown,
        };
        run_outcome = Some(outcome);
        drafts.push(mk(
            end,
            EventType::EpisodeEnd,
            0,
            Par::LastAny,
            Payload::EpisodeEnd(EpisodeEnd {
                outcome,
                steps: steps_taken,
                failure_class: attr_str(&sp.attributes, keys::FAILURE_CLASS).map(str::to_owned),
            }),
        ));
    }

    // ---- ids, deferred parents, events --------------------------------------------------------
    let ids: Vec<String> = drafts
        .iter()
        .map(|d| event_id(&trace_hex, &idx.nodes[d.node].hex, d.ty, d.ordinal))
        .collect();
    let mut role_order: Vec<usize> = (0..drafts.len())
        .filter(|&d| drafts[d].role_event)
        .collect();
    role_order.sort_unstable_by(|&a, &b| {
        drafts[a]
            .time
            .cmp(&drafts[b].time)
            .then_with(|| ids[a].cmp(&ids[b]))
    });
    let step_outputs: Vec<usize> = role_order
        .iter()
        .copied()
        .filter(|&x| {
            matches!(
                drafts[x].ty,
                EventType::PlannerOutput | EventType::WorkerOutput | EventType::VerifierOutput
            )
        })
        .collect();
    for d in 0..drafts.len() {
        let t = drafts[d].time;
        let resolved = match drafts[d].parent {
            Par::LastBefore => {
                let k = role_order.partition_point(|&x| drafts[x].time <= t);
                match k.checked_sub(1).map(|k| role_order[k]) {
                    Some(p) if p != d => Par::Event(p),
                    _ => Par::Root,
                }
            }
            Par::LastAny => (0..drafts.len())
                .filter(|&x| x != d && drafts[x].time <= t)
                .max_by(|&a, &b| {
                    drafts[a]
                        .time
                        .cmp(&drafts[b].time)
                        .then_with(|| ids[a].cmp(&ids[b]))
                })
                .map(Par::Event)
                .unwrap_or(Par::Root),
            Par::PrevStep => {
                let k = step_outputs.partition_point(|&x| drafts[x].time <= t);
                // A step's own output can share its input's time (zero-length span): skip it.
                step_outputs[..k]
                    .iter()
                    .rev()
                    .find(|&&x| drafts[x].node != drafts[d].node)
                    .map(|&x| Par::Event(x))
                    .unwrap_or(Par::Root)
            }
            Par::Pending => Par::Root,
            p => p,
        };
        drafts[d].parent = resolved;
    }

    let mut stats = LineageStats {
        spans: n as u64,
        events: drafts.len() as u64,
        unmapped_spans: unmapped,
        duplicate_spans: idx.duplicates,
        log_records: logs.len() as u64,
        ..Default::default()
    };
    let mut events: Vec<Event> = Vec::with_capacity(drafts.len());
    for (d, id) in drafts.into_iter().zip(ids.iter()) {
        let (parent_event_id, lineage, missing) = match d.parent {
            Par::Event(p) => (Some(ids[p].clone()), Lineage::Parent, None),
            Par::Broken(m) => (None, Lineage::Broken, Some(hex::encode(m))),
            _ => (None, Lineage::Root, None),
        };
        match lineage {
            Lineage::Root => stats.root_events += 1,
            Lineage::Parent => stats.parented_events += 1,
            Lineage::Broken => stats.orphan_events += 1,
        }
        events.push(Event {
            schema_version: SCHEMA_VERSION.to_owned(),
            run_id: trace_hex.clone(),
            trace_id: trace_hex.clone(),
            span_id: idx.nodes[d.node].hex.clone(),
            step: d.step,
            event_id: id.clone(),
            timestamp: time_fmt::rfc3339_from_unix_nanos(d.time),
            time_unix_nano: d.time,
            role: d.role,
            parent_event_id,
            lineage,
            missing_parent_span_id: missing,
            source: d.source.to_owned(),
            payload: d.payload,
        });
    }
    events.sort_unstable_by(|a, b| {
        a.time_unix_nano
            .cmp(&b.time_unix_nano)
            .then_with(|| a.event_id.cmp(&b.event_id))
    });

    // ---- session ------------------------------------------------------------------------------
    let source = if native {
        "traj".to_owned()
    } else {
        format!("foreign:{}", foreign_convention(&idx))
    };
    let min_start = idx
        .nodes
        .iter()
        .map(|nd| nd.rec.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let max_end = idx
        .nodes
        .iter()
        .map(|nd| nd.rec.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    let facts = RunFacts {
        trace_hex: &trace_hex,
        root: root.map(|r| idx.nodes[r].rec),
        root_span_seen: root.is_some(),
        source,
        fallback_service: idx
            .nodes
            .first()
            .map(|nd| &*nd.rec.service_name)
            .unwrap_or(""),
        min_start,
        max_end,
        step_count: steps_taken,
        llm_calls: llm_count,
        tool_calls: tool_count,
        tool_errors,
        input_tokens: in_tok,
        output_tokens: out_tok,
        cost_estimate_usd: cost,
        observed_models,
        fallback_goal,
        goal_family_keys: &rules.facts.goal_family_keys,
        outcome: run_outcome,
        lineage: stats,
    };
    let mut session = build_session(facts, &mut w);
    let warnings = w.finish();
    session.warnings.clone_from(&warnings);
    tracing::debug!(
        run_id = %trace_hex,
        spans = n,
        events = events.len(),
        unmapped,
        duplicates = idx.duplicates,
        warnings = warnings.len(),
        "assembled run"
    );
    AssembledRun {
        session,
        events,
        unmapped_spans: unmapped,
        duplicate_spans: idx.duplicates,
        invalid_spans: idx.invalid,
        warnings,
    }
}

/// `genai` when any span carries `gen_ai.*` operation names, else `openinference` when any
/// carries a span kind, else `other`.
fn foreign_convention(idx: &SpanIndex) -> &'static str {
    let any = |key: &str| {
        idx.nodes
            .iter()
            .any(|nd| crate::payloads::has(&nd.rec.span.attributes, key))
    };
    if any(keys::GEN_AI_OPERATION_NAME) {
        "genai"
    } else if any(keys::OPENINFERENCE_SPAN_KIND) {
        "openinference"
    } else {
        "other"
    }
}

fn role_of_node(roles: &[Option<(Role, &str)>], i: usize) -> Option<Role> {
    roles[i].map(|(r, _)| r)
}

/// The trace's log records by the node of the span they name, each list in time order. Records
/// naming no span, a span that never arrived, or a span that is not an LLM call are counted in a
/// warning (they stay in raw storage).
fn join_logs<'l>(
    idx: &SpanIndex,
    logs: &'l [LogEntry],
    role_of: impl Fn(usize) -> Option<Role>,
    w: &mut Warnings,
) -> Vec<Vec<&'l LogEntry>> {
    let mut out: Vec<Vec<&'l LogEntry>> = vec![Vec::new(); idx.nodes.len()];
    let (mut no_span, mut not_llm) = (0u64, 0u64);
    let mut missing: HashMap<[u8; 8], u64> = HashMap::new();
    for l in logs {
        let Some(sid) = l.span_id() else {
            no_span += 1;
            continue;
        };
        match idx.by_id.get(&sid) {
            Some(&i) if role_of(i) == Some(Role::Llm) => out[i].push(l),
            Some(_) => not_llm += 1,
            None => *missing.entry(sid).or_default() += 1,
        }
    }
    for list in &mut out {
        list.sort_by_key(|l| {
            (
                l.record
                    .time_unix_nano
                    .max(l.record.observed_time_unix_nano),
                l.record.event_name.clone(),
            )
        });
    }
    if no_span > 0 {
        w.push(format!(
            "{no_span} log records name no span; not joined (kept in raw storage)"
        ));
    }
    if not_llm > 0 {
        w.push(format!(
            "{not_llm} log records belong to spans that are not LLM calls; not used"
        ));
    }
    let mut missing: Vec<_> = missing.into_iter().collect();
    missing.sort();
    for (sid, count) in missing {
        w.push(format!(
            "{count} log records name span {} that never arrived; not joined (kept in raw storage)",
            hex::encode(sid)
        ));
    }
    out
}
