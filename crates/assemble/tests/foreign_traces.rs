//! Foreign traces (GenAI or OpenInference conventions, no `traj.*` keys) mapped to roles by
//! the default and by custom [`MappingRules`].

mod common;

use common::*;
use serde_json::json;
use traj_assemble::{assemble, MappingRules};
use traj_schema::{keys, EventType, Lineage, Payload, Role};

fn genai_agent(
    id: u64,
    parent: u64,
    name: &str,
    start: u64,
    end: u64,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut sp = span(
        id,
        Some(parent),
        &format!("invoke_agent {name}"),
        T0 + start,
        T0 + end,
    );
    sp.attributes = vec![
        s(keys::GEN_AI_OPERATION_NAME, "invoke_agent"),
        s(keys::GEN_AI_AGENT_NAME, name),
    ];
    sp
}

fn genai_chat(
    id: u64,
    parent: u64,
    start: u64,
    end: u64,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut sp = span(id, Some(parent), "chat gpt-x", T0 + start, T0 + end);
    sp.attributes = vec![
        s(keys::GEN_AI_OPERATION_NAME, "chat"),
        s(keys::GEN_AI_REQUEST_MODEL, "gpt-x"),
        i(keys::GEN_AI_USAGE_INPUT_TOKENS, 1000),
        i(keys::GEN_AI_USAGE_OUTPUT_TOKENS, 500),
    ];
    sp
}

/// A GenAI-instrumented crew: workflow root; Architect (planner) → coder (worker, one tool) →
/// Critic (verifier) → coder again; an HTTP client span nobody maps.
fn genai_trace() -> Vec<traj_assemble::SpanRecord> {
    let mut root = span(1, None, "invoke_workflow crew", T0, T0 + 1000);
    root.attributes = vec![
        s(keys::GEN_AI_OPERATION_NAME, "invoke_workflow"),
        j(
            keys::GEN_AI_INPUT_MESSAGES,
            json!([{"role": "user", "parts": [{"type": "text", "content": "fix the bug"}]}]),
        ),
    ];
    let mut plan = genai_agent(2, 1, "Architect", 10, 100);
    plan.attributes.push(j(
        keys::GEN_AI_OUTPUT_MESSAGES,
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "1. read file\n2. patch"}]}]),
    ));
    let chat_p = genai_chat(3, 2, 20, 90);
    let mut coder = genai_agent(4, 1, "coder", 110, 300);
    coder.attributes.push(j(
        keys::GEN_AI_INPUT_MESSAGES,
        json!([{"role": "system", "content": "be careful"}, {"role": "user", "content": "read file"}]),
    ));
    let mut tool = span(5, Some(4), "execute_tool read_file", T0 + 120, T0 + 150);
    tool.attributes = vec![
        s(keys::GEN_AI_OPERATION_NAME, "execute_tool"),
        s(keys::GEN_AI_TOOL_NAME, "read_file"),
        s(keys::GEN_AI_TOOL_CALL_ID, "c1"),
        j(keys::GEN_AI_TOOL_CALL_ARGUMENTS, json!({"path": "main.rs"})),
        s(keys::GEN_AI_TOOL_CALL_RESULT, "not json, just text"),
    ];
    let http = span(6, Some(4), "GET /api", T0 + 160, T0 + 170);
    let chat_w = genai_chat(7, 4, 200, 290);
    let mut critic = genai_agent(8, 1, "critic", 310, 400);
    critic.attributes.push(j(
        keys::GEN_AI_OUTPUT_MESSAGES,
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Continue"}]}]),
    ));
    let coder2 = genai_agent(9, 1, "coder", 410, 500);
    [
        root, plan, chat_p, coder, tool, http, chat_w, critic, coder2,
    ]
    .into_iter()
    .map(rec)
    .collect()
}

#[test]
fn genai_trace_maps_through_default_rules() {
    let mut rules = MappingRules::default();
    rules.prices.insert(
        "gpt-x".into(),
        traj_assemble::ModelPrice {
            input_per_mtok: 2.0,
            output_per_mtok: 10.0,
        },
    );
    let run = assemble(TRACE, &genai_trace(), &rules);
    assert_valid(&run);
    let ev = &run.events;
    let s = &run.session;
    assert_eq!(s.source, "foreign:genai");
    assert!(s.root_span_seen);
    assert_eq!(s.goal, "fix the bug", "from the root's input messages");
    assert_eq!(run.unmapped_spans, 1);
    assert_eq!(s.lineage.unmapped_spans, 1);
    assert_eq!(s.summary.llm_calls, 2);
    assert_eq!(s.summary.tool_calls, 1);
    assert_eq!(s.summary.input_tokens, 2000);
    // 2 × (1000 × 2 + 500 × 10) / 1e6
    assert!((s.summary.cost_estimate_usd - 0.014).abs() < 1e-12);
    assert_eq!(s.model_stack["planner"].model, "gpt-x");
    assert_eq!(s.summary.step_count, 2);

    let of = |span: u64, ty: EventType| {
        ev.iter()
            .find(|e| e.span_id == hex_sid(span) && e.event_type() == ty)
            .unwrap_or_else(|| panic!("no {ty:?} on {span}"))
    };
    let p_out = of(2, EventType::PlannerOutput);
    assert_eq!(p_out.source, "genai.planner");
    assert_eq!(p_out.role, Role::Planner);
    match &p_out.payload {
        Payload::PlannerOutput(p) => {
            assert_eq!(p.plan.len(), 2);
            assert_eq!(p.plan[1].description, "patch", "list marker stripped");
            assert_eq!(p.llm_calls.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let w_in = of(4, EventType::WorkerInput);
    assert_eq!(w_in.source, "genai.worker");
    assert_eq!(w_in.step, 0);
    assert_eq!(
        w_in.lineage,
        Lineage::Parent,
        "no links: it follows the planner's output"
    );
    assert_eq!(
        w_in.parent_event_id.as_deref(),
        Some(p_out.event_id.as_str())
    );
    assert_eq!(
        ev.iter().filter(|e| e.lineage == Lineage::Root).count(),
        1,
        "one root event per run"
    );
    match &w_in.payload {
        Payload::WorkerInput(w) => assert_eq!(w.current_step, "read file"),
        other => panic!("{other:?}"),
    }
    match &of(4, EventType::WorkerAction).payload {
        Payload::WorkerAction(a) => {
            assert_eq!(a.action, "tool_call");
            assert_eq!(a.tool.as_deref(), Some("read_file"));
            assert_eq!(a.arguments["path"], "main.rs");
        }
        other => panic!("{other:?}"),
    }
    let call = of(5, EventType::WorkerToolCall);
    assert_eq!(call.source, "genai.tool");
    assert_eq!(
        call.parent_event_id.as_deref(),
        Some(of(4, EventType::WorkerAction).event_id.as_str())
    );
    match &of(5, EventType::WorkerToolResult).payload {
        Payload::WorkerToolResult(r) => assert_eq!(r.result, json!("not json, just text")),
        other => panic!("{other:?}"),
    }
    let v_out = of(8, EventType::VerifierOutput);
    assert_eq!(v_out.source, "genai.verifier");
    match &v_out.payload {
        Payload::VerifierOutput(v) => assert_eq!(v.verdict, traj_schema::Verdict::Continue),
        other => panic!("{other:?}"),
    }
    // The second coder run starts a new cycle.
    assert_eq!(of(9, EventType::WorkerInput).step, 1);
    let end = ev.last().unwrap();
    assert_eq!(end.event_type(), EventType::EpisodeEnd);
    assert_eq!(end.source, "genai.workflow");
    assert!(
        ev.iter().all(|e| e.span_id != hex_sid(6)),
        "unmapped span has no events"
    );
}

#[test]
fn openinference_trace_maps_through_default_rules() {
    let kind = |k: &str| s(keys::OPENINFERENCE_SPAN_KIND, k);
    let mut root = span(1, None, "RAG pipeline", T0, T0 + 100);
    root.attributes = vec![kind("CHAIN"), s("input.value", "what is 2+2?")];
    let mut agent = span(2, Some(1), "math_agent", T0 + 5, T0 + 90);
    agent.attributes = vec![
        kind("AGENT"),
        s("input.value", "what is 2+2?"),
        s("output.value", "4"),
    ];
    let mut llm = span(3, Some(2), "ChatCompletion", T0 + 10, T0 + 40);
    llm.attributes = vec![
        kind("LLM"),
        s("llm.model_name", "oi-model"),
        i("llm.token_count.prompt", 12),
        i("llm.token_count.completion", 3),
    ];
    let mut calc = span(4, Some(2), "calculator", T0 + 50, T0 + 60);
    calc.attributes = vec![
        kind("TOOL"),
        s("tool.name", "calculator"),
        s("input.value", "{\"expr\": \"2+2\"}"),
        s("output.value", "4"),
    ];
    let mut judge = span(5, Some(1), "judge", T0 + 91, T0 + 99);
    judge.attributes = vec![kind("EVALUATOR"), s("output.value", "end")];
    let mut retr = span(6, Some(1), "retrieve", T0 + 1, T0 + 4);
    retr.attributes = vec![kind("RETRIEVER")];
    let spans: Vec<_> = [root, agent, llm, calc, judge, retr]
        .into_iter()
        .map(rec)
        .collect();
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    assert_eq!(run.session.source, "foreign:openinference");
    assert_eq!(run.session.goal, "what is 2+2?");
    assert_eq!(run.unmapped_spans, 1);
    assert_eq!(run.session.summary.input_tokens, 12);
    let find = |ty: EventType| run.events.iter().find(|e| e.event_type() == ty).unwrap();
    assert_eq!(find(EventType::WorkerInput).source, "openinference.worker");
    assert_eq!(find(EventType::WorkerToolCall).source, "openinference.tool");
    match &find(EventType::WorkerToolCall).payload {
        Payload::WorkerToolCall(c) => {
            assert_eq!(c.tool, "calculator");
            assert_eq!(c.arguments["expr"], "2+2");
        }
        other => panic!("{other:?}"),
    }
    match &find(EventType::WorkerOutput).payload {
        Payload::WorkerOutput(o) => {
            assert_eq!(o.summary, "4");
            assert_eq!(o.llm_calls[0].model, "oi-model");
        }
        other => panic!("{other:?}"),
    }
    match &find(EventType::VerifierOutput).payload {
        Payload::VerifierOutput(v) => assert_eq!(v.verdict, traj_schema::Verdict::End),
        other => panic!("{other:?}"),
    }
    assert_eq!(find(EventType::EpisodeEnd).source, "openinference.root");
}

#[test]
fn custom_rules_from_toml_take_precedence() {
    let rules = MappingRules::from_toml_str(
        r#"
        [[rule]]
        name = "crew.reviewer"
        role = "verifier"
        agent_name = ["coder"]
        "#,
    )
    .unwrap();
    let run = assemble(TRACE, &genai_trace(), &rules);
    assert_valid(&run);
    let coder_events: Vec<_> = run
        .events
        .iter()
        .filter(|e| e.span_id == hex_sid(4))
        .collect();
    assert!(coder_events
        .iter()
        .all(|e| e.source == "crew.reviewer" && e.role == Role::Verifier));
}

#[test]
fn a_foreign_trace_without_any_mapping_is_all_unmapped_but_valid() {
    let rules = MappingRules::from_toml_str("defaults = false\n[[rule]]\nname = \"x\"\nrole = \"tool\"\nspan_name = [\"nothing-matches-this\"]\n").unwrap();
    let run = assemble(TRACE, &genai_trace(), &rules);
    assert_valid(&run);
    // The parentless span stands for the run; the two LLM calls are recognised whatever the
    // rules (but belong to no step, so they make no events); the other six are unmapped.
    assert_eq!(run.unmapped_spans, 6);
    assert_eq!(run.session.summary.llm_calls, 2);
    assert_eq!(run.events.len(), 1);
    assert_eq!(run.events[0].event_type(), EventType::EpisodeEnd);
    assert_eq!(run.events[0].source, "foreign.root");
}
