//! Unit tests of the span helpers: the attributes, links, events and statuses they record, read
//! back from the SDK's finished spans (real tracing → OTel layer, in-process exporter).

use crate::step_spans::record_payload;
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
use traj_schema::llm::{ChatMessage, MessagePart, ToolDefinition, Usage};
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
        seed_kind: Some(traj_schema::SeedKind::Fixed),
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
    assert_eq!(attr_str(root, keys::SEED_KIND), "fixed");
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

fn attr_json(s: &SpanData, key: &str) -> serde_json::Value {
    let text = attr_str(s, key);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{key} is not JSON ({e}): {text:?}"))
}

fn tool_call(id: &str, args: serde_json::Value) -> MessagePart {
    MessagePart::ToolCall {
        id: id.into(),
        name: "read_file".into(),
        arguments: args,
    }
}

fn read_file_tool() -> ToolDefinition {
    ToolDefinition {
        name: "read_file".into(),
        description: "Read a text file of the workspace".into(),
        parameters: json!({
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        }),
        strict: None,
    }
}

/// A worker step as a two-turn tool loop: the model calls a tool, sees its error, calls again.
fn tool_loop() {
    let run = RunSpan::start(info("sim-1"));
    let worker = run.worker(0);
    let system = [MessagePart::text("You are the worker.")];
    let tools = [read_file_tool()];
    let params: BTreeMap<String, serde_json::Value> = [
        ("temperature".to_string(), json!(0.25)),
        ("max_tokens".to_string(), json!(256)),
        ("stop".to_string(), json!(["</end>"])),
        ("model".to_string(), json!("ignored")),
    ]
    .into();
    let user = ChatMessage::new("user", vec![MessagePart::text("Read a.txt")]);
    let first = ChatMessage {
        finish_reason: Some("tool_call".into()),
        ..ChatMessage::new(
            "assistant",
            vec![tool_call("c1", json!({"path": "/a.txt"}))],
        )
    };
    let llm = worker.llm_call("sim-worker", "user: Read a.txt");
    llm.request(&params)
        .system_instructions(&system)
        .tool_definitions(&tools)
        .input_messages(std::slice::from_ref(&user))
        .output_messages(std::slice::from_ref(&first))
        .response(
            "resp-1",
            Usage {
                input_tokens: 30,
                output_tokens: 9,
            },
        );
    drop(llm);
    worker
        .tool_call("read_file", "c1", &json!({"path": "/a.txt"}), 1)
        .err("invalid_arguments", "path is absolute");
    let error = ChatMessage::new(
        "tool",
        vec![MessagePart::ToolCallResponse {
            id: "c1".into(),
            response: json!({"error": "path is absolute"}),
        }],
    );
    let second = ChatMessage {
        finish_reason: Some("tool_call".into()),
        ..ChatMessage::new("assistant", vec![tool_call("c1", json!({"path": "a.txt"}))])
    };
    worker
        .llm_call("sim-worker", "user: Read a.txt (retry)")
        .system_instructions(&system)
        .tool_definitions(&tools)
        .input_messages(&[user, first, error])
        .output_messages(&[second])
        .response(
            "resp-2",
            Usage {
                input_tokens: 50,
                output_tokens: 9,
            },
        );
    drop(worker);
    run.finish(Outcome::Success, None);
}

/// The LLM spans in start order.
fn llm_spans(spans: &[SpanData]) -> Vec<&SpanData> {
    let mut llms = by_role(spans, "llm");
    llms.sort_by_key(|s| s.start_time);
    llms
}

#[test]
fn a_conversation_is_recorded_as_genai_json() {
    let spans = capture(tool_loop);
    let worker = by_role(&spans, "worker")[0];
    let llms = llm_spans(&spans);
    assert_eq!(llms.len(), 2);
    assert_eq!(attr_str(llms[0], keys::GEN_AI_RESPONSE_ID), "resp-1");
    assert_eq!(attr_str(llms[1], keys::GEN_AI_RESPONSE_ID), "resp-2");
    for llm in &llms {
        assert_eq!(llm.parent_span_id, worker.span_context.span_id());
        assert_eq!(
            attr_json(llm, keys::GEN_AI_SYSTEM_INSTRUCTIONS),
            json!([{"type": "text", "content": "You are the worker."}])
        );
        assert_eq!(
            attr_json(llm, keys::GEN_AI_TOOL_DEFINITIONS),
            json!([{
                "type": "function",
                "name": "read_file",
                "description": "Read a text file of the workspace",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            }])
        );
        assert_eq!(
            attr(llm, keys::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(&OtelValue::Array(
                vec![opentelemetry::StringValue::from("tool_call")].into()
            ))
        );
    }
    let first = llms[0];
    assert_eq!(
        attr_json(first, keys::GEN_AI_INPUT_MESSAGES),
        json!([{"role": "user", "parts": [{"type": "text", "content": "Read a.txt"}]}])
    );
    assert_eq!(
        attr_json(first, keys::GEN_AI_OUTPUT_MESSAGES),
        json!([{
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "read_file", "arguments": {"path": "/a.txt"}}],
            "finish_reason": "tool_call",
        }])
    );
    assert_eq!(
        attr(first, keys::GEN_AI_USAGE_INPUT_TOKENS),
        Some(&OtelValue::I64(30))
    );
    assert_eq!(
        attr(first, keys::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some(&OtelValue::I64(9))
    );
    assert_eq!(
        attr(first, "gen_ai.request.temperature"),
        Some(&OtelValue::F64(0.25))
    );
    assert_eq!(
        attr(first, "gen_ai.request.max_tokens"),
        Some(&OtelValue::I64(256))
    );
    assert_eq!(
        attr(first, "gen_ai.request.stop"),
        Some(&OtelValue::Array(
            vec![opentelemetry::StringValue::from("</end>")].into()
        ))
    );
    assert_eq!(attr_str(first, keys::GEN_AI_REQUEST_MODEL), "sim-worker");
    assert_eq!(
        first
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == keys::GEN_AI_REQUEST_MODEL)
            .count(),
        1,
        "a `model` request parameter does not override the model"
    );
    // The second turn carries the first: its tool call and the tool's error response.
    assert_eq!(
        attr_json(llms[1], keys::GEN_AI_INPUT_MESSAGES),
        json!([
            {"role": "user", "parts": [{"type": "text", "content": "Read a.txt"}]},
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": "c1", "name": "read_file", "arguments": {"path": "/a.txt"}}],
                "finish_reason": "tool_call",
            },
            {
                "role": "tool",
                "parts": [{"type": "tool_call_response", "id": "c1", "response": {"error": "path is absolute"}}],
            },
        ])
    );
    // What the reader parses them into is what was recorded.
    let input: Vec<ChatMessage> =
        serde_json::from_str(&attr_str(llms[1], keys::GEN_AI_INPUT_MESSAGES)).unwrap();
    assert_eq!(input.len(), 3);
    assert_eq!(
        input[1].parts[0],
        tool_call("c1", json!({"path": "/a.txt"}))
    );
    let tools: Vec<ToolDefinition> =
        serde_json::from_str(&attr_str(llms[1], keys::GEN_AI_TOOL_DEFINITIONS)).unwrap();
    assert_eq!(tools, vec![read_file_tool()]);
}

#[test]
fn output_text_is_one_assistant_message_that_stopped() {
    let spans = capture(|| {
        let run = RunSpan::start(info("sim-1"));
        run.verifier(0)
            .llm_call("sim-verifier", "judge")
            .output_text("end: goal met");
        run.finish(Outcome::Success, None);
    });
    let llm = by_role(&spans, "llm")[0];
    assert_eq!(
        attr_json(llm, keys::GEN_AI_OUTPUT_MESSAGES),
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "end: goal met"}], "finish_reason": "stop"}])
    );
    assert_eq!(
        attr(llm, keys::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(&OtelValue::Array(
            vec![opentelemetry::StringValue::from("stop")].into()
        ))
    );
    assert!(attr(llm, keys::GEN_AI_RESPONSE_ID).is_none());
    assert!(attr(llm, keys::GEN_AI_INPUT_MESSAGES).is_none());
}

#[test]
fn messages_are_redacted_like_payloads() {
    let secret = "dave@example.com";
    let args = json!({"to": secret, "body": "hi"});
    let spans = capture(|| {
        let run = RunSpan::start(info("sim-1"));
        let worker = run.worker(0);
        let call = ChatMessage::new(
            "assistant",
            vec![MessagePart::ToolCall {
                id: "c1".into(),
                name: "send_mail".into(),
                arguments: args.clone(),
            }],
        );
        worker
            .llm_call("sim-worker", &format!("mail {secret}"))
            .system_instructions(&[MessagePart::text(format!("never mail {secret}"))])
            .input_messages(&[
                ChatMessage::new("user", vec![MessagePart::text(format!("mail {secret}"))]),
                call.clone(),
                ChatMessage::new(
                    "tool",
                    vec![MessagePart::ToolCallResponse {
                        id: "c1".into(),
                        response: json!({"sent_to": secret}),
                    }],
                ),
            ])
            .output_messages(&[call])
            .request([("user", &json!(secret))]);
        worker
            .tool_call("send_mail", "c1", &args, 1)
            .ok(&json!({"sent_to": secret}));
        drop(worker);
        run.finish(Outcome::Success, None);
    });
    let llm = by_role(&spans, "llm")[0];
    for key in [
        keys::GEN_AI_SYSTEM_INSTRUCTIONS,
        keys::GEN_AI_INPUT_MESSAGES,
        keys::GEN_AI_OUTPUT_MESSAGES,
        keys::PROMPT_RENDERED,
        "gen_ai.request.user",
    ] {
        let v = attr_str(llm, key);
        assert!(!v.is_empty(), "{key} recorded");
        assert!(!v.contains(secret), "{key}: {v}");
    }
    // The tool-call part's arguments are redacted exactly as the tool span's arguments.
    let tool = by_role(&spans, "tool")[0];
    let span_args = attr_json(tool, keys::GEN_AI_TOOL_CALL_ARGUMENTS);
    assert_ne!(span_args, args);
    let out = attr_json(llm, keys::GEN_AI_OUTPUT_MESSAGES);
    assert_eq!(out[0]["parts"][0]["arguments"], span_args);
    assert_eq!(
        attr_json(llm, keys::GEN_AI_INPUT_MESSAGES)[2]["parts"][0]["response"],
        attr_json(tool, keys::GEN_AI_TOOL_CALL_RESULT)
    );
}

/// Counts how often it is serialized.
struct Counting<'a>(&'a std::sync::atomic::AtomicUsize);

impl serde::Serialize for Counting<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.serialize_str("payload")
    }
}

#[test]
fn payloads_of_spans_nobody_wants_are_never_serialized() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = AtomicUsize::new(0);
    record_payload(
        &tracing::Span::none(),
        "gen_ai.input.messages",
        &Counting(&n),
    );
    assert_eq!(n.load(Ordering::Relaxed), 0);
    let spans = capture(|| {
        let run = RunSpan::start(info("sim-1"));
        let llm = run.worker(0).llm_call("sim-worker", "p");
        record_payload(llm.span(), "gen_ai.input.messages", &Counting(&n));
    });
    assert_eq!(n.load(Ordering::Relaxed), 1);
    assert_eq!(
        attr_str(by_role(&spans, "llm")[0], keys::GEN_AI_INPUT_MESSAGES),
        "\"payload\""
    );
}
