//! Phase 1: which role each span plays (schema v2 `traj.role`, else the mapping rules, else the
//! LLM-call conventions), which span is the run, and which step span owns each span.

use super::is_step_role;
use crate::attributes::{attr_str, has_attr};
use crate::llm_calls::llm_convention;
use crate::rules::MappingRules;
use crate::span_index::{Chain, ParentSlot, SpanIndex};
use crate::warnings::Warnings;
use traj_schema::{keys, Role};

/// The classified span tree of one trace.
pub(super) struct Tree<'i, 'r> {
    pub idx: &'i SpanIndex<'i>,
    /// The trace speaks schema v2 (some span carries `traj.schema_version` or `traj.role`).
    pub native: bool,
    /// Role and event `source` of each node; `None`: unmapped.
    pub roles: Vec<Option<(Role, &'r str)>>,
    pub root: Option<usize>,
    /// Nearest planner / worker / verifier ancestor of each node.
    pub owner: Vec<Option<usize>>,
    /// What each node's ancestor chain ends in.
    pub chain: Vec<Chain>,
    pub unmapped: u64,
}

impl<'i, 'r> Tree<'i, 'r> {
    pub fn classify(idx: &'i SpanIndex<'i>, rules: &'r MappingRules, w: &mut Warnings) -> Self {
        // Native when any span speaks schema v2 (the root carries the version; without the
        // root, as after an idle-timeout, `traj.role` on the other spans still tells).
        let native = idx.nodes.iter().any(|nd| {
            let a = &nd.rec.span.attributes;
            has_attr(a, keys::SCHEMA_VERSION) || has_attr(a, keys::ROLE)
        });
        let mut roles: Vec<Option<(Role, &'r str)>> = idx
            .nodes
            .iter()
            .map(|nd| {
                let span = &nd.rec.span;
                if !native {
                    return rules
                        .match_span(span)
                        .map(|r| (r.role, r.name.as_str()))
                        .or_else(|| llm_convention(span).map(|c| (Role::Llm, c)));
                }
                match attr_str(&span.attributes, keys::ROLE) {
                    Some(s) => Role::parse(s).map(|r| (r, "traj")).or_else(|| {
                        w.push(format!("span {}: unknown traj.role {s:?}", nd.hex));
                        None
                    }),
                    // Auto-instrumented children (no traj keys) that are LLM calls.
                    None => llm_convention(span).map(|c| (Role::Llm, c)),
                }
            })
            .collect();
        let root = find_root(idx, native, &mut roles, w);
        let unmapped = roles.iter().filter(|r| r.is_none()).count() as u64;
        let (owner, chain) = idx.owners(root, |i| roles[i].is_some_and(|(r, _)| is_step_role(r)));
        for (i, c) in chain.iter().enumerate() {
            if let (Chain::Cycle(p), Some(_)) = (c, roles[i]) {
                w.push(format!(
                    "span {}: parent chain is a cycle (via {})",
                    idx.nodes[i].hex,
                    hex::encode(p)
                ));
            }
        }
        Tree {
            idx,
            native,
            roles,
            root,
            owner,
            chain,
            unmapped,
        }
    }

    pub fn len(&self) -> usize {
        self.idx.nodes.len()
    }

    pub fn role(&self, i: usize) -> Option<Role> {
        self.roles[i].map(|(r, _)| r)
    }

    /// The `source` written on the node's events.
    pub fn source(&self, i: usize) -> &'r str {
        self.roles[i].map(|(_, s)| s).unwrap_or("traj")
    }
}

/// The run span: a parentless `run` span, else any `run` span; in a foreign trace without one,
/// its first parentless span stands for the run. Other run spans become unmapped.
fn find_root(
    idx: &SpanIndex,
    native: bool,
    roles: &mut [Option<(Role, &str)>],
    w: &mut Warnings,
) -> Option<usize> {
    let n = idx.nodes.len();
    let is_run = |r: &Option<(Role, &str)>| matches!(r, Some((Role::Run, _)));
    let mut root = (0..n)
        .find(|&i| is_run(&roles[i]) && idx.nodes[i].parent == ParentSlot::None)
        .or_else(|| (0..n).find(|&i| is_run(&roles[i])));
    if root.is_none() && !native {
        root = (0..n).find(|&i| idx.nodes[i].parent == ParentSlot::None);
        if let Some(r) = root {
            if roles[r].is_none() {
                roles[r] = Some((Role::Run, "foreign.root"));
            }
        }
    }
    for (i, role) in roles.iter_mut().enumerate() {
        if Some(i) != root && is_run(role) {
            w.push(format!(
                "span {}: a second run span; counted as unmapped",
                idx.nodes[i].hex
            ));
            *role = None;
        }
    }
    root
}
