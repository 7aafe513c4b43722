//! Unit tests of the span helpers: the attributes, links, events and statuses they record, read
//! back from the SDK's finished spans (real tracing → OTel layer, in-process exporter).

use crate::{OrchestratorState, RunInfo, RunSpan, SpanHandle};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;
use traj_schema::event::*;
use traj_schema::keys;
use traj_schema::session::{ModelSpec, RuntimeConfig};

#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn info(model: &str) -> RunInfo {
    let mut model_stack = BTreeMap::new();
    for role in ["planner", "worker", "verifier"] {
        model_stack.insert(
            role.to_string(),
            ModelSpec {
                model: model.to_string(),
                params: BTreeMap::new(),
            },
        );
    }
    RunInfo {
        agent_name: "test-agent".into(),
        goal: "write hello to a.txt".into(),
        goal_family: "file_ops".into(),
        task_id: Some("file_ops/0".into()),
        seed: 42,
        model_stack,
        runtime_config: RuntimeConfig {
            max_steps: 4,
            tool_mode: "real".into(),
            ..RuntimeConfig::default()
        },
        prompts: [("planner".to_string(), "Plan: {goal}".to_string())].into(),
        tools: vec![json!({"name": "write_file", "parameters": {"path": "string"}})],
    }
}

/// Runs `f` under a subscriber wired like `build()` but exporting into memory.
fn capture(f: impl FnOnce()) -> Vec<SpanData> {
    let out = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(out.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    provider.force_flush().unwrap();
    let spans = out.0.lock().unwrap().clone();
    spans
}

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(s: &SpanData, key: &str) -> String {
    attr(s, key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

fn by_role<'a>(spans: &'a [SpanData], role: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| attr_str(s, keys::ROLE) == role)
        .collect()
}

fn one_cycle() {
    let run = RunSpan::start(info("sim-1"));
    let planner = run.planner(0);
    planner.input(&PlannerInput {
        goal: "write hello".into(),
        ..Default::default()
    });
    planner
        .llm_call("sim-planner", "Plan: write hello")
        .usage(5, 7);
    planner.output(&PlannerOutput {
        plan: vec![PlanStep {
            index: 0,
            description: "write".into(),
            tool: Some("write_file".into()),
        }],
        ..Default::default()
    });
    let worker = run.worker(0).link(&planner.link_target());
    worker.input(&WorkerInput {
        current_step: "write".into(),
        ..Default::default()
    });
    worker.action(&WorkerAction {
        action: "tool_call".into(),
        tool: Some("write_file".into()),
        ..Default::default()
    });
    worker
        .tool_call("write_file", "c1", &json!({"path": "/"}), 1)
        .err("invalid_arguments", "path is a directory");
    let tool = worker.tool_call("write_file", "c1", &json!({"path": "a.txt"}), 2);
    tool.observation("fs", &json!({"exists": true}));
    tool.ok(&json!({"bytes": 5}));
    worker.output(&WorkerOutput {
        status: ToolStatus::Ok,
        retries: 1,
        ..Default::default()
    });
    let verifier = run.verifier(0).link(&worker.link_target());
    verifier.input(&VerifierInput::default());
    verifier.verdict(&VerifierOutput {
        verdict: Verdict::End,
        feedback: "done".into(),
        risk_flags: vec![],
        confidence: Some(0.9),
        llm_calls: vec![],
    });
    verifier.transition(OrchestratorState::Verifying, OrchestratorState::Done, "end");
    drop((planner, worker, verifier));
    run.finish(Outcome::Success, None);
}

#[test]
fn every_required_key_of_every_role_is_set() {
    let spans = capture(one_cycle);
    assert_eq!(
        spans.len(),
        7,
        "run, planner, llm, worker, 2 tools, verifier"
    );
    for spec in keys::ATTRIBUTES.iter().filter(|a| a.required) {
        for role in spec.on.iter().filter(|r| !r.starts_with("event:")) {
            for s in by_role(&spans, role) {
                assert!(
                    attr(s, spec.key).is_some(),
                    "{} span {:?} lacks required {}",
                    role,
                    s.name,
                    spec.key
                );
            }
        }
    }
}

#[test]
fn names_types_and_tree_follow_the_conventions() {
    let spans = capture(one_cycle);
    let root = by_role(&spans, "run")[0];
    assert_eq!(root.name, "invoke_workflow test-agent");
    assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    let run_id = format!("{}", root.span_context.trace_id());
    assert_eq!(attr_str(root, keys::GEN_AI_CONVERSATION_ID), run_id);
    assert_eq!(attr(root, keys::SEED), Some(&OtelValue::I64(42)));
    assert_eq!(attr(root, keys::SPANS_DROPPED), Some(&OtelValue::I64(0)));
    assert_eq!(attr_str(root, keys::OUTCOME), "success");
    assert_eq!(attr_str(root, keys::SCHEMA_VERSION), "2");
    let ms: serde_json::Value = serde_json::from_str(&attr_str(root, keys::MODEL_STACK)).unwrap();
    assert_eq!(ms["worker"]["model"], "sim-1");

    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    for n in [
        "plan planner",
        "invoke_agent worker",
        "invoke_agent verifier",
        "execute_tool write_file",
        "chat sim-planner",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    // One trace; every non-root span's parent is in it.
    for s in &spans {
        assert_eq!(s.span_context.trace_id(), root.span_context.trace_id());
        if s.parent_span_id != opentelemetry::trace::SpanId::INVALID {
            assert!(spans
                .iter()
                .any(|p| p.span_context.span_id() == s.parent_span_id));
        }
    }
    let planner = by_role(&spans, "planner")[0];
    assert_eq!(attr(planner, keys::STEP), Some(&OtelValue::I64(0)));
    let out: PlannerOutput =
        serde_json::from_str(&attr_str(planner, keys::PLANNER_OUTPUT)).unwrap();
    assert_eq!(out.plan[0].tool.as_deref(), Some("write_file"));
    let llm = by_role(&spans, "llm")[0];
    assert_eq!(llm.parent_span_id, planner.span_context.span_id());
    assert_eq!(
        attr(llm, keys::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some(&OtelValue::I64(7))
    );
    assert_eq!(
        attr_str(llm, keys::PROMPT_HASH),
        traj_schema::hashing::hash_str("Plan: write hello")
    );
}

#[test]
fn links_errors_and_events_are_recorded() {
    let spans = capture(one_cycle);
    let planner = by_role(&spans, "planner")[0];
    let worker = by_role(&spans, "worker")[0];
    let verifier = by_role(&spans, "verifier")[0];
    assert_eq!(
        worker.links.links[0].span_context.span_id(),
        planner.span_context.span_id()
    );
    assert_eq!(
        verifier.links.links[0].span_context.span_id(),
        worker.span_context.span_id()
    );
    assert_eq!(attr_str(verifier, keys::VERDICT), "end");

    let tools = by_role(&spans, "tool");
    let failed = tools
        .iter()
        .find(|t| attr_str(t, keys::TOOL_STATUS) == "error")
        .unwrap();
    assert!(matches!(failed.status, Status::Error { .. }));
    assert_eq!(attr_str(failed, keys::ERROR_TYPE), "invalid_arguments");
    assert_eq!(attr(failed, keys::RETRY_ATTEMPT), Some(&OtelValue::I64(1)));
    let exc = failed
        .events
        .events
        .iter()
        .find(|e| e.name == "exception")
        .unwrap();
    let exc_type = exc
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == keys::EXCEPTION_TYPE)
        .unwrap();
    assert_eq!(exc_type.value.as_str(), "invalid_arguments");

    let ok = tools
        .iter()
        .find(|t| attr_str(t, keys::TOOL_STATUS) == "ok")
        .unwrap();
    assert_eq!(attr(ok, keys::RETRY_ATTEMPT), Some(&OtelValue::I64(2)));
    assert_eq!(attr_str(ok, keys::GEN_AI_TOOL_CALL_ID), "c1");
    assert!(ok
        .events
        .events
        .iter()
        .any(|e| e.name == keys::EVENT_OBSERVATION));
    assert!(!matches!(ok.status, Status::Error { .. }));

    let tr = verifier
        .events
        .events
        .iter()
        .find(|e| e.name == keys::EVENT_TRANSITION)
        .unwrap();
    let to = tr
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == keys::TRANSITION_TO)
        .unwrap();
    assert_eq!(to.value.as_str(), "done");
}

#[test]
fn a_dropped_run_is_exported_as_aborted() {
    let spans = capture(|| {
        let run = RunSpan::start(info("sim-1"));
        let _p = run.planner(0);
        assert_eq!(run.run_id().len(), 32);
        assert_eq!(run.span_id().len(), 16);
        // no finish: a cancelled task drops the run
    });
    let root = by_role(&spans, "run")[0];
    assert_eq!(attr_str(root, keys::OUTCOME), "aborted");
    assert_eq!(attr_str(root, keys::FAILURE_CLASS), "cancelled");
}

#[test]
fn hashes_are_stable_and_sensitive_to_config() {
    let a = info("sim-1").hashes();
    assert_eq!(a, info("sim-1").hashes());
    let b = info("sim-2").hashes();
    assert_ne!(a.config_hash, b.config_hash);
    assert_eq!(a.prompt_hash, b.prompt_hash);
    assert_eq!(a.toolset_hash, b.toolset_hash);
    let mut c = info("sim-1");
    c.prompts.insert("worker".into(), "Do: {step}".into());
    assert_ne!(c.hashes().prompt_hash, a.prompt_hash);
    // Defined on canonical JSON, so reproducible from the spec alone.
    let expected = traj_schema::hashing::hash_json(&json!({
        "model_stack": info("sim-1").model_stack,
        "runtime_config": info("sim-1").runtime_config,
    }));
    assert_eq!(a.config_hash, expected);
}

#[test]
fn goal_and_payloads_are_redacted_before_they_become_attributes() {
    let spans = capture(|| {
        let mut i = info("sim-1");
        i.goal = "mail the report to carol@example.com".into();
        let run = RunSpan::start(i);
        run.planner(0).input(&PlannerInput {
            goal: "mail carol@example.com".into(),
            ..Default::default()
        });
        run.finish(Outcome::Success, None);
    });
    let root = by_role(&spans, "run")[0];
    assert!(!attr_str(root, keys::GOAL).contains("carol@example.com"));
    assert!(attr_str(root, keys::GOAL).starts_with("mail the report to "));
    assert_eq!(attr_str(root, keys::REDACTION_POLICY), "traj-source");
    let planner = by_role(&spans, "planner")[0];
    assert!(!attr_str(planner, keys::PLANNER_INPUT).contains("carol@example.com"));
}
