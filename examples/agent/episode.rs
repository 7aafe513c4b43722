//! One episode: the scripted, seeded Planner → Worker → Verifier loop (with replan and end)
//! over one task, instrumented only through `traj-instrument`, with controlled failure injection.

use super::models::{self, SimModel, PROMPTS};
use super::prng::{task_seed, SplitMix64};
use super::tasks::{self, resolve_args, StepSpec, Task};
use super::tools::{self, Sandbox, ToolError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use traj_instrument::{
    LinkTarget, OrchestratorState as St, RunInfo, RunSpan, SpanHandle, VerifierSpan,
};
use traj_schema::event::{
    FailureNote, Outcome, PlanProgress, PlanStep, PlannerInput, PlannerOutput, ToolStatus, Verdict,
    VerifierInput, VerifierOutput, WorkerAction, WorkerInput, WorkerOutput,
};
use traj_schema::session::{ModelSpec, RuntimeConfig};

/// What a batch of episodes runs with.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub tasks: u64,
    pub seed: u64,
    /// How `seed` was chosen (recorded on every run as `traj.seed_kind`).
    pub seed_kind: traj_schema::SeedKind,
    pub concurrency: usize,
    /// Scales every injected failure (0 = none, 1 = the maximum rates).
    pub failure_rate: f64,
    pub max_steps: u32,
    pub model_tag: String,
    pub agent_name: String,
    /// Flush the exporter after every run (what real agents should do).
    pub flush_each_run: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            tasks: 20,
            seed: 1,
            seed_kind: traj_schema::SeedKind::Fixed,
            concurrency: 2,
            failure_rate: 0.5,
            max_steps: 8,
            model_tag: "v1".into(),
            agent_name: "traj-example-agent".into(),
            flush_each_run: true,
        }
    }
}

/// Injection probabilities at `failure_rate = 1`.
#[derive(Debug, Clone, Copy)]
pub struct Injection {
    /// The worker's first attempt uses broken arguments (a retry recovers).
    pub wrong_args: f64,
    /// A tool attempt fails transiently (timeout / unavailable).
    pub tool_error: f64,
    /// The planner emits a plan with a wrong argument (caught by the checker → replan).
    pub flawed_plan: f64,
    /// The verifier asks for a replan although progress is fine.
    pub needless_replan: f64,
    /// The verifier ends before the goal is met (false stop → the run fails).
    pub false_stop: f64,
    /// The verifier says continue although the goal is met (missed stop).
    pub missed_stop: f64,
}

impl Injection {
    pub const MAX: Injection = Injection {
        wrong_args: 0.5,
        tool_error: 0.3,
        flawed_plan: 0.5,
        needless_replan: 0.45,
        false_stop: 0.5,
        missed_stop: 0.4,
    };

    pub fn scaled(rate: f64) -> Injection {
        let r = rate.clamp(0.0, 1.0);
        let m = Injection::MAX;
        Injection {
            wrong_args: m.wrong_args * r,
            tool_error: m.tool_error * r,
            flawed_plan: m.flawed_plan * r,
            needless_replan: m.needless_replan * r,
            false_stop: m.false_stop * r,
            missed_stop: m.missed_stop * r,
        }
    }
}

/// What one episode did (the agent's own record, compared with the exported spans in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    pub index: u64,
    pub run_id: String,
    pub task_id: String,
    pub family: String,
    pub seed: u64,
    pub outcome: Outcome,
    pub failure_class: Option<String>,
    pub cycles: u32,
    pub verdicts: Vec<Verdict>,
    pub tool_calls: u32,
    pub tool_errors: u32,
    /// Every decision, in order (what the same seed must reproduce).
    pub decisions: Vec<String>,
}

/// `runtime_config.tool_mode` of every run: tools really execute (files in a sandbox, an
/// expression evaluator, an in-memory knowledge base for the synthetic family).
pub const AGENT_TOOL_MODE: &str = "real";

/// The simulated models of one episode (one per role, from the run's model stack).
struct Models {
    planner: SimModel,
    worker: SimModel,
    verifier: SimModel,
}

impl Models {
    fn new(info: &RunInfo) -> Models {
        let model = |role: &'static str, system, tools| {
            let spec = info.model_stack.get(role).cloned().unwrap_or_default();
            SimModel::new(role, spec, system, tools, info.seed)
        };
        Models {
            planner: model("planner", models::PLANNER_SYSTEM, vec![]),
            worker: model("worker", models::WORKER_SYSTEM, tools::tool_definitions()),
            verifier: model("verifier", models::VERIFIER_SYSTEM, vec![]),
        }
    }
}

pub fn run_info(cfg: &AgentConfig, task: &Task, seed: u64) -> RunInfo {
    let model_stack: BTreeMap<String, ModelSpec> = ["planner", "worker", "verifier"]
        .iter()
        .map(|role| {
            (
                role.to_string(),
                ModelSpec {
                    model: format!("sim-{role}-{}", cfg.model_tag),
                    params: [("temperature".to_string(), json!(0.0))].into(),
                },
            )
        })
        .collect();
    let mut extra = BTreeMap::new();
    extra.insert("failure_rate".to_string(), json!(cfg.failure_rate));
    extra.insert("policy".to_string(), json!("scripted-splitmix64"));
    RunInfo {
        agent_name: cfg.agent_name.clone(),
        goal: task.goal.clone(),
        goal_family: task.family.to_string(),
        task_id: Some(task.id.clone()),
        seed,
        seed_kind: Some(cfg.seed_kind),
        model_stack,
        runtime_config: RuntimeConfig {
            max_steps: cfg.max_steps,
            prompt_sources: PROMPTS
                .iter()
                .map(|(n, _)| (n.to_string(), "inline:examples/agent/models.rs".to_string()))
                .collect(),
            // The agent's setting, not the task's: config_hash identifies what is being tuned,
            // so runs of one batch share it whatever mix of real and synthetic tasks they drew.
            tool_mode: AGENT_TOOL_MODE.to_string(),
            extra,
        },
        prompts: PROMPTS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        tools: tools::tool_schemas(),
    }
}

/// A deliberately wrong variant of a step (what a flawed plan contains): one argument is wrong,
/// and the step's description says the wrong value, as the planner wrote it.
fn corrupt(step: &StepSpec) -> StepSpec {
    let mut s = step.clone();
    if let Some(m) = s.args.as_object_mut() {
        let changed = if let Some(Value::String(p)) = m.get("path").cloned() {
            Some(("path", p.clone(), format!("tmp_{p}")))
        } else if let Some(Value::String(k)) = m.get("key").cloned() {
            Some(("key", k.clone(), k.replace("capital:", "capitol:")))
        } else if let Some(Value::String(e)) = m.get("expr").cloned() {
            Some(("expr", e.clone(), format!("{e} + 1")))
        } else if let Some(Value::String(p)) = m.get("pattern").cloned() {
            Some(("pattern", p.clone(), p.to_uppercase()))
        } else {
            None
        };
        if let Some((key, old, new)) = changed {
            s.description = s.description.replace(&old, &new);
            m.insert(key.into(), Value::String(new));
        }
    }
    s
}

/// Broken call arguments: the tool rejects them for real (`invalid_arguments`).
fn broken_args(args: &Value) -> Value {
    match args {
        Value::Object(m) => {
            let mut m = m.clone();
            if m.contains_key("path") {
                m.insert("path".into(), json!("../outside.txt"));
            } else if let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// Runs episode `index` of the batch under the current `tracing` dispatcher.
pub fn run_episode(cfg: &AgentConfig, index: u64) -> EpisodeRecord {
    let seed = task_seed(cfg.seed, index);
    let mut rng = SplitMix64::new(seed);
    let task = tasks::generate(&mut rng, index);
    let info = run_info(cfg, &task, seed);
    let sim = Models::new(&info);
    let run = RunSpan::start(info);
    let mut rec = EpisodeRecord {
        index,
        run_id: run.run_id().to_string(),
        task_id: task.id.clone(),
        family: task.family.to_string(),
        seed,
        outcome: Outcome::Unknown,
        failure_class: None,
        cycles: 0,
        verdicts: vec![],
        tool_calls: 0,
        tool_errors: 0,
        decisions: vec![],
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return abort_setup(run, rec, &format!("cannot create the sandbox: {e}")),
    };
    let mut sb = Sandbox::new(dir.path().to_path_buf());
    if let Err(e) = task.setup(&mut sb) {
        return abort_setup(run, rec, &e.message);
    }
    let mut ep = Episode::new(task, sb, rng, Injection::scaled(cfg.failure_rate), sim);
    let (outcome, failure_class) = loop {
        if ep.cycle >= cfg.max_steps {
            rec.decisions.push("budget:max_steps".into());
            break (Outcome::Aborted, Some("max_steps".to_string()));
        }
        let planner_target = if ep.need_plan {
            Some(ep.plan(&run, &mut rec))
        } else {
            None
        };
        let work = ep.work(&run, planner_target, &mut rec);
        if let Some(end) = ep.verify(&run, work, &mut rec) {
            break end;
        }
    };
    rec.outcome = outcome;
    rec.failure_class = failure_class.clone();
    run.finish(outcome, failure_class.as_deref());
    rec
}

/// Ends a run whose sandbox could not be set up.
fn abort_setup(run: RunSpan, mut rec: EpisodeRecord, message: &str) -> EpisodeRecord {
    run.error("env_setup", message);
    rec.outcome = Outcome::Aborted;
    rec.failure_class = Some("env_setup".into());
    run.finish(Outcome::Aborted, Some("env_setup"));
    rec
}

/// What a worker cycle leaves for the verifier.
struct WorkDone {
    failed: Option<ToolError>,
    action_traces: Vec<String>,
    target: LinkTarget,
}

/// The state one episode carries from cycle to cycle. Every random draw goes through `rng` in a
/// fixed order, so the same seed makes the same decisions.
struct Episode {
    task: Task,
    sb: Sandbox,
    rng: SplitMix64,
    inj: Injection,
    sim: Models,
    tool_names: Vec<String>,
    plan: Vec<StepSpec>,
    cursor: usize,
    need_plan: bool,
    replan_reason: Option<String>,
    history: Vec<String>,
    prior_failures: Vec<FailureNote>,
    last_result: Value,
    last_verifier: Option<LinkTarget>,
    flawed_once: bool,
    missed_once: bool,
    cycle: u32,
}

impl Episode {
    fn new(task: Task, sb: Sandbox, rng: SplitMix64, inj: Injection, sim: Models) -> Episode {
        Episode {
            task,
            sb,
            rng,
            inj,
            sim,
            tool_names: tools::tool_names(),
            plan: Vec::new(),
            cursor: 0,
            need_plan: true,
            replan_reason: None,
            history: Vec::new(),
            prior_failures: Vec::new(),
            last_result: Value::Null,
            last_verifier: None,
            flawed_once: false,
            missed_once: false,
            cycle: 0,
        }
    }

    fn files(&self) -> Value {
        json!({ "files": self.sb.list() })
    }

    /// The planner (first cycle and after a replan). Replanning restarts from the first step
    /// when the finished plan failed its check, else continues from the current step.
    fn plan(&mut self, run: &RunSpan, rec: &mut EpisodeRecord) -> LinkTarget {
        let cycle = self.cycle;
        let mut planner = run.planner(cycle);
        if let Some(v) = &self.last_verifier {
            planner = planner.link(v);
        }
        let input = PlannerInput {
            goal: self.task.goal.clone(),
            observation: self.files(),
            history: self.history.clone(),
            tool_mask: self.tool_names.iter().map(|t| (t.clone(), true)).collect(),
            replan_reason: self.replan_reason.clone(),
        };
        planner.input(&input);
        let start = if self.cursor >= self.plan.len() {
            0
        } else {
            self.cursor
        };
        let steps = &self.task.steps;
        let mut new_plan: Vec<StepSpec> = steps[start.min(steps.len())..].to_vec();
        if new_plan.is_empty() {
            new_plan = steps.clone();
        }
        if !self.flawed_once && self.rng.chance(self.inj.flawed_plan) {
            self.flawed_once = true;
            let i = self.rng.below(new_plan.len());
            new_plan[i] = corrupt(&new_plan[i]);
            rec.decisions.push(format!("plan:flawed@{i}"));
        }
        let output = PlannerOutput {
            plan: new_plan
                .iter()
                .enumerate()
                .map(|(i, s)| PlanStep {
                    index: i as u32,
                    description: s.description.clone(),
                    tool: Some(s.tool.to_string()),
                })
                .collect(),
            rationale: format!("{} step(s) from step {start}", new_plan.len()),
            confidence: Some(0.6 + 0.4 * self.rng.next_f64()),
            llm_calls: vec![],
        };
        self.sim.planner.call(
            |model, prompt| planner.llm_call(model, prompt),
            cycle,
            1,
            &[models::planner_turn(&input)],
            &models::plan_answer(&output),
        );
        planner.output(&output);
        planner.transition(St::Planning, St::Working, "plan ready");
        rec.decisions.push(format!("plan:{}", new_plan.len()));
        self.history
            .push(format!("cycle {cycle}: planned {} step(s)", new_plan.len()));
        self.plan = new_plan;
        self.cursor = 0;
        self.need_plan = false;
        planner.link_target()
    }

    fn worker_input(&self, plan_step: Option<u32>, current_step: String) -> WorkerInput {
        WorkerInput {
            plan_step,
            current_step,
            env_state: self.files(),
            allowed_tools: self.tool_names.clone(),
            prior_failures: self.prior_failures.clone(),
        }
    }

    /// The worker: the current plan step with its tool loop, or, with no step left, a response.
    fn work(
        &mut self,
        run: &RunSpan,
        planner_target: Option<LinkTarget>,
        rec: &mut EpisodeRecord,
    ) -> WorkDone {
        let mut worker = run.worker(self.cycle);
        if let Some(t) = planner_target.as_ref().or(self.last_verifier.as_ref()) {
            worker = worker.link(t);
        }
        let mut action_traces = Vec::new();
        let failed = match self.plan.get(self.cursor).cloned() {
            Some(step) => self.work_step(&worker, step, &mut action_traces, rec),
            None => {
                self.nothing_left(&worker);
                action_traces.push("respond".into());
                None
            }
        };
        worker.transition(St::Working, St::Verifying, "step done");
        WorkDone {
            failed,
            action_traces,
            target: worker.link_target(),
        }
    }

    /// One plan step: the action, the tool loop, the model's closing turn and the output.
    fn work_step(
        &mut self,
        worker: &traj_instrument::WorkerSpan,
        step: StepSpec,
        action_traces: &mut Vec<String>,
        rec: &mut EpisodeRecord,
    ) -> Option<ToolError> {
        let (cycle, cursor) = (self.cycle, self.cursor);
        let args = resolve_args(&step.args, &self.last_result);
        let input = self.worker_input(Some(cursor as u32), step.description.clone());
        worker.input(&input);
        worker.action(&WorkerAction {
            action: "tool_call".into(),
            tool: Some(step.tool.to_string()),
            arguments: args.clone(),
            reasoning: format!("execute plan step {cursor}: {}", step.description),
        });
        let position = format!("plan step {} of {}", cursor + 1, self.plan.len());
        let mut conversation = vec![models::worker_turn(
            &input,
            &position,
            step.tool,
            &self.last_result,
        )];
        let (result, attempt) =
            self.tool_loop(worker, &step, &args, &mut conversation, action_traces, rec);
        let summary = match &result {
            Ok(v) => format!("{} succeeded: {v}", step.tool),
            Err(e) => format!(
                "{} failed after {attempt} attempt(s) ({}): {}",
                step.tool, e.class, e.message
            ),
        };
        self.sim.worker.call(
            |model, prompt| worker.llm_call(model, prompt),
            cycle,
            attempt + 1,
            &conversation,
            &models::text_answer(summary.clone()),
        );
        let retries = attempt - 1;
        match result {
            Ok(v) => {
                self.last_result = v;
                self.cursor += 1;
                worker.observation("workspace", &self.files());
                worker.output(&WorkerOutput {
                    status: ToolStatus::Ok,
                    summary,
                    error_class: None,
                    retries,
                    llm_calls: vec![],
                });
                self.history
                    .push(format!("cycle {cycle}: {} ok", step.tool));
                None
            }
            Err(e) => {
                self.prior_failures.push(FailureNote {
                    tool: Some(step.tool.to_string()),
                    error_class: e.class.to_string(),
                    message: e.message.clone(),
                });
                worker.output(&WorkerOutput {
                    status: ToolStatus::Error,
                    summary,
                    error_class: Some(e.class.to_string()),
                    retries,
                    llm_calls: vec![],
                });
                self.history
                    .push(format!("cycle {cycle}: {} failed ({})", step.tool, e.class));
                Some(e)
            }
        }
    }

    /// The worker's model runs a tool loop: each attempt is one model turn that calls the tool,
    /// whose result (or error) goes back to the model. Retries invalid arguments, timeouts and
    /// unavailability, at most 3 attempts. Returns the last result and attempt number.
    fn tool_loop(
        &mut self,
        worker: &traj_instrument::WorkerSpan,
        step: &StepSpec,
        args: &Value,
        conversation: &mut Vec<traj_schema::ChatMessage>,
        action_traces: &mut Vec<String>,
        rec: &mut EpisodeRecord,
    ) -> (Result<Value, ToolError>, u32) {
        let call_id = format!("call-{}-{}", self.cycle, self.cursor);
        let mut attempt = 1u32;
        loop {
            rec.tool_calls += 1;
            let bad = attempt == 1 && self.rng.chance(self.inj.wrong_args);
            let transient = !bad && self.rng.chance(self.inj.tool_error);
            let used_args = if bad { broken_args(args) } else { args.clone() };
            let answer = models::tool_call_answer(&call_id, step.tool, &used_args);
            self.sim.worker.call(
                |model, prompt| worker.llm_call(model, prompt),
                self.cycle,
                attempt,
                conversation,
                &answer,
            );
            conversation.push(models::as_input(answer));
            let span = worker.tool_call(step.tool, &call_id, &used_args, attempt);
            let result = if transient {
                let class = if self.rng.chance(0.5) {
                    "timeout"
                } else {
                    "unavailable"
                };
                Err(ToolError {
                    class,
                    message: format!("{} did not answer (injected)", step.tool),
                })
            } else {
                tools::execute(&mut self.sb, step.tool, &used_args)
            };
            let response = match &result {
                Ok(v) => {
                    span.observation(step.tool, &self.files());
                    span.ok(v);
                    v.clone()
                }
                Err(e) => {
                    rec.tool_errors += 1;
                    span.err(e.class, &e.message);
                    models::tool_error(e.class, &e.message)
                }
            };
            conversation.push(models::tool_response(&call_id, response));
            let status = result.as_ref().map(|_| "ok").unwrap_or_else(|e| e.class);
            rec.decisions
                .push(format!("tool:{}#{attempt}:{status}", step.tool));
            action_traces.push(format!("{}#{attempt} {status}", step.tool));
            let retryable = matches!(&result, Err(e) if e.class == "invalid_arguments" || e.class == "timeout" || e.class == "unavailable");
            if result.is_ok() || !retryable || attempt >= 3 {
                return (result, attempt);
            }
            attempt += 1;
        }
    }

    /// Every plan step is done: the worker responds so.
    fn nothing_left(&mut self, worker: &traj_instrument::WorkerSpan) {
        let input = self.worker_input(None, "no step left".into());
        worker.input(&input);
        worker.action(&WorkerAction {
            action: "respond".into(),
            tool: None,
            arguments: Value::Null,
            reasoning: "every plan step is done".into(),
        });
        let summary = "Every step of the plan is done; there is nothing left to do.";
        self.sim.worker.call(
            |model, prompt| worker.llm_call(model, prompt),
            self.cycle,
            1,
            &[models::worker_turn(
                &input,
                &format!("all {} plan step(s) done", self.plan.len()),
                "none",
                &self.last_result,
            )],
            &models::text_answer(summary.to_string()),
        );
        worker.output(&WorkerOutput {
            status: ToolStatus::Ok,
            summary: summary.to_string(),
            error_class: None,
            retries: 0,
            llm_calls: vec![],
        });
    }

    /// The verifier's verdict on the cycle (with the injected mistakes).
    fn decide(
        &mut self,
        failed: Option<&ToolError>,
        passed: bool,
        evidence: &Value,
    ) -> (Verdict, String, Vec<String>) {
        if let Some(e) = failed {
            (
                Verdict::Replan,
                format!("step failed: {} ({})", e.message, e.class),
                vec!["tool_failure".to_string()],
            )
        } else if passed {
            if !self.missed_once && self.rng.chance(self.inj.missed_stop) {
                self.missed_once = true;
                (Verdict::Continue, "keep going".to_string(), vec![])
            } else {
                (Verdict::End, "goal met".to_string(), vec![])
            }
        } else if self.cursor >= self.plan.len() {
            (
                Verdict::Replan,
                format!("plan finished but the check failed: {evidence}"),
                vec!["check_failed".to_string()],
            )
        } else if self.rng.chance(self.inj.false_stop) {
            (Verdict::End, "looks done".to_string(), vec![])
        } else if self.rng.chance(self.inj.needless_replan) {
            (Verdict::Replan, "unsure about the plan".to_string(), vec![])
        } else {
            (
                Verdict::Continue,
                format!("{}/{} steps done", self.cursor, self.plan.len()),
                vec![],
            )
        }
    }

    /// The verifier: checks the task, gives its verdict and ends the cycle; returns the run's
    /// outcome when the verdict ends it.
    fn verify(
        &mut self,
        run: &RunSpan,
        work: WorkDone,
        rec: &mut EpisodeRecord,
    ) -> Option<(Outcome, Option<String>)> {
        let verifier = run.verifier(self.cycle).link(&work.target);
        let (passed, evidence) = self.task.check.run(&self.sb);
        let input = VerifierInput {
            plan_progress: PlanProgress {
                completed: self.cursor as u32,
                total: self.plan.len() as u32,
            },
            action_traces: work.action_traces,
            evidence: evidence.clone(),
        };
        verifier.input(&input);
        let (verdict, feedback, flags) = self.decide(work.failed.as_ref(), passed, &evidence);
        let output = VerifierOutput {
            verdict,
            feedback: feedback.clone(),
            risk_flags: flags,
            confidence: Some(if passed { 0.9 } else { 0.6 }),
            llm_calls: vec![],
        };
        self.sim.verifier.call(
            |model, prompt| verifier.llm_call(model, prompt),
            self.cycle,
            1,
            &[models::verifier_turn(&self.task.goal, &input)],
            &models::verdict_answer(&output),
        );
        verifier.verdict(&output);
        rec.verdicts.push(verdict);
        rec.decisions.push(format!("verdict:{}", verdict.as_str()));
        self.cycle += 1;
        rec.cycles = self.cycle;
        let done = end_cycle(&verifier, verdict, &feedback);
        self.last_verifier = Some(verifier.link_target());
        match verdict {
            Verdict::End if done && passed => Some((Outcome::Success, None)),
            Verdict::End => Some((Outcome::Failure, Some("false_stop".to_string()))),
            Verdict::Replan => {
                self.need_plan = true;
                self.replan_reason = Some(feedback);
                None
            }
            Verdict::Continue => None,
        }
    }
}

fn end_cycle(verifier: &VerifierSpan, verdict: Verdict, feedback: &str) -> bool {
    let (to, done) = match verdict {
        Verdict::End => (St::Done, true),
        Verdict::Replan => (St::Planning, false),
        Verdict::Continue => (St::Working, false),
    };
    verifier.transition(
        St::Verifying,
        to,
        &format!("{}: {feedback}", verdict.as_str()),
    );
    done
}
