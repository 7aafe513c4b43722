//! [`assemble`]: the spans of one trace (and its log records) → one run (session + events),
//! following the tables of `docs/conventions.md` (native schema v2 traces) or the
//! [`MappingRules`] (foreign traces), as a sequence of phases, one file each: classify the tree,
//! number the steps and collect what each made, draft the step and LLM-call events, link the
//! inputs, draft the span-event and run events, then resolve ids and parents.
//!
//! Deterministic by construction: spans are deduplicated by a total order and processed in
//! canonical order (start time, span id); event ids are content-derived; events are sorted by
//! (time, event id). Nothing walks the tree recursively.

mod children;
mod drafts;
mod lineage;
mod log_join;
mod span_events;
mod step_events;
mod tree;

use crate::log_record::LogEntry;
use crate::rules::MappingRules;
use crate::session_builder::{build_session, RunFacts};
use crate::span_index::SpanIndex;
use crate::span_record::SpanRecord;
use crate::warnings::Warnings;
use drafts::Drafts;
use traj_schema::{keys, Event, LineageStats, Role, Session};

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
    /// Problems met on the way (malformed payloads, broken links, cycles, ...), bounded; also in
    /// `session.warnings`.
    pub warnings: Vec<String>,
}

fn is_step_role(r: Role) -> bool {
    matches!(r, Role::Planner | Role::Worker | Role::Verifier)
}

/// Assembles the spans of one trace into a run. Never panics on malformed input: bad spans are
/// skipped and counted, bad payloads replaced by defaults and reported in `warnings`.
pub fn assemble(trace_id: [u8; 16], spans: &[SpanRecord], rules: &MappingRules) -> AssembledRun {
    assemble_with_logs(trace_id, spans, &[], rules)
}

/// [`assemble`] with the trace's OTLP log records (LLM content some instrumentations send as
/// logs), joined to their spans by span id whatever order they arrived in.
pub fn assemble_with_logs(
    trace_id: [u8; 16],
    spans: &[SpanRecord],
    logs: &[LogEntry],
    rules: &MappingRules,
) -> AssembledRun {
    let trace_hex = hex::encode(trace_id);
    let mut w = Warnings::default();
    let idx = SpanIndex::build(&trace_id, spans);
    if idx.invalid > 0 {
        w.push(format!(
            "{} spans skipped: malformed span id or foreign trace id",
            idx.invalid
        ));
    }
    let tree = tree::Tree::classify(&idx, rules, &mut w);
    let logs_of = log_join::join_logs(&tree, logs, &mut w);
    let mut steps = children::number_steps(&tree, &mut w);
    let mut made = children::collect(&tree, &mut steps, &logs_of, rules, &mut w);

    let mut drafts = Drafts::new(tree.len());
    let facts =
        step_events::step_and_tool_events(&tree, &steps, &mut made, rules, &mut drafts, &mut w);
    step_events::llm_call_events(&tree, &steps, &mut made, &mut drafts);
    lineage::link_inputs(&tree, &trace_id, &mut drafts, &mut w);
    span_events::transitions_and_observations(&tree, &steps, &made, &mut drafts, &mut w);
    let outcome = span_events::run_events(&tree, &steps, facts.last_verdict, rules, &mut drafts);

    let mut stats = LineageStats {
        spans: tree.len() as u64,
        events: drafts.list.len() as u64,
        unmapped_spans: tree.unmapped,
        duplicate_spans: idx.duplicates,
        log_records: logs.len() as u64,
        ..Default::default()
    };
    let events = lineage::into_events(&tree, &trace_hex, drafts, &mut stats);

    let (min_start, max_end) = time_range(&idx);
    let counts = made.counts;
    let run_facts = RunFacts {
        trace_hex: &trace_hex,
        root: tree.root.map(|r| idx.nodes[r].rec),
        root_span_seen: tree.root.is_some(),
        source: if tree.native {
            "traj".to_owned()
        } else {
            format!("foreign:{}", foreign_convention(&idx))
        },
        fallback_service: idx
            .nodes
            .first()
            .map(|nd| &*nd.rec.service_name)
            .unwrap_or(""),
        min_start,
        max_end,
        step_count: steps.taken,
        llm_calls: counts.llm_calls,
        tool_calls: counts.tool_calls,
        tool_errors: counts.tool_errors,
        input_tokens: counts.input_tokens,
        output_tokens: counts.output_tokens,
        cost_estimate_usd: counts.cost_usd,
        observed_models: counts.observed_models,
        fallback_goal: facts.first_goal,
        goal_family_keys: &rules.facts.goal_family_keys,
        outcome,
        lineage: stats,
    };
    let mut session = build_session(run_facts, &mut w);
    let warnings = w.finish();
    session.warnings.clone_from(&warnings);
    tracing::debug!(
        run_id = %trace_hex,
        spans = tree.len(),
        events = events.len(),
        unmapped = tree.unmapped,
        duplicates = idx.duplicates,
        warnings = warnings.len(),
        "assembled run"
    );
    AssembledRun {
        session,
        events,
        unmapped_spans: tree.unmapped,
        duplicate_spans: idx.duplicates,
        invalid_spans: idx.invalid,
        warnings,
    }
}

/// Earliest start and latest end over the spans (the run's times when the root is missing).
fn time_range(idx: &SpanIndex) -> (u64, u64) {
    let spans = idx.nodes.iter().map(|nd| &nd.rec.span);
    let min_start = spans
        .clone()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let max_end = spans.map(|s| s.end_time_unix_nano).max().unwrap_or(0);
    (min_start, max_end)
}

/// `genai` when any span carries `gen_ai.*` operation names, else `openinference` when any
/// carries a span kind, else `other`.
fn foreign_convention(idx: &SpanIndex) -> &'static str {
    let any = |key: &str| {
        idx.nodes
            .iter()
            .any(|nd| crate::attributes::has_attr(&nd.rec.span.attributes, key))
    };
    if any(keys::GEN_AI_OPERATION_NAME) {
        "genai"
    } else if any(keys::OPENINFERENCE_SPAN_KIND) {
        "openinference"
    } else {
        "other"
    }
}
