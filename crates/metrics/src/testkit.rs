//! Hand-built runs that follow the span → event contract (ids, parents, lineage, ordering), for
//! tests, the committed dashboard fixtures and demos. Every metric test builds its runs here and
//! states the expected values by hand.

use std::collections::BTreeMap;
use traj_schema::event::{
    event_id, EpisodeEnd, PlanStep, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput,
    WorkerAction, WorkerInput, WorkerOutput, WorkerToolCall, WorkerToolResult,
};
use traj_schema::session::{DataGovernance, ModelSpec, RuntimeConfig, Summary};
use traj_schema::time_fmt::rfc3339_from_unix_nanos;
use traj_schema::{
    Event, Lineage, LineageStats, Outcome, Payload, Role, Session, ToolStatus, Verdict,
};

/// 2026-11-26T00:00:00Z in Unix nanoseconds.
const BASE_NANOS: u64 = 1_795_651_200_000_000_000;

/// A tool result to put in a worker step: `Ok(())` or `Err(error_class)`.
pub type ToolOutcome<'a> = (&'a str, Result<(), &'a str>);

/// Builds one run cycle by cycle: `plan` → `work` → `verdict`, then `finish`.
#[derive(Debug, Clone)]
pub struct RunBuilder {
    session: Session,
    events: Vec<Event>,
    start: u64,
    clock: u64,
    spans: u64,
    step: u32,
    last_output: Option<String>,
    tool_calls: u32,
    tool_errors: u32,
}

impl RunBuilder {
    /// A run whose ids derive from `n` (distinct `n`, distinct runs), started `n` minutes after
    /// 2026-11-26T00:00:00Z, with config `sha256:…c0`, prompt `sha256:…p0` and goal family
    /// `arith` until changed with [`RunBuilder::session`].
    pub fn new(n: u64) -> Self {
        let digest = traj_schema::hashing::hash_str(&format!("testkit run {n}"));
        let run_id = digest.trim_start_matches("sha256:").to_string();
        let start = BASE_NANOS + n * 60_000_000_000;
        let spec = |m: &str| ModelSpec {
            model: m.to_string(),
            params: BTreeMap::new(),
        };
        let session = Session {
            schema_version: traj_schema::SCHEMA_VERSION.to_string(),
            run_id: run_id.clone(),
            trace_id: run_id,
            goal: format!("task {n}"),
            goal_family: "arith".to_string(),
            task_id: Some(format!("task-{n}")),
            seed: Some(n),
            seed_kind: None,
            started_at: rfc3339_from_unix_nanos(start),
            finished_at: String::new(),
            duration_ms: 0.0,
            service_name: "testkit-agent".to_string(),
            source: "traj".to_string(),
            model_stack: [
                ("planner".to_string(), spec("planner-model")),
                ("worker".to_string(), spec("worker-model")),
                ("verifier".to_string(), spec("verifier-model")),
            ]
            .into(),
            runtime_config: RuntimeConfig {
                max_steps: 8,
                tool_mode: "synthetic".to_string(),
                ..Default::default()
            },
            data_governance: DataGovernance {
                redaction_policy: "default".to_string(),
                redaction_version: "1".to_string(),
                pii_scan_status: "source_redacted".to_string(),
            },
            summary: Summary::default(),
            config_hash: format!("sha256:{:032x}", 0xc0),
            prompt_hash: format!("sha256:{:032x}", 0xa0),
            toolset_hash: format!("sha256:{:032x}", 0x70),
            lineage: LineageStats::default(),
            root_span_seen: true,
            warnings: Vec::new(),
        };
        RunBuilder {
            session,
            events: Vec::new(),
            start,
            clock: start,
            spans: 0,
            step: 0,
            last_output: None,
            tool_calls: 0,
            tool_errors: 0,
        }
    }

    /// Edits the session (config hash, model stack, goal family, ...).
    pub fn session(mut self, f: impl FnOnce(&mut Session)) -> Self {
        f(&mut self.session);
        self
    }

    pub fn run_id(&self) -> &str {
        &self.session.run_id
    }

    fn new_span(&mut self) -> String {
        self.spans += 1;
        format!("{:016x}", 0x1000 + self.spans)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1_000_000;
        self.clock
    }

    fn push(
        &mut self,
        span_id: &str,
        role: Role,
        ordinal: u32,
        parent: Option<String>,
        payload: Payload,
    ) -> String {
        let t = self.tick();
        let id = event_id(
            &self.session.trace_id,
            span_id,
            payload.event_type(),
            ordinal,
        );
        let lineage = if parent.is_some() {
            Lineage::Parent
        } else {
            Lineage::Root
        };
        self.events.push(Event {
            schema_version: traj_schema::SCHEMA_VERSION.to_string(),
            run_id: self.session.run_id.clone(),
            trace_id: self.session.trace_id.clone(),
            span_id: span_id.to_string(),
            step: self.step,
            event_id: id.clone(),
            timestamp: rfc3339_from_unix_nanos(t),
            time_unix_nano: t,
            role,
            parent_event_id: parent,
            lineage,
            missing_parent_span_id: None,
            source: "traj".to_string(),
            payload,
        });
        id
    }

    /// A planner step with `(description, tool)` steps indexed 0.. and the given tool mask.
    pub fn plan(self, steps: &[(&str, Option<&str>)], mask: &[(&str, bool)]) -> Self {
        let steps = steps
            .iter()
            .enumerate()
            .map(|(i, (d, t))| PlanStep {
                index: i as u32,
                description: d.to_string(),
                tool: t.map(String::from),
            })
            .collect();
        self.plan_steps(steps, mask)
    }

    /// A planner step with explicit plan steps (e.g. duplicate indices). A plan that follows a
    /// verdict is a replan and links to that verdict.
    pub fn plan_steps(mut self, plan: Vec<PlanStep>, mask: &[(&str, bool)]) -> Self {
        let span = self.new_span();
        let replan = self.events.iter().rev().find_map(|e| match &e.payload {
            Payload::VerifierOutput(v) => Some((e.event_id.clone(), v.feedback.clone())),
            _ => None,
        });
        let input = PlannerInput {
            goal: self.session.goal.clone(),
            tool_mask: mask.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            replan_reason: replan.as_ref().map(|(_, f)| f.clone()),
            ..Default::default()
        };
        let parent = replan.map(|(id, _)| id);
        let input_id = self.push(
            &span,
            Role::Planner,
            0,
            parent,
            Payload::PlannerInput(input),
        );
        let out = PlannerOutput {
            plan,
            rationale: "hand-built".to_string(),
            ..Default::default()
        };
        let id = self.push(
            &span,
            Role::Planner,
            0,
            Some(input_id),
            Payload::PlannerOutput(out),
        );
        self.last_output = Some(id);
        self
    }

    /// A worker step making one tool call per entry, in order. The step's status is the last
    /// call's.
    pub fn work(mut self, calls: &[ToolOutcome<'_>]) -> Self {
        let span = self.new_span();
        let input = WorkerInput {
            current_step: format!("cycle {}", self.step),
            ..Default::default()
        };
        let parent = self.last_output.clone();
        let input_id = self.push(&span, Role::Worker, 0, parent, Payload::WorkerInput(input));
        let action = WorkerAction {
            action: if calls.is_empty() {
                "respond"
            } else {
                "tool_call"
            }
            .to_string(),
            tool: calls.first().map(|(t, _)| t.to_string()),
            ..Default::default()
        };
        let action_id = self.push(
            &span,
            Role::Worker,
            0,
            Some(input_id),
            Payload::WorkerAction(action),
        );
        let mut last_err = None;
        for (i, (tool, res)) in calls.iter().enumerate() {
            let tspan = self.new_span();
            let call_id = format!("call-{}-{i}", self.step);
            let call = WorkerToolCall {
                tool: tool.to_string(),
                call_id: call_id.clone(),
                arguments: serde_json::Value::Null,
                attempt: 1,
            };
            let call_ev = self.push(
                &tspan,
                Role::Tool,
                0,
                Some(action_id.clone()),
                Payload::WorkerToolCall(call),
            );
            self.tool_calls += 1;
            let err = res.err().map(String::from);
            if err.is_some() {
                self.tool_errors += 1;
            }
            last_err = err.clone();
            let result = WorkerToolResult {
                tool: tool.to_string(),
                call_id,
                status: if err.is_some() {
                    ToolStatus::Error
                } else {
                    ToolStatus::Ok
                },
                result: serde_json::Value::Null,
                error_message: err.as_ref().map(|c| format!("{c} raised")),
                error_class: err,
                attempt: 1,
                duration_ms: 1.0,
            };
            self.push(
                &tspan,
                Role::Tool,
                0,
                Some(call_ev),
                Payload::WorkerToolResult(result),
            );
        }
        let out = WorkerOutput {
            status: if last_err.is_some() {
                ToolStatus::Error
            } else {
                ToolStatus::Ok
            },
            summary: "done".to_string(),
            error_class: last_err,
            ..Default::default()
        };
        let id = self.push(
            &span,
            Role::Worker,
            0,
            Some(action_id),
            Payload::WorkerOutput(out),
        );
        self.last_output = Some(id);
        self
    }

    /// A verifier step; the next cycle starts after it.
    pub fn verdict(mut self, verdict: Verdict) -> Self {
        let span = self.new_span();
        let parent = self.last_output.clone();
        let input_id = self.push(
            &span,
            Role::Verifier,
            0,
            parent,
            Payload::VerifierInput(VerifierInput::default()),
        );
        let out = VerifierOutput {
            verdict,
            feedback: format!("{} after cycle {}", verdict.as_str(), self.step),
            risk_flags: vec![],
            confidence: None,
            llm_calls: vec![],
        };
        let id = self.push(
            &span,
            Role::Verifier,
            0,
            Some(input_id),
            Payload::VerifierOutput(out),
        );
        self.last_output = Some(id);
        self.step += 1;
        self
    }

    /// Ends the run with `outcome`: adds `episode_end` and fills the session summary.
    pub fn finish(mut self, outcome: Outcome) -> (Session, Vec<Event>) {
        let steps = self.events.iter().map(|e| e.step + 1).max().unwrap_or(0);
        self.step = steps.saturating_sub(1);
        let parent = self.events.last().map(|e| e.event_id.clone());
        let end = EpisodeEnd {
            outcome,
            steps,
            failure_class: (outcome != Outcome::Success).then(|| "goal_not_met".to_string()),
        };
        self.push(
            "0000000000001000",
            Role::Run,
            0,
            parent,
            Payload::EpisodeEnd(end),
        );
        let root = self
            .events
            .iter()
            .filter(|e| e.lineage == Lineage::Root)
            .count() as u64;
        let n = self.events.len() as u64;
        let s = &mut self.session;
        s.finished_at = rfc3339_from_unix_nanos(self.clock);
        s.duration_ms = (self.clock - self.start) as f64 / 1e6;
        s.summary = Summary {
            outcome,
            success: (outcome != Outcome::Unknown).then_some(outcome == Outcome::Success),
            step_count: steps,
            llm_calls: 0,
            tool_calls: self.tool_calls,
            tool_errors: self.tool_errors,
            input_tokens: 0,
            output_tokens: 0,
            cost_estimate_usd: 0.0,
            failure_class: (outcome != Outcome::Success).then(|| "goal_not_met".to_string()),
            spans_dropped_at_source: 0,
        };
        s.lineage = LineageStats {
            spans: self.spans + 1,
            events: n,
            root_events: root,
            parented_events: n - root,
            orphan_events: 0,
            unmapped_spans: 0,
            duplicate_spans: 0,
            log_records: 0,
        };
        (self.session, self.events)
    }
}

/// The mask every fixture plan is made under: `write_file` exists but is switched off.
const FIXTURE_MASK: &[(&str, bool)] = &[("search", true), ("calc", true), ("write_file", false)];

/// One of the scripted episodes of [`fixture_runs`].
fn scenario(b: RunBuilder, kind: u8) -> (Session, Vec<Event>) {
    let plan: &[(&str, Option<&str>)] =
        &[("find the data", Some("search")), ("compute", Some("calc"))];
    let m = FIXTURE_MASK;
    match kind {
        // straight success
        0 => b
            .plan(plan, m)
            .work(&[("search", Ok(())), ("calc", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // a timeout, retried, then success over two cycles
        1 => b
            .plan(plan, m)
            .work(&[("search", Err("timeout")), ("search", Ok(()))])
            .verdict(Verdict::Continue)
            .work(&[("calc", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // replan that changes nothing, same error again, then a false stop
        2 => b
            .plan(plan, m)
            .work(&[("calc", Err("bad_arguments"))])
            .verdict(Verdict::Replan)
            .plan(plan, m)
            .work(&[("calc", Err("bad_arguments"))])
            .verdict(Verdict::End)
            .finish(Outcome::Failure),
        // invalid first plan (tool switched off), useful replan, success
        3 => b
            .plan(&[("save", Some("write_file"))], m)
            .work(&[("write_file", Err("permission_denied"))])
            .verdict(Verdict::Replan)
            .plan(plan, m)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::Continue)
            .work(&[("calc", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // keeps timing out until the budget aborts it
        4 => b
            .plan(plan, m)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::Continue)
            .work(&[("search", Err("timeout"))])
            .verdict(Verdict::Continue)
            .work(&[("search", Err("timeout"))])
            .verdict(Verdict::Continue)
            .finish(Outcome::Aborted),
        // succeeded but the verifier never said so (missed stop)
        _ => b
            .plan(plan, m)
            .work(&[("search", Ok(())), ("calc", Ok(()))])
            .verdict(Verdict::Continue)
            .finish(Outcome::Success),
    }
}

/// The two config batches committed under `tests/fixtures/runs/`: a baseline config of small
/// models (16 runs, many failures) and a config of larger models (12 runs, mostly successful).
pub fn fixture_runs() -> Vec<(Session, Vec<Event>)> {
    let families = ["arith", "search", "files"];
    let batches: [(&str, &str, &[u8]); 2] = [
        (
            "small",
            "0a",
            &[0, 1, 2, 3, 4, 0, 2, 1, 4, 3, 2, 0, 5, 2, 1, 4],
        ),
        ("large", "0b", &[0, 0, 1, 3, 0, 1, 0, 2, 0, 1, 0, 3]),
    ];
    let mut out = Vec::new();
    let mut n = 0u64;
    for (size, tag, kinds) in batches {
        for (i, kind) in kinds.iter().enumerate() {
            n += 1;
            let b = RunBuilder::new(n).session(|s| {
                s.config_hash = traj_schema::hashing::hash_str(&format!("config {tag}"));
                s.prompt_hash = traj_schema::hashing::hash_str(&format!("prompt {}", i % 2));
                s.goal_family = families[i % families.len()].to_string();
                for (role, spec) in s.model_stack.iter_mut() {
                    spec.model = format!("{size}-{role}-v1");
                }
            });
            out.push(scenario(b, *kind));
        }
    }
    out
}

/// `count` runs spread over `configs` configs (config `k` succeeds less often as `k` grows),
/// built lazily from the same scripted episodes as the fixtures: for load tests and demos.
pub fn synthetic_runs(count: usize, configs: usize) -> impl Iterator<Item = (Session, Vec<Event>)> {
    let configs = configs.max(1);
    let families = ["arith", "search", "files", "web"];
    (0..count).map(move |i| {
        let k = i % configs;
        // kinds 0, 1 and 3 succeed; higher k draws the failing kinds 2, 4, 5 more often
        let mix: [u8; 8] = [0, 1, 3, 0, 1, 2, 4, 5];
        let kind = mix[(i / configs + k * 3) % (4 + 2 * k.min(2))];
        let b = RunBuilder::new(1_000_000 + i as u64).session(|s| {
            s.config_hash = traj_schema::hashing::hash_str(&format!("synthetic config {k}"));
            s.prompt_hash = traj_schema::hashing::hash_str(&format!("prompt {}", i % 3));
            s.goal_family = families[i % families.len()].to_string();
            for (role, spec) in s.model_stack.iter_mut() {
                spec.model = format!("model-{k}-{role}");
            }
        });
        scenario(b, kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use traj_schema::EventType;

    #[test]
    fn built_runs_pass_schema_validation() {
        let (s, ev) = RunBuilder::new(3)
            .plan(&[("look", Some("search"))], &[("search", true)])
            .work(&[("search", Err("timeout")), ("search", Ok(()))])
            .verdict(Verdict::Replan)
            .plan(&[("look again", Some("search"))], &[("search", true)])
            .work(&[("search", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success);
        let st = serde_json::to_string(&s).unwrap();
        let et: String = ev
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let check = traj_schema::validate_run(&st, &et);
        assert!(check.is_valid(), "{:?}", check.violations);
        assert_eq!(check.events_with_valid_lineage, ev.len() as u64);
        assert_eq!(s.summary.step_count, 2);
        assert_eq!(s.summary.tool_errors, 1);
        // the replan links to the verdict that asked for it
        let replan_input = ev
            .iter()
            .filter(|e| e.event_type() == EventType::PlannerInput)
            .nth(1)
            .unwrap();
        let parent = replan_input.parent_event_id.as_deref().unwrap();
        let parent_ev = ev.iter().find(|e| e.event_id == parent).unwrap();
        assert_eq!(parent_ev.event_type(), EventType::VerifierOutput);
    }

    #[test]
    fn synthetic_runs_are_valid_distinct_and_configs_differ() {
        let mut ids = std::collections::HashSet::new();
        let mut by_config: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for (s, ev) in synthetic_runs(96, 3) {
            let st = serde_json::to_string(&s).unwrap();
            let et: String = ev
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let check = traj_schema::validate_run(&st, &et);
            assert!(check.is_valid(), "{:?}", check.violations);
            assert!(ids.insert(s.run_id.clone()));
            let e = by_config.entry(s.config_hash.clone()).or_default();
            e.1 += 1;
            if s.summary.outcome == Outcome::Success {
                e.0 += 1;
            }
        }
        let mut rates: Vec<(u32, u32)> = by_config.values().copied().collect();
        rates.sort();
        // 32 runs each: all, 5/6 and 6/8 of the kinds succeed
        assert_eq!(rates, vec![(24, 32), (27, 32), (32, 32)]);
    }
}
