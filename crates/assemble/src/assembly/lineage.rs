//! Phases 4 and 6: the parents of input events (span links, owners, ancestor chains), then the
//! event ids and every deferred parent, giving the final events and the lineage counts.

use super::drafts::{Drafts, Par};
use super::tree::Tree;
use crate::span_index::Chain;
use crate::warnings::Warnings;
use traj_schema::event::event_id;
use traj_schema::ids;
use traj_schema::{time_fmt, Event, EventType, Lineage, LineageStats, Role, SCHEMA_VERSION};

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

fn chain_parent(c: Chain) -> Par {
    match c {
        Chain::Rooted => Par::Root,
        Chain::Missing(p) | Chain::Cycle(p) => Par::Broken(p),
    }
}

/// A tool call hangs under its worker's action (another owner's input); a step input under
/// the output of the span it links to (by role preference), else — no link at all — the
/// previous step's output, so a run has one root.
pub(super) fn link_inputs(tree: &Tree, trace_id: &[u8; 16], drafts: &mut Drafts, w: &mut Warnings) {
    for i in 0..tree.len() {
        let (Some(role), Some(input)) = (tree.role(i), drafts.slots[i].input) else {
            continue;
        };
        let parent = if role == Role::Tool {
            match tree.owner[i] {
                Some(o) => match tree.role(o) {
                    Some(Role::Worker) => drafts.slots[o].action.map(Par::Event),
                    _ => drafts.slots[o].input.map(Par::Event),
                }
                .unwrap_or(Par::Root),
                None => chain_parent(tree.chain[i]),
            }
        } else {
            linked_parent(tree, trace_id, i, role, drafts, w)
        };
        drafts.list[input].parent = parent;
    }
}

fn linked_parent(
    tree: &Tree,
    trace_id: &[u8; 16],
    i: usize,
    role: Role,
    drafts: &Drafts,
    w: &mut Warnings,
) -> Par {
    let nd = &tree.idx.nodes[i];
    let mut best: Option<(u8, usize)> = None;
    let mut missing: Option<[u8; 8]> = None;
    for l in &nd.rec.span.links {
        if !l.trace_id.is_empty() && l.trace_id.as_slice() != trace_id.as_slice() {
            continue; // a link to another trace is not lineage within this run
        }
        let Some(lid) = ids::span_id(&l.span_id) else {
            continue;
        };
        match tree.idx.by_id.get(&lid) {
            Some(&t) if t != i => {
                let (Some(tr), Some(out)) = (tree.role(t), drafts.slots[t].output) else {
                    continue;
                };
                let rank = link_rank(role, tr);
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, out));
                }
            }
            Some(_) => {}
            None => {
                missing.get_or_insert(lid);
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
        (None, None) => match tree.chain[i] {
            Chain::Rooted => Par::PrevStep,
            c => chain_parent(c),
        },
    }
}

/// Gives every draft its id, resolves the deferred parents, and returns the events sorted by
/// (time, event id) with the lineage counts.
pub(super) fn into_events(
    tree: &Tree,
    trace_hex: &str,
    drafts: Drafts,
    stats: &mut LineageStats,
) -> Vec<Event> {
    let mut list = drafts.list;
    let ids: Vec<String> = list
        .iter()
        .map(|d| event_id(trace_hex, &tree.idx.nodes[d.node].hex, d.ty, d.ordinal))
        .collect();
    let by_time_then_id = |a: &usize, b: &usize| {
        list[*a]
            .time
            .cmp(&list[*b].time)
            .then_with(|| ids[*a].cmp(&ids[*b]))
    };
    let mut role_order: Vec<usize> = (0..list.len()).filter(|&d| list[d].role_event).collect();
    role_order.sort_unstable_by(by_time_then_id);
    let step_outputs: Vec<usize> = role_order
        .iter()
        .copied()
        .filter(|&x| {
            matches!(
                list[x].ty,
                EventType::PlannerOutput | EventType::WorkerOutput | EventType::VerifierOutput
            )
        })
        .collect();
    let resolved: Vec<Par> = (0..list.len())
        .map(|d| {
            let t = list[d].time;
            match list[d].parent {
                Par::LastBefore => {
                    let k = role_order.partition_point(|&x| list[x].time <= t);
                    match k.checked_sub(1).map(|k| role_order[k]) {
                        Some(p) if p != d => Par::Event(p),
                        _ => Par::Root,
                    }
                }
                Par::LastAny => (0..list.len())
                    .filter(|&x| x != d && list[x].time <= t)
                    .max_by(by_time_then_id)
                    .map(Par::Event)
                    .unwrap_or(Par::Root),
                Par::PrevStep => {
                    let k = step_outputs.partition_point(|&x| list[x].time <= t);
                    // A step's own output can share its input's time (zero-length span).
                    step_outputs[..k]
                        .iter()
                        .rev()
                        .find(|&&x| list[x].node != list[d].node)
                        .map(|&x| Par::Event(x))
                        .unwrap_or(Par::Root)
                }
                Par::Pending => Par::Root,
                p => p,
            }
        })
        .collect();
    for (d, p) in resolved.into_iter().enumerate() {
        list[d].parent = p;
    }
    let mut events: Vec<Event> = Vec::with_capacity(list.len());
    for (d, id) in list.into_iter().zip(ids.iter()) {
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
            run_id: trace_hex.to_owned(),
            trace_id: trace_hex.to_owned(),
            span_id: tree.idx.nodes[d.node].hex.clone(),
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
    events
}
