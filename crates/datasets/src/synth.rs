//! Hand-built runs: [`RunBuilder`] assembles a schema-v2 run (session + events with correct
//! ids, lineage and timestamps) stage by stage, and [`generate_corpus`] writes a seeded corpus of
//! realistic runs (every event type, tool failures and retries, replans, false and missed stops,
//! aborted runs, two agent configs) for tests and benchmarks.

use crate::rng::{hash_bytes, SplitMix64};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traj_schema::event::{
    event_id, EnvObservation, EpisodeEnd, EpisodeError, FailureNote, OrchestratorTransition,
    PlanProgress, PlanStep, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput,
    WorkerAction, WorkerInput, WorkerOutput, WorkerToolCall, WorkerToolResult,
};
use traj_schema::session::{DataGovernance, ModelSpec, RuntimeConfig};
use traj_schema::{ChatMessage, ContentSource, LlmCallRecord, MessagePart};

/// The system prompt of the synthetic worker model.
const SYNTH_WORKER_SYSTEM: &str =
    "You are a worker. Carry out the current step with one tool call.";
use traj_schema::{
    time_fmt, Event, EventType, Lineage, LineageStats, Outcome, Payload, Role, Session, Summary,
    ToolStatus, Verdict, SCHEMA_VERSION,
};

/// One attempt of a tool call made by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolAttempt {
    pub tool: String,
    pub arguments: Value,
    pub status: ToolStatus,
    pub result: Value,
    pub error_class: Option<String>,
    /// An environment observation recorded on the tool span after it ran.
    pub observation: Option<Value>,
}

impl ToolAttempt {
    pub fn ok(tool: &str, arguments: Value, result: Value) -> Self {
        Self {
            tool: tool.into(),
            arguments,
            status: ToolStatus::Ok,
            result,
            error_class: None,
            observation: None,
        }
    }

    pub fn err(tool: &str, arguments: Value, error_class: &str) -> Self {
        Self {
            tool: tool.into(),
            arguments,
            status: ToolStatus::Error,
            result: Value::Null,
            error_class: Some(error_class.into()),
            observation: None,
        }
    }
}

/// Builds one run the way assembly would write it.
#[derive(Debug, Clone)]
pub struct RunBuilder {
    session: Session,
    events: Vec<Event>,
    now: u64,
    spans: u64,
    root_span: String,
    last_plan_out: Option<String>,
    last_verify_out: Option<String>,
    last_work_out: Option<String>,
    max_step: u32,
}

impl RunBuilder {
    /// A new run; its run id (= trace id) is derived from `key`, so the same key gives the same run.
    pub fn new(key: u64, goal: &str, goal_family: &str) -> Self {
        let a = hash_bytes(&key.to_le_bytes(), 1);
        let b = hash_bytes(&key.to_le_bytes(), 2) | 1;
        let run_id = format!("{a:016x}{b:016x}");
        let start = 1_795_000_000_000_000_000u64 + (key % 1_000_000) * 1_000_000_000;
        let session = Session {
            schema_version: SCHEMA_VERSION.into(),
            run_id: run_id.clone(),
            trace_id: run_id.clone(),
            goal: goal.into(),
            goal_family: goal_family.into(),
            task_id: None,
            seed: Some(key),
            seed_kind: None,
            started_at: time_fmt::rfc3339_from_unix_nanos(start),
            finished_at: String::new(),
            duration_ms: 0.0,
            service_name: "synth-agent".into(),
            source: "traj".into(),
            model_stack: ["planner", "worker", "verifier"]
                .iter()
                .map(|r| {
                    (
                        r.to_string(),
                        ModelSpec {
                            model: "synth-model-1".into(),
                            params: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            runtime_config: RuntimeConfig {
                max_steps: 8,
                prompt_sources: BTreeMap::new(),
                tool_mode: "synthetic".into(),
                extra: BTreeMap::new(),
            },
            data_governance: DataGovernance {
                redaction_policy: "none".into(),
                redaction_version: "0".into(),
                pii_scan_status: "not_redacted".into(),
            },
            summary: Summary::default(),
            config_hash: "sha256:00000000000000000000000000000000".into(),
            prompt_hash: "sha256:11111111111111111111111111111111".into(),
            toolset_hash: "sha256:22222222222222222222222222222222".into(),
            lineage: LineageStats::default(),
            root_span_seen: true,
            warnings: Vec::new(),
        };
        let mut b = RunBuilder {
            session,
            events: Vec::new(),
            now: start,
            spans: 0,
            root_span: String::new(),
            last_plan_out: None,
            last_verify_out: None,
            last_work_out: None,
            max_step: 0,
        };
        b.root_span = b.new_span();
        b
    }

    pub fn run_id(&self) -> &str {
        &self.session.run_id
    }

    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    fn new_span(&mut self) -> String {
        self.spans += 1;
        let h = hash_bytes(self.session.run_id.as_bytes(), self.spans) | 1;
        format!("{h:016x}")
    }

    fn push(
        &mut self,
        span: &str,
        role: Role,
        step: u32,
        parent: Option<String>,
        payload: Payload,
    ) -> String {
        self.now += 1_000_000;
        let et: EventType = payload.event_type();
        let ordinal = self
            .events
            .iter()
            .filter(|e| e.span_id == span && e.event_type() == et)
            .count() as u32;
        let id = event_id(&self.session.trace_id, span, et, ordinal);
        self.max_step = self.max_step.max(step);
        self.events.push(Event {
            schema_version: SCHEMA_VERSION.into(),
            run_id: self.session.run_id.clone(),
            trace_id: self.session.trace_id.clone(),
            span_id: span.into(),
            step,
            event_id: id.clone(),
            timestamp: time_fmt::rfc3339_from_unix_nanos(self.now),
            time_unix_nano: self.now,
            role,
            lineage: if parent.is_some() {
                Lineage::Parent
            } else {
                Lineage::Root
            },
            parent_event_id: parent,
            missing_parent_span_id: None,
            source: "traj".into(),
            payload,
        });
        id
    }

    /// A planner span; a replan (input with `replan_reason`) hangs under the last verifier output.
    pub fn plan(&mut self, step: u32, input: PlannerInput, output: PlannerOutput) -> String {
        let span = self.new_span();
        let parent = if input.replan_reason.is_some() {
            self.last_verify_out.clone()
        } else {
            None
        };
        let i = self.push(
            &span,
            Role::Planner,
            step,
            parent,
            Payload::PlannerInput(input),
        );
        let o = self.push(
            &span,
            Role::Planner,
            step,
            Some(i),
            Payload::PlannerOutput(output),
        );
        self.last_plan_out = Some(o);
        span
    }

    /// A worker span with its tool attempts (each its own tool span) and output.
    pub fn work(
        &mut self,
        step: u32,
        input: WorkerInput,
        action: WorkerAction,
        attempts: Vec<ToolAttempt>,
        output: WorkerOutput,
    ) -> String {
        let span = self.new_span();
        let current_step = input.current_step.clone();
        let parent = self
            .last_plan_out
            .take()
            .or_else(|| self.last_verify_out.clone());
        let i = self.push(
            &span,
            Role::Worker,
            step,
            parent,
            Payload::WorkerInput(input),
        );
        let call_id = format!("call_{}", &span[..8]);
        let llm_span = self.new_span();
        let answer = match (&action.tool, attempts.first()) {
            (Some(tool), Some(first)) => MessagePart::ToolCall {
                id: call_id.clone(),
                name: tool.clone(),
                arguments: first.arguments.clone(),
            },
            _ => MessagePart::text(action.reasoning.clone()),
        };
        self.push(
            &llm_span,
            Role::Llm,
            step,
            Some(i.clone()),
            Payload::LlmCall(LlmCallRecord {
                operation: "chat".into(),
                provider: Some("synthetic".into()),
                model: "synth-worker".into(),
                response_model: None,
                request: Default::default(),
                system_instructions: vec![MessagePart::text(SYNTH_WORKER_SYSTEM)],
                input_messages: vec![ChatMessage::new(
                    "user",
                    vec![MessagePart::text(current_step.clone())],
                )],
                output_messages: vec![ChatMessage::new("assistant", vec![answer])],
                tool_definitions: Vec::new(),
                usage: Default::default(),
                finish_reasons: Vec::new(),
                response_id: None,
                content_source: ContentSource::GenaiAttributes,
                also_found_in: Vec::new(),
                error_type: None,
            }),
        );
        let a = self.push(
            &span,
            Role::Worker,
            step,
            Some(i),
            Payload::WorkerAction(action),
        );
        for (n, t) in attempts.into_iter().enumerate() {
            let tspan = self.new_span();
            let attempt = n as u32 + 1;
            let c = self.push(
                &tspan,
                Role::Tool,
                step,
                Some(a.clone()),
                Payload::WorkerToolCall(WorkerToolCall {
                    tool: t.tool.clone(),
                    call_id: call_id.clone(),
                    arguments: t.arguments.clone(),
                    attempt,
                }),
            );
            let message = t
                .error_class
                .as_ref()
                .map(|c| format!("{} failed: {c}", t.tool));
            let r = self.push(
                &tspan,
                Role::Tool,
                step,
                Some(c),
                Payload::WorkerToolResult(WorkerToolResult {
                    tool: t.tool.clone(),
                    call_id: call_id.clone(),
                    status: t.status,
                    result: t.result.clone(),
                    error_class: t.error_class.clone(),
                    error_message: message,
                    attempt,
                    duration_ms: 12.5,
                }),
            );
            if let Some(obs) = t.observation {
                self.push(
                    &tspan,
                    Role::Tool,
                    step,
                    Some(r),
                    Payload::EnvObservation(EnvObservation {
                        source: t.tool.clone(),
                        observation: obs,
                    }),
                );
            }
        }
        let o = self.push(
            &span,
            Role::Worker,
            step,
            Some(a),
            Payload::WorkerOutput(output),
        );
        self.last_work_out = Some(o);
        span
    }

    /// A verifier span, plus the orchestrator transition its verdict causes.
    pub fn verify(&mut self, step: u32, input: VerifierInput, output: VerifierOutput) -> String {
        let span = self.new_span();
        let parent = self.last_work_out.clone();
        let verdict = output.verdict;
        let reason = format!("{}: {}", verdict.as_str(), output.feedback);
        let i = self.push(
            &span,
            Role::Verifier,
            step,
            parent,
            Payload::VerifierInput(input),
        );
        let o = self.push(
            &span,
            Role::Verifier,
            step,
            Some(i),
            Payload::VerifierOutput(output),
        );
        let to = match verdict {
            Verdict::Continue => "working",
            Verdict::Replan => "planning",
            Verdict::End => "done",
        };
        self.push(
            &span,
            Role::Verifier,
            step,
            Some(o.clone()),
            Payload::OrchestratorTransition(OrchestratorTransition {
                from_state: "verifying".into(),
                to_state: to.into(),
                reason,
            }),
        );
        self.last_verify_out = Some(o);
        span
    }

    /// An `exception` on the root span.
    pub fn error(&mut self, error_class: &str, message: &str, fatal: bool) {
        let parent = self.events.last().map(|e| e.event_id.clone());
        let root = self.root_span.clone();
        let step = self.max_step;
        self.push(
            &root,
            Role::Run,
            step,
            parent,
            Payload::EpisodeError(EpisodeError {
                error_class: error_class.into(),
                message: message.into(),
                fatal,
            }),
        );
    }

    /// Ends the run and returns it with its summary filled in.
    pub fn finish(
        mut self,
        outcome: Outcome,
        failure_class: Option<&str>,
    ) -> (Session, Vec<Event>) {
        let parent = self.events.last().map(|e| e.event_id.clone());
        let root = self.root_span.clone();
        let steps = self.max_step + 1;
        self.push(
            &root,
            Role::Run,
            self.max_step,
            parent,
            Payload::EpisodeEnd(EpisodeEnd {
                outcome,
                steps,
                failure_class: failure_class.map(String::from),
            }),
        );
        let mut s = self.session;
        let started = time_fmt::unix_nanos_from_rfc3339(&s.started_at).unwrap_or(0);
        s.finished_at = time_fmt::rfc3339_from_unix_nanos(self.now);
        s.duration_ms = self.now.saturating_sub(started) as f64 / 1e6;
        let tool_calls = self
            .events
            .iter()
            .filter(|e| e.event_type() == EventType::WorkerToolCall)
            .count() as u32;
        let tool_errors = self
            .events
            .iter()
            .filter(|e| {
                matches!(&e.payload, Payload::WorkerToolResult(r) if r.status == ToolStatus::Error)
            })
            .count() as u32;
        s.summary = Summary {
            outcome,
            success: match outcome {
                Outcome::Unknown => None,
                o => Some(o == Outcome::Success),
            },
            step_count: steps,
            llm_calls: 0,
            tool_calls,
            tool_errors,
            input_tokens: 0,
            output_tokens: 0,
            cost_estimate_usd: 0.0,
            failure_class: failure_class.map(String::from),
            spans_dropped_at_source: 0,
        };
        let roots = self
            .events
            .iter()
            .filter(|e| e.lineage == Lineage::Root)
            .count() as u64;
        s.lineage = LineageStats {
            spans: self.spans,
            events: self.events.len() as u64,
            root_events: roots,
            parented_events: self.events.len() as u64 - roots,
            orphan_events: 0,
            unmapped_spans: 0,
            duplicate_spans: 0,
            log_records: 0,
        };
        (s, self.events)
    }
}

// ---- the synthetic corpus ----------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Runs(#[from] traj_runs::RunsError),
}

struct Family {
    name: &'static str,
    tools: &'static [(&'static str, &'static str)],
    goals: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family {
        name: "csv_aggregate",
        tools: &[("read_csv", "path"), ("sum_column", "column")],
        goals: &[
            "Sum the {x} column of sales_{n}.csv and report the total",
            "What is the total of column {x} in the file sales_{n}.csv?",
        ],
    },
    Family {
        name: "code_search",
        tools: &[("grep", "pattern"), ("read_file", "path")],
        goals: &[
            "Find every call to {x} in the src directory of project {n} and list the files",
            "List the files in project {n} whose source code calls {x}",
        ],
    },
    Family {
        name: "http_status",
        tools: &[("http_get", "url")],
        goals: &[
            "Check whether the status page of service {x}-{n} reports an outage",
            "Fetch the health endpoint of {x}-{n} and tell me if it is up",
        ],
    },
    Family {
        name: "unit_convert",
        tools: &[("convert", "value")],
        goals: &[
            "Convert {n} {x} to metric units and round to two decimals",
            "How much is {n} {x} in metric units, rounded to two decimals?",
        ],
    },
    Family {
        name: "json_edit",
        tools: &[
            ("read_file", "path"),
            ("jq", "filter"),
            ("write_file", "path"),
        ],
        goals: &[
            "In config_{n}.json set the field {x} to true and save the file",
            "Enable {x} in config_{n}.json and write it back",
        ],
    },
    Family {
        name: "log_triage",
        tools: &[("grep", "pattern"), ("read_file", "path")],
        goals: &[
            "Count the {x} errors in app_{n}.log and name the most frequent one",
            "Which {x} error appears most often in app_{n}.log, and how many are there?",
        ],
    },
];

const WORDS: &[&str] = &[
    "amount",
    "price",
    "quantity",
    "parse_config",
    "open_socket",
    "billing",
    "search",
    "miles",
    "pounds",
    "gallons",
    "feet",
    "verbose",
    "cache",
    "timeout",
    "database",
    "auth",
];

/// A goal shared by several families: near-duplicate goals the split must keep together.
const CROSS_POSTED: &str =
    "Read the report file, compute the totals per region and write a short summary of the results";

fn tool_schemas(f: &Family) -> Value {
    Value::Array(
        f.tools
            .iter()
            .map(|(name, arg)| {
                json!({
                    "name": name,
                    "description": format!("The {name} tool."),
                    "parameters": {
                        "type": "object",
                        "properties": {arg.to_string(): {"type": "string"}},
                        "required": [arg],
                    }
                })
            })
            .collect(),
    )
}

/// Writes `n_runs` seeded synthetic runs under `dir` (one `<run_id>/` per run, via `traj-runs`)
/// and returns their directories, sorted by run id.
pub fn generate_corpus(dir: &Path, n_runs: usize, seed: u64) -> Result<Vec<PathBuf>, SynthError> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n_runs);
    for i in 0..n_runs {
        let key = rng.next_u64() ^ (i as u64);
        let (session, events) = synth_run(key, &mut rng);
        // A synthetic corpus can be regenerated: atomic renames, no fsync.
        out.push(traj_runs::write_run_with(
            dir,
            &session,
            &events,
            traj_runs::Durability::RenameOnly,
        )?);
    }
    out.sort();
    Ok(out)
}

/// The scenarios of the corpus (also used by tests to reach every labelling rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Clean,
    RetryRecovery,
    ReplanRecovery,
    NeedlessReplan,
    FalseStop,
    MissedStop,
    GiveUp,
}

/// One synthetic run of a random family and scenario.
pub fn synth_run(key: u64, rng: &mut SplitMix64) -> (Session, Vec<Event>) {
    let fam = &FAMILIES[rng.below(FAMILIES.len() as u64) as usize];
    let roll = rng.below(100);
    let scenario = match roll {
        0..=34 => Scenario::Clean,
        35..=49 => Scenario::RetryRecovery,
        50..=64 => Scenario::ReplanRecovery,
        65..=72 => Scenario::NeedlessReplan,
        73..=82 => Scenario::FalseStop,
        83..=90 => Scenario::MissedStop,
        _ => Scenario::GiveUp,
    };
    let x = rng.pick(WORDS).copied().unwrap_or("amount");
    let n = rng.below(40);
    let goal = if rng.below(100) < 4 {
        CROSS_POSTED.to_string()
    } else {
        let t = rng.pick(fam.goals).copied().unwrap_or("{x} {n}");
        t.replace("{x}", x).replace("{n}", &n.to_string())
    };
    let config_b = rng.below(2) == 1;
    build_scenario(key, &goal, fam, scenario, config_b, rng)
}

fn build_scenario(
    key: u64,
    goal: &str,
    fam: &Family,
    scenario: Scenario,
    config_b: bool,
    rng: &mut SplitMix64,
) -> (Session, Vec<Event>) {
    let mut b = RunBuilder::new(key, goal, fam.name);
    describe_session(b.session_mut(), key, fam, config_b);
    let kit = Kit::new(key, goal, fam, config_b, rng);
    b.plan(
        0,
        kit.planner_in(vec![], None),
        kit.planner_out(kit.plan.clone(), "follow the tools in order"),
    );
    match scenario {
        Scenario::Clean => clean(b, &kit, rng, false),
        Scenario::MissedStop => clean(b, &kit, rng, true),
        Scenario::RetryRecovery => retry_recovery(b, &kit, rng),
        Scenario::ReplanRecovery => replan_recovery(b, &kit, rng),
        Scenario::NeedlessReplan => needless_replan(b, &kit, rng),
        Scenario::FalseStop => false_stop(b, &kit, rng),
        Scenario::GiveUp => give_up(b, &kit),
    }
}

/// Task id, seed kind, tools and the config of a synthetic run's session.
fn describe_session(s: &mut Session, key: u64, fam: &Family, config_b: bool) {
    s.task_id = Some(format!("{}-{}", fam.name, key % 1000));
    // A third of the corpus as if collected with random seeds (the seed plan asks for both).
    s.seed_kind = Some(if key.is_multiple_of(3) {
        traj_schema::SeedKind::Random
    } else {
        traj_schema::SeedKind::Fixed
    });
    s.runtime_config
        .extra
        .insert("tools".into(), tool_schemas(fam));
    s.config_hash = if config_b {
        "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into()
    } else {
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()
    };
    if config_b {
        s.model_stack.insert(
            "planner".into(),
            ModelSpec {
                model: "synth-model-2".into(),
                params: BTreeMap::new(),
            },
        );
    }
}

/// The payload makers every scenario of one run shares: its goal, plan, tools and the first
/// and last tool of its family with their argument names.
struct Kit<'a> {
    key: u64,
    goal: &'a str,
    tools: Vec<String>,
    plan: Vec<PlanStep>,
    confidence: Option<f64>,
    first: (&'static str, &'static str),
    last: (&'static str, &'static str),
}

impl<'a> Kit<'a> {
    fn new(key: u64, goal: &'a str, fam: &Family, config_b: bool, rng: &mut SplitMix64) -> Self {
        let plan = fam
            .tools
            .iter()
            .enumerate()
            .map(|(i, (t, _))| PlanStep {
                index: i as u32,
                description: format!("use {t} for: {goal}"),
                tool: Some(t.to_string()),
            })
            .collect();
        let confidence = if config_b {
            None
        } else {
            Some(0.5 + rng.unit() / 2.0)
        };
        Kit {
            key,
            goal,
            tools: fam.tools.iter().map(|(t, _)| t.to_string()).collect(),
            plan,
            confidence,
            first: fam.tools[0],
            last: fam.tools[fam.tools.len() - 1],
        }
    }

    fn planner_in(&self, history: Vec<String>, replan: Option<String>) -> PlannerInput {
        PlannerInput {
            goal: self.goal.into(),
            observation: json!({"cwd": "/workspace", "files": 3 + self.key % 5}),
            history,
            tool_mask: self.tools.iter().map(|t| (t.clone(), true)).collect(),
            replan_reason: replan,
        }
    }

    fn planner_out(&self, plan: Vec<PlanStep>, why: &str) -> PlannerOutput {
        PlannerOutput {
            plan,
            rationale: why.into(),
            confidence: self.confidence,
            llm_calls: vec![],
        }
    }

    fn args(arg: &str, v: &str) -> Value {
        json!({arg: v})
    }

    fn worker_in(&self, idx: u32, fails: Vec<FailureNote>) -> WorkerInput {
        WorkerInput {
            plan_step: Some(idx),
            current_step: self
                .plan
                .get(idx as usize)
                .map(|p| p.description.clone())
                .unwrap_or_default(),
            env_state: json!({"step": idx, "cwd": "/workspace"}),
            allowed_tools: self.tools.clone(),
            prior_failures: fails,
        }
    }

    fn action(tool: &str, arguments: Value, why: &str) -> WorkerAction {
        WorkerAction {
            action: "tool_call".into(),
            tool: Some(tool.into()),
            arguments,
            reasoning: why.into(),
        }
    }

    fn worker_out(ok: bool, summary: &str, class: Option<&str>, retries: u32) -> WorkerOutput {
        WorkerOutput {
            status: if ok {
                ToolStatus::Ok
            } else {
                ToolStatus::Error
            },
            summary: summary.into(),
            error_class: class.map(String::from),
            retries,
            llm_calls: vec![],
        }
    }

    fn verifier_in(&self, done: u32, traces: Vec<String>, met: bool) -> VerifierInput {
        VerifierInput {
            plan_progress: PlanProgress {
                completed: done,
                total: self.plan.len() as u32,
            },
            action_traces: traces,
            evidence: json!({"goal_met": met, "checks": done}),
        }
    }

    fn verdict(v: Verdict, feedback: &str, risks: Vec<String>) -> VerifierOutput {
        VerifierOutput {
            verdict: v,
            feedback: feedback.into(),
            risk_flags: risks,
            confidence: Some(0.8),
            llm_calls: vec![],
        }
    }

    fn ok_attempt(tool: &str, arguments: Value, rng: &mut SplitMix64) -> ToolAttempt {
        let mut t = ToolAttempt::ok(tool, arguments, json!({"rows": 1 + rng.below(20)}));
        t.observation = Some(json!({"changed": true}));
        t
    }
}

/// Two clean steps and `end`; with `missed_stop`, the first verdict is `continue` although the
/// goal was already met.
fn clean(
    mut b: RunBuilder,
    k: &Kit,
    rng: &mut SplitMix64,
    missed_stop: bool,
) -> (Session, Vec<Event>) {
    let ((t0, a0), (t1, a1)) = (k.first, k.last);
    let at = Kit::ok_attempt(t0, Kit::args(a0, "input"), rng);
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "input"), "start with the first tool"),
        vec![at],
        Kit::worker_out(true, "first step done", None, 0),
    );
    b.verify(
        0,
        k.verifier_in(1, vec![format!("{t0} ok")], missed_stop),
        Kit::verdict(Verdict::Continue, "keep going", vec![]),
    );
    let at = Kit::ok_attempt(t1, Kit::args(a1, "output"), rng);
    b.work(
        1,
        k.worker_in(1, vec![]),
        Kit::action(t1, Kit::args(a1, "output"), "finish with the last tool"),
        vec![at],
        Kit::worker_out(true, "all steps done", None, 0),
    );
    b.verify(
        1,
        k.verifier_in(2, vec![format!("{t0} ok"), format!("{t1} ok")], true),
        Kit::verdict(Verdict::End, "goal met", vec![]),
    );
    b.finish(Outcome::Success, None)
}

/// A timeout, retried with success in the same worker step.
fn retry_recovery(mut b: RunBuilder, k: &Kit, rng: &mut SplitMix64) -> (Session, Vec<Event>) {
    let (t0, a0) = k.first;
    let bad = ToolAttempt::err(t0, Kit::args(a0, "input"), "timeout");
    let good = Kit::ok_attempt(t0, Kit::args(a0, "input"), rng);
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "input"), "run the tool"),
        vec![bad, good],
        Kit::worker_out(true, "done after a retry", None, 1),
    );
    b.verify(
        0,
        k.verifier_in(2, vec![format!("{t0} timeout, retried ok")], true),
        Kit::verdict(Verdict::End, "goal met after retry", vec![]),
    );
    b.finish(Outcome::Success, None)
}

/// A failed step, a rightful `replan`, a new plan that locates the target first, success.
fn replan_recovery(mut b: RunBuilder, k: &Kit, rng: &mut SplitMix64) -> (Session, Vec<Event>) {
    let ((t0, a0), (t1, a1)) = (k.first, k.last);
    let bad = ToolAttempt::err(t0, Kit::args(a0, "missing"), "not_found");
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "missing"), "try the obvious target"),
        vec![bad],
        Kit::worker_out(false, "target not found", Some("not_found"), 0),
    );
    b.verify(
        0,
        k.verifier_in(0, vec![format!("{t0} not_found")], false),
        Kit::verdict(
            Verdict::Replan,
            "the target does not exist; find it first",
            vec!["wrong_target".into()],
        ),
    );
    let mut p2 = k.plan.clone();
    p2.insert(
        0,
        PlanStep {
            index: 0,
            description: "locate the right target".into(),
            tool: Some(t1.into()),
        },
    );
    for (i, p) in p2.iter_mut().enumerate() {
        p.index = i as u32;
    }
    b.plan(
        1,
        k.planner_in(
            vec!["step 0: not_found".into()],
            Some("the target does not exist".into()),
        ),
        k.planner_out(p2, "locate first, then act"),
    );
    let fail = FailureNote {
        tool: Some(t0.into()),
        error_class: "not_found".into(),
        message: "no such target".into(),
    };
    let at = Kit::ok_attempt(t1, Kit::args(a1, "located"), rng);
    b.work(
        1,
        k.worker_in(0, vec![fail]),
        Kit::action(
            t1,
            Kit::args(a1, "located"),
            "locate the target, avoiding the failed path",
        ),
        vec![at],
        Kit::worker_out(true, "located and done", None, 0),
    );
    b.verify(
        1,
        k.verifier_in(2, vec![format!("{t1} ok")], true),
        Kit::verdict(Verdict::End, "goal met", vec![]),
    );
    b.finish(Outcome::Success, None)
}

/// A good first step, a needless `replan`, the same plan again, success.
fn needless_replan(mut b: RunBuilder, k: &Kit, rng: &mut SplitMix64) -> (Session, Vec<Event>) {
    let ((t0, a0), (t1, a1)) = (k.first, k.last);
    let at = Kit::ok_attempt(t0, Kit::args(a0, "input"), rng);
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "input"), "start"),
        vec![at],
        Kit::worker_out(true, "first step done", None, 0),
    );
    b.verify(
        0,
        k.verifier_in(1, vec![format!("{t0} ok")], false),
        Kit::verdict(
            Verdict::Replan,
            "not sure this is right, plan again",
            vec!["low_confidence".into()],
        ),
    );
    b.plan(
        1,
        k.planner_in(vec!["step 0 ok".into()], Some("not sure".into())),
        k.planner_out(k.plan.clone(), "the plan was fine"),
    );
    let at = Kit::ok_attempt(t1, Kit::args(a1, "output"), rng);
    b.work(
        1,
        k.worker_in(1, vec![]),
        Kit::action(t1, Kit::args(a1, "output"), "continue the same plan"),
        vec![at],
        Kit::worker_out(true, "all steps done", None, 0),
    );
    b.verify(
        1,
        k.verifier_in(2, vec![format!("{t1} ok")], true),
        Kit::verdict(Verdict::End, "goal met", vec![]),
    );
    b.finish(Outcome::Success, None)
}

/// A wrong step that the verifier wrongly ends on.
fn false_stop(mut b: RunBuilder, k: &Kit, rng: &mut SplitMix64) -> (Session, Vec<Event>) {
    let (t0, a0) = k.first;
    let at = Kit::ok_attempt(t0, Kit::args(a0, "wrong"), rng);
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "wrong"), "this should do it"),
        vec![at],
        Kit::worker_out(true, "done (unchecked)", None, 0),
    );
    b.verify(
        0,
        k.verifier_in(1, vec![format!("{t0} ok")], false),
        Kit::verdict(Verdict::End, "looks done", vec![]),
    );
    b.finish(Outcome::Failure, Some("false_stop"))
}

/// Two denied attempts, a `continue`, and the budget runs out.
fn give_up(mut b: RunBuilder, k: &Kit) -> (Session, Vec<Event>) {
    let (t0, a0) = k.first;
    let a = ToolAttempt::err(t0, Kit::args(a0, "input"), "permission_denied");
    let c = ToolAttempt::err(t0, Kit::args(a0, "input"), "permission_denied");
    b.work(
        0,
        k.worker_in(0, vec![]),
        Kit::action(t0, Kit::args(a0, "input"), "run the tool"),
        vec![a, c],
        Kit::worker_out(false, "denied twice", Some("permission_denied"), 1),
    );
    b.verify(
        0,
        k.verifier_in(0, vec![format!("{t0} permission_denied x2")], false),
        Kit::verdict(
            Verdict::Continue,
            "try again",
            vec!["repeated_error".into()],
        ),
    );
    b.error("budget_exhausted", "step budget exhausted", true);
    b.finish(Outcome::Aborted, Some("budget_exhausted"))
}

/// Builds one run of a given scenario (for tests that need a specific labelling case).
pub fn scenario_run(
    key: u64,
    goal: &str,
    family: &str,
    scenario: Scenario,
) -> (Session, Vec<Event>) {
    let mut rng = SplitMix64::new(key);
    let fam = FAMILIES
        .iter()
        .find(|f| f.name == family)
        .unwrap_or(&FAMILIES[0]);
    let mut s = build_scenario(key, goal, fam, scenario, false, &mut rng);
    s.0.goal_family = family.to_string();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_runs_pass_schema_validation() {
        let mut rng = SplitMix64::new(3);
        for k in 0..40 {
            let (s, e) = synth_run(k, &mut rng);
            let text: String = e
                .iter()
                .map(|x| serde_json::to_string(x).unwrap() + "\n")
                .collect();
            let check = traj_schema::validate_run(&serde_json::to_string(&s).unwrap(), &text);
            assert!(check.is_valid(), "{:?}", check.violations);
            assert_eq!(check.events_with_valid_lineage, e.len() as u64);
        }
    }

    #[test]
    fn corpus_is_reproducible_and_has_every_event_type() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ra = generate_corpus(a.path(), 30, 9).unwrap();
        let rb = generate_corpus(b.path(), 30, 9).unwrap();
        assert_eq!(ra.len(), 30);
        let mut types = std::collections::BTreeSet::new();
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(x.file_name(), y.file_name());
            let ex = std::fs::read(x.join("events.jsonl")).unwrap();
            assert_eq!(ex, std::fs::read(y.join("events.jsonl")).unwrap());
            for line in String::from_utf8(ex).unwrap().lines() {
                let e: Event = serde_json::from_str(line).unwrap();
                types.insert(e.event_type());
            }
        }
        assert_eq!(types.len(), EventType::ALL.len(), "{types:?}");
    }
}
