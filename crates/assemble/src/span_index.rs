//! The span set of one trace, cleaned up for assembly: invalid ids skipped, duplicates resolved
//! by a deterministic rule, spans in canonical order (start time, span id), parents resolved to
//! indices, and an iterative (never recursive) walk that finds each span's owning step span.

use crate::span_record::SpanRecord;
use prost::Message;
use std::cmp::Ordering;
use std::collections::HashMap;
use traj_schema::ids;

/// Where a span's parent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentSlot {
    /// No parent span id: a root.
    None,
    /// The parent is the node at this index (may be the node itself: self-reference).
    Present(usize),
    /// The parent span id never arrived.
    Missing([u8; 8]),
}

/// What the chain of ancestors of a span ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    /// A parentless span of this trace.
    Rooted,
    /// A span whose parent never arrived (that parent's id).
    Missing([u8; 8]),
    /// A parent cycle (including self-reference); the id is this span's parent id.
    Cycle([u8; 8]),
}

pub(crate) struct Node<'a> {
    pub rec: &'a SpanRecord,
    pub id: [u8; 8],
    pub hex: String,
    pub parent: ParentSlot,
}

pub(crate) struct SpanIndex<'a> {
    /// Unique spans in canonical order: (start time, span id).
    pub nodes: Vec<Node<'a>>,
    pub by_id: HashMap<[u8; 8], usize>,
    pub duplicates: u64,
    /// Spans skipped for a malformed span id or a trace id other than the run's.
    pub invalid: u64,
}

/// Of two copies of the same span id, whether `a` should be kept over `b`: the larger end time,
/// then the larger protobuf encoding, then the larger service name. A total order, so the choice
/// does not depend on arrival order.
fn prefer(a: &SpanRecord, b: &SpanRecord) -> bool {
    let ord = a
        .span
        .end_time_unix_nano
        .cmp(&b.span.end_time_unix_nano)
        .then_with(|| {
            if a.span == b.span {
                Ordering::Equal
            } else {
                a.span.encode_to_vec().cmp(&b.span.encode_to_vec())
            }
        })
        .then_with(|| a.service_name.cmp(&b.service_name));
    ord == Ordering::Greater
}

impl<'a> SpanIndex<'a> {
    pub fn build(trace_id: &[u8; 16], spans: &'a [SpanRecord]) -> SpanIndex<'a> {
        let mut invalid = 0u64;
        let mut duplicates = 0u64;
        let mut chosen: HashMap<[u8; 8], &'a SpanRecord> = HashMap::with_capacity(spans.len());
        for rec in spans {
            let Some(id) = ids::span_id(&rec.span.span_id) else {
                invalid += 1;
                continue;
            };
            if rec.span.trace_id.as_slice() != trace_id.as_slice() {
                invalid += 1;
                continue;
            }
            match chosen.get_mut(&id) {
                Some(kept) => {
                    duplicates += 1;
                    if prefer(rec, kept) {
                        *kept = rec;
                    }
                }
                None => {
                    chosen.insert(id, rec);
                }
            }
        }
        let mut uniq: Vec<([u8; 8], &'a SpanRecord)> = chosen.into_iter().collect();
        uniq.sort_unstable_by(|a, b| {
            a.1.span
                .start_time_unix_nano
                .cmp(&b.1.span.start_time_unix_nano)
                .then(a.0.cmp(&b.0))
        });
        let by_id: HashMap<[u8; 8], usize> = uniq
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let nodes = uniq
            .into_iter()
            .map(|(id, rec)| {
                // An empty, all-zero or malformed parent id means "no parent".
                let parent = match ids::parent_span_id(&rec.span.parent_span_id) {
                    None => ParentSlot::None,
                    Some(pid) => match by_id.get(&pid) {
                        Some(&p) => ParentSlot::Present(p),
                        None => ParentSlot::Missing(pid),
                    },
                };
                Node {
                    rec,
                    id,
                    hex: hex::encode(id),
                    parent,
                }
            })
            .collect();
        SpanIndex {
            nodes,
            by_id,
            duplicates,
            invalid,
        }
    }

    /// For every node: its nearest strict ancestor for which `is_owner` holds, and what its
    /// ancestor chain ends in. Iterative with memoization: O(n) overall, no recursion, and parent
    /// cycles (self-reference included) terminate.
    ///
    /// `root` (the run span) ends every chain it is on as [`Chain::Rooted`], even when the run
    /// span itself has a parent that was never sent (an upstream caller's span).
    pub fn owners(
        &self,
        root: Option<usize>,
        is_owner: impl Fn(usize) -> bool,
    ) -> (Vec<Option<usize>>, Vec<Chain>) {
        let n = self.nodes.len();
        let mut owner: Vec<Option<usize>> = vec![None; n];
        let mut chain: Vec<Chain> = vec![Chain::Rooted; n];
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; n];
        let mut path: Vec<usize> = Vec::new();
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            path.clear();
            let mut cur = start;
            // How the walk ended; `resolved_from` = first done node above the path.
            let mut resolved_from: Option<usize> = None;
            loop {
                match state[cur] {
                    2 => {
                        resolved_from = Some(cur);
                        break;
                    }
                    1 => {
                        // Cycle: `cur` is on the path; every node from it to the end is cyclic.
                        let k = path.iter().position(|&x| x == cur).unwrap_or(0);
                        for &c in &path[k..] {
                            let pid = match self.nodes[c].parent {
                                ParentSlot::Present(p) => self.nodes[p].id,
                                ParentSlot::Missing(pid) => pid,
                                ParentSlot::None => self.nodes[c].id,
                            };
                            owner[c] = None;
                            chain[c] = Chain::Cycle(pid);
                            state[c] = 2;
                        }
                        // The nodes below the cycle entry are resolved from the entry.
                        path.truncate(k);
                        resolved_from = Some(cur);
                        break;
                    }
                    _ => {}
                }
                state[cur] = 1;
                path.push(cur);
                let parent = if Some(cur) == root {
                    ParentSlot::None
                } else {
                    self.nodes[cur].parent
                };
                match parent {
                    ParentSlot::None => {
                        owner[cur] = None;
                        chain[cur] = Chain::Rooted;
                        break;
                    }
                    ParentSlot::Missing(pid) => {
                        owner[cur] = None;
                        chain[cur] = Chain::Missing(pid);
                        break;
                    }
                    ParentSlot::Present(p) => cur = p,
                }
            }
            // Resolve the path from the top down. The top node is already set unless the walk
            // stopped at a done node above it.
            let mut above = resolved_from;
            for &c in path.iter().rev() {
                if let Some(p) = above {
                    owner[c] = if is_owner(p) { Some(p) } else { owner[p] };
                    chain[c] = chain[p];
                }
                state[c] = 2;
                above = Some(c);
            }
        }
        (owner, chain)
    }
}
