//! Phase 2: each step span's cycle number, and what each step made: its tool spans and its LLM
//! calls (read with their content and log records), with the run's call, token and cost counts.

use super::tree::Tree;
use crate::attributes::attr_u32;
use crate::llm_calls::read_call;
use crate::log_record::LogEntry;
use crate::payloads as pl;
use crate::rules::MappingRules;
use crate::warnings::Warnings;
use std::collections::BTreeMap;
use traj_schema::event::LlmCall;
use traj_schema::{keys, LlmCallRecord, Role};

/// The cycle of every node (tool and LLM spans inherit their owner's) and the highest one.
pub(super) struct Steps {
    pub of: Vec<u32>,
    pub max: u32,
    /// Cycles the run took (highest + 1; 0 without step spans).
    pub taken: u32,
}

/// Run-level counts for the session summary.
#[derive(Default)]
pub(super) struct Counts {
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub tool_errors: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Role -> the model first seen on its LLM calls.
    pub observed_models: BTreeMap<String, String>,
}

/// What each step span made, by owner node.
pub(super) struct Children {
    pub tools_of: Vec<Vec<usize>>,
    /// Summaries for the output payloads' `llm_calls`.
    pub llm_summaries_of: Vec<Vec<LlmCall>>,
    /// Full records (node, record) for the `llm_call` events.
    pub llm_records_of: Vec<Vec<(usize, LlmCallRecord)>>,
    pub counts: Counts,
}

/// `traj.step`, else derived from start order: a new cycle begins when a step role does not
/// come after the previous one in planner < worker < verifier.
pub(super) fn number_steps(tree: &Tree, w: &mut Warnings) -> Steps {
    let mut of = vec![0u32; tree.len()];
    let (mut cycle, mut last_rank, mut max) = (0u32, None::<u8>, None::<u32>);
    for (i, slot) in of.iter_mut().enumerate() {
        let rank = match tree.role(i) {
            Some(Role::Planner) => 0u8,
            Some(Role::Worker) => 1,
            Some(Role::Verifier) => 2,
            _ => continue,
        };
        if last_rank.is_some_and(|l| rank <= l) {
            cycle += 1;
        }
        last_rank = Some(rank);
        let nd = &tree.idx.nodes[i];
        let explicit = attr_u32(&nd.rec.span.attributes, keys::STEP);
        if tree.native && explicit.is_none() {
            w.push(format!(
                "span {}: traj.step missing; derived {cycle} from start order",
                nd.hex
            ));
        }
        *slot = explicit.unwrap_or(cycle);
        max = Some(max.map_or(*slot, |m| m.max(*slot)));
    }
    Steps {
        of,
        max: max.unwrap_or(0),
        taken: max.map_or(0, |m| m.saturating_add(1)),
    }
}

pub(super) fn collect(
    tree: &Tree,
    steps: &mut Steps,
    logs_of: &[Vec<&LogEntry>],
    rules: &MappingRules,
    w: &mut Warnings,
) -> Children {
    let n = tree.len();
    let mut c = Children {
        tools_of: vec![Vec::new(); n],
        llm_summaries_of: vec![Vec::new(); n],
        llm_records_of: vec![Vec::new(); n],
        counts: Counts::default(),
    };
    for (i, logs) in logs_of.iter().enumerate() {
        let nd = &tree.idx.nodes[i];
        match tree.role(i) {
            Some(Role::Tool) => {
                c.counts.tool_calls += 1;
                if pl::tool_is_error(&nd.rec.span) {
                    c.counts.tool_errors += 1;
                }
                if let Some(o) = tree.owner[i] {
                    steps.of[i] = steps.of[o];
                    c.tools_of[o].push(i);
                }
            }
            Some(Role::Llm) => {
                let record = read_call(&nd.rec.span, &nd.hex, logs, w);
                let summary = pl::llm_call(&nd.rec.span, &nd.hex, &record);
                c.counts.add_call(&summary, rules);
                let Some(o) = tree.owner[i] else {
                    w.push(format!(
                        "span {}: LLM call outside any planner/worker/verifier span",
                        nd.hex
                    ));
                    continue;
                };
                steps.of[i] = steps.of[o];
                if let (Some(r), false) = (tree.role(o), summary.model.is_empty()) {
                    c.counts
                        .observed_models
                        .entry(r.as_str().to_owned())
                        .or_insert_with(|| summary.model.clone());
                }
                c.llm_summaries_of[o].push(summary);
                c.llm_records_of[o].push((i, record));
            }
            _ => {}
        }
    }
    c
}

impl Counts {
    fn add_call(&mut self, call: &LlmCall, rules: &MappingRules) {
        self.llm_calls += 1;
        self.input_tokens += call.input_tokens;
        self.output_tokens += call.output_tokens;
        if let Some(p) = rules.prices.get(&call.model) {
            self.cost_usd += call.input_tokens as f64 / 1e6 * p.input_per_mtok
                + call.output_tokens as f64 / 1e6 * p.output_per_mtok;
        }
    }
}
