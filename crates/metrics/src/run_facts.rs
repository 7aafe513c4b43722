//! Reduces one run (session + events) to the few facts the role metrics are computed from, so
//! each run is walked exactly once and the accumulator keeps counts, never events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use traj_schema::event::PlanStep;
use traj_schema::{Event, Outcome, Payload, Session, ToolStatus, Verdict};

/// Why a plan is not valid (a plan can have several reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvalidReason {
    /// The plan has no steps.
    Empty,
    /// Two steps share an index.
    DuplicateIndex,
    /// A step names a tool the tool mask marks unavailable (`false`).
    UnavailableTool,
    /// A step names a tool that is neither in the tool mask nor in the known toolset.
    UnknownTool,
}

impl InvalidReason {
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Empty => "empty_plan",
            InvalidReason::DuplicateIndex => "duplicate_index",
            InvalidReason::UnavailableTool => "unavailable_tool",
            InvalidReason::UnknownTool => "unknown_tool",
        }
    }
}

/// One `planner_output`, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanFact {
    pub len: usize,
    pub reasons: BTreeSet<InvalidReason>,
    /// False when neither a tool mask nor a known toolset was available, so tool references
    /// could not be checked.
    pub tools_checked: bool,
}

impl PlanFact {
    pub fn valid(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// One `worker_tool_result`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolFact {
    pub tool: String,
    pub ok: bool,
    pub error_class: Option<String>,
}

/// Ground truth of one verifier verdict (see `docs/metrics.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictFact {
    pub verdict: Verdict,
    /// Whether the goal was met at that point: true only for the last verdict of a successful
    /// run; `None` when the run's outcome is unknown.
    pub goal_met: Option<bool>,
}

/// Everything the metrics need from one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub run_id: String,
    pub trace_id: String,
    pub config_hash: String,
    pub prompt_hash: String,
    pub goal_family: String,
    pub split: String,
    pub started_at: String,
    /// role -> model name.
    pub model_stack: BTreeMap<String, String>,
    pub outcome: Outcome,
    /// `Some(true)` for success, `Some(false)` for failure or aborted, `None` when unknown.
    pub success: Option<bool>,
    pub steps: u32,
    pub plans: Vec<PlanFact>,
    /// Planner outputs after the first one.
    pub replans: u32,
    pub tool_calls: u32,
    /// Tool results in time order.
    pub tools: Vec<ToolFact>,
    /// Verdicts in time order.
    pub verdicts: Vec<VerdictFact>,
    /// `replan` verdicts followed by a new plan.
    pub replan_verdicts_resolved: u32,
    /// ... of which the new plan was identical to the one in force.
    pub replan_verdicts_unnecessary: u32,
}

/// The label used for an empty grouping key.
pub const UNKNOWN_KEY: &str = "(none)";

fn key(s: &str) -> String {
    if s.trim().is_empty() {
        UNKNOWN_KEY.to_string()
    } else {
        s.to_string()
    }
}

/// Judges one plan against the tool mask of its `planner_input` (or the known toolset).
pub fn judge_plan(
    plan: &[PlanStep],
    tool_mask: &BTreeMap<String, bool>,
    known_tools: Option<&BTreeSet<String>>,
) -> PlanFact {
    let mut reasons = BTreeSet::new();
    if plan.is_empty() {
        reasons.insert(InvalidReason::Empty);
    }
    let mut seen = BTreeSet::new();
    for step in plan {
        if !seen.insert(step.index) {
            reasons.insert(InvalidReason::DuplicateIndex);
        }
    }
    let tools_checked = !tool_mask.is_empty() || known_tools.is_some();
    for tool in plan.iter().filter_map(|s| s.tool.as_deref()) {
        match tool_mask.get(tool) {
            Some(true) => {}
            Some(false) => {
                reasons.insert(InvalidReason::UnavailableTool);
            }
            None if tool_mask.is_empty() => {
                if let Some(known) = known_tools {
                    if !known.contains(tool) {
                        reasons.insert(InvalidReason::UnknownTool);
                    }
                }
            }
            None => {
                reasons.insert(InvalidReason::UnknownTool);
            }
        }
    }
    PlanFact {
        len: plan.len(),
        reasons,
        tools_checked,
    }
}

/// Walks the run's events once, in (`time_unix_nano`, `event_id`) order.
pub fn extract(
    session: &Session,
    events: &[Event],
    split: Option<&str>,
    known_tools: Option<&BTreeSet<String>>,
) -> RunFacts {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by(|a, b| {
        (a.time_unix_nano, a.event_id.as_str()).cmp(&(b.time_unix_nano, b.event_id.as_str()))
    });

    let success = match session.summary.outcome {
        Outcome::Success => Some(true),
        Outcome::Failure | Outcome::Aborted => Some(false),
        Outcome::Unknown => None,
    };

    let empty_mask = BTreeMap::new();
    let mut masks: HashMap<&str, &BTreeMap<String, bool>> = HashMap::new();
    let mut plans = Vec::new();
    let mut tools = Vec::new();
    let mut tool_calls = 0u32;
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut current_plan: Option<&[PlanStep]> = None;
    let mut pending_replan: Option<Option<&[PlanStep]>> = None;
    let mut resolved = 0u32;
    let mut unnecessary = 0u32;
    let mut end_steps: Option<u32> = None;

    for e in &order {
        match &e.payload {
            Payload::PlannerInput(p) => {
                masks.insert(e.span_id.as_str(), &p.tool_mask);
            }
            Payload::PlannerOutput(p) => {
                let mask = masks
                    .get(e.span_id.as_str())
                    .copied()
                    .unwrap_or(&empty_mask);
                plans.push(judge_plan(&p.plan, mask, known_tools));
                if let Some(before) = pending_replan.take() {
                    resolved += 1;
                    if before == Some(p.plan.as_slice()) {
                        unnecessary += 1;
                    }
                }
                current_plan = Some(p.plan.as_slice());
            }
            Payload::WorkerToolCall(_) => tool_calls += 1,
            Payload::WorkerToolResult(r) => tools.push(ToolFact {
                tool: key(&r.tool),
                ok: r.status == ToolStatus::Ok,
                error_class: r.error_class.clone(),
            }),
            Payload::VerifierOutput(v) => {
                verdicts.push(v.verdict);
                if v.verdict == Verdict::Replan {
                    pending_replan = Some(current_plan);
                }
            }
            Payload::EpisodeEnd(end) => end_steps = Some(end.steps),
            _ => {}
        }
    }

    let last = verdicts.len().saturating_sub(1);
    let verdicts = verdicts
        .into_iter()
        .enumerate()
        .map(|(i, verdict)| VerdictFact {
            verdict,
            goal_met: success.map(|s| s && i == last),
        })
        .collect();

    RunFacts {
        run_id: session.run_id.clone(),
        trace_id: session.trace_id.clone(),
        config_hash: key(&session.config_hash),
        prompt_hash: key(&session.prompt_hash),
        goal_family: key(&session.goal_family),
        split: key(split.unwrap_or("")),
        started_at: session.started_at.clone(),
        model_stack: session
            .model_stack
            .iter()
            .map(|(role, spec)| (role.clone(), spec.model.clone()))
            .collect(),
        outcome: session.summary.outcome,
        success,
        steps: end_steps.unwrap_or(session.summary.step_count),
        replans: plans.len().saturating_sub(1) as u32,
        plans,
        tool_calls,
        tools,
        verdicts,
        replan_verdicts_resolved: resolved,
        replan_verdicts_unnecessary: unnecessary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: u32, tool: Option<&str>) -> PlanStep {
        PlanStep {
            index,
            description: format!("step {index}"),
            tool: tool.map(String::from),
        }
    }

    fn mask(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn plan_checks() {
        let m = mask(&[("search", true), ("write", false)]);
        assert!(judge_plan(&[step(0, Some("search")), step(1, None)], &m, None).valid());
        let empty = judge_plan(&[], &m, None);
        assert_eq!(
            empty.reasons.iter().copied().collect::<Vec<_>>(),
            vec![InvalidReason::Empty]
        );
        let dup = judge_plan(&[step(0, None), step(0, None)], &m, None);
        assert!(dup.reasons.contains(&InvalidReason::DuplicateIndex));
        let off = judge_plan(&[step(0, Some("write"))], &m, None);
        assert!(off.reasons.contains(&InvalidReason::UnavailableTool));
        let unknown = judge_plan(&[step(0, Some("rm"))], &m, None);
        assert!(unknown.reasons.contains(&InvalidReason::UnknownTool));
    }

    #[test]
    fn without_mask_the_known_toolset_decides_and_without_either_tools_are_unchecked() {
        let known: BTreeSet<String> = ["search".to_string()].into();
        let none = BTreeMap::new();
        let p = judge_plan(&[step(0, Some("rm"))], &none, Some(&known));
        assert!(p.tools_checked && !p.valid());
        let p = judge_plan(&[step(0, Some("rm"))], &none, None);
        assert!(!p.tools_checked && p.valid());
    }
}
