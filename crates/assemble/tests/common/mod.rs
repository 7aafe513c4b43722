//! Test helpers: build OTLP spans the way `docs/conventions.md` says an instrumented agent
//! emits them (schema v2 attributes, links, span events), and check runs with the validator.
#![allow(dead_code)]

use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event as SpanEvent, Link},
    status::StatusCode,
    Span, Status,
};
use serde_json::{json, Value};
use std::sync::Arc;
use traj_assemble::{AssembledRun, SpanRecord};
use traj_schema::keys;

pub const TRACE: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];

/// Span id for a small test number (never all zero).
pub fn sid(n: u64) -> [u8; 8] {
    (n + 0x1000).to_be_bytes()
}

pub fn hex_sid(n: u64) -> String {
    hex::encode(sid(n))
}

pub fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Av::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Av::IntValue(v)),
        }),
        ..Default::default()
    }
}

pub fn j(k: &str, v: Value) -> KeyValue {
    s(k, &v.to_string())
}

pub fn ev(name: &str, time: u64, attrs: Vec<KeyValue>) -> SpanEvent {
    SpanEvent {
        time_unix_nano: time,
        name: name.into(),
        attributes: attrs,
        ..Default::default()
    }
}

pub fn link(to: u64) -> Link {
    Link {
        trace_id: TRACE.to_vec(),
        span_id: sid(to).to_vec(),
        ..Default::default()
    }
}

/// A bare span of the test trace.
pub fn span(id: u64, parent: Option<u64>, name: &str, start: u64, end: u64) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: sid(id).to_vec(),
        parent_span_id: parent.map(|p| sid(p).to_vec()).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

pub fn rec(span: Span) -> SpanRecord {
    SpanRecord {
        span,
        service_name: Arc::from("test-agent"),
    }
}

pub fn error_status(msg: &str) -> Option<Status> {
    Some(Status {
        message: msg.into(),
        code: StatusCode::Error as i32,
    })
}

// ---- schema v2 spans ------------------------------------------------------------------------

pub const T0: u64 = 1_795_000_000_000_000_000;

pub fn run_span(id: u64, start: u64, end: u64, outcome: &str) -> Span {
    let mut sp = span(id, None, "invoke_workflow demo", T0 + start, T0 + end);
    sp.attributes = vec![
        s(keys::SCHEMA_VERSION, "2"),
        s(keys::ROLE, "run"),
        s(keys::GOAL, "sum the column"),
        s(keys::GOAL_FAMILY, "arith"),
        i(keys::SEED, 7),
        s(keys::CONFIG_HASH, "sha256:00112233445566778899aabbccddeeff"),
        s(keys::PROMPT_HASH, "sha256:00112233445566778899aabbccddee00"),
        s(
            keys::TOOLSET_HASH,
            "sha256:00112233445566778899aabbccddee11",
        ),
        j(
            keys::MODEL_STACK,
            json!({"planner": {"model": "m-plan", "params": {"temperature": 0.2}},
                   "worker": {"model": "m-work"}, "verifier": {"model": "m-ver"}}),
        ),
        j(
            keys::RUNTIME_CONFIG,
            json!({"max_steps": 8, "tool_mode": "synthetic", "prompt_sources": {"planner": "file"}}),
        ),
        s(keys::REDACTION_POLICY, "default"),
        s(keys::REDACTION_VERSION, "1"),
        s(keys::OUTCOME, outcome),
        i(keys::SPANS_DROPPED, 0),
        s(keys::GEN_AI_OPERATION_NAME, "invoke_workflow"),
        s(keys::OPENINFERENCE_SPAN_KIND, "CHAIN"),
    ];
    sp
}

fn step_span(
    id: u64,
    parent: u64,
    role: &str,
    name: &str,
    step: i64,
    start: u64,
    end: u64,
) -> Span {
    let mut sp = span(id, Some(parent), name, T0 + start, T0 + end);
    sp.attributes = vec![
        s(keys::ROLE, role),
        i(keys::STEP, step),
        s(keys::GEN_AI_AGENT_NAME, role),
        s(
            keys::GEN_AI_OPERATION_NAME,
            if role == "planner" {
                "plan"
            } else {
                "invoke_agent"
            },
        ),
        s(
            keys::OPENINFERENCE_SPAN_KIND,
            if role == "verifier" {
                "EVALUATOR"
            } else {
                "AGENT"
            },
        ),
    ];
    sp
}

pub fn planner(
    id: u64,
    parent: u64,
    step: i64,
    start: u64,
    end: u64,
    replan: Option<&str>,
) -> Span {
    let mut sp = step_span(id, parent, "planner", "plan planner", step, start, end);
    let mut input = json!({"goal": "sum the column", "observation": {"files": 1},
                           "history": [], "tool_mask": {"read_csv": true}});
    if let Some(r) = replan {
        input["replan_reason"] = json!(r);
    }
    sp.attributes.push(j(keys::PLANNER_INPUT, input));
    sp.attributes.push(j(
        keys::PLANNER_OUTPUT,
        json!({"plan": [{"index": 0, "description": "read the csv", "tool": "read_csv"}],
               "rationale": "need data", "confidence": 0.8}),
    ));
    sp
}

pub fn worker(id: u64, parent: u64, step: i64, start: u64, end: u64, retries: u32) -> Span {
    let mut sp = step_span(
        id,
        parent,
        "worker",
        "invoke_agent worker",
        step,
        start,
        end,
    );
    sp.attributes.push(j(
        keys::WORKER_INPUT,
        json!({"plan_step": 0, "current_step": "read the csv", "env_state": {}, "allowed_tools": ["read_csv"], "prior_failures": []}),
    ));
    sp.attributes.push(j(
        keys::WORKER_ACTION,
        json!({"action": "tool_call", "tool": "read_csv", "arguments": {"path": "a.csv"}, "reasoning": "read it"}),
    ));
    sp.attributes.push(j(
        keys::WORKER_OUTPUT,
        json!({"status": "ok", "summary": "read 3 rows", "retries": retries}),
    ));
    sp
}

pub fn verifier(id: u64, parent: u64, step: i64, start: u64, end: u64, verdict: &str) -> Span {
    let mut sp = step_span(
        id,
        parent,
        "verifier",
        "invoke_agent verifier",
        step,
        start,
        end,
    );
    sp.attributes.push(j(
        keys::VERIFIER_INPUT,
        json!({"plan_progress": {"completed": 1, "total": 1}, "action_traces": ["read_csv ok"], "evidence": null}),
    ));
    sp.attributes.push(j(
        keys::VERIFIER_OUTPUT,
        json!({"verdict": verdict, "feedback": "looks fine", "risk_flags": []}),
    ));
    sp.attributes.push(s(keys::VERDICT, verdict));
    sp
}

pub fn tool(id: u64, parent: u64, start: u64, end: u64, attempt: i64, ok: bool) -> Span {
    let mut sp = span(
        id,
        Some(parent),
        "execute_tool read_csv",
        T0 + start,
        T0 + end,
    );
    sp.attributes = vec![
        s(keys::ROLE, "tool"),
        s(keys::GEN_AI_OPERATION_NAME, "execute_tool"),
        s(keys::GEN_AI_TOOL_NAME, "read_csv"),
        s(keys::GEN_AI_TOOL_CALL_ID, "call-1"),
        j(keys::GEN_AI_TOOL_CALL_ARGUMENTS, json!({"path": "a.csv"})),
        i(keys::RETRY_ATTEMPT, attempt),
        s(keys::TOOL_STATUS, if ok { "ok" } else { "error" }),
    ];
    if ok {
        sp.attributes
            .push(j(keys::GEN_AI_TOOL_CALL_RESULT, json!({"rows": 3})));
    } else {
        sp.attributes.push(s(keys::ERROR_CLASS, "timeout"));
        sp.status = error_status("timed out");
        sp.events.push(ev(
            keys::EVENT_EXCEPTION,
            T0 + end,
            vec![
                s(keys::EXCEPTION_TYPE, "timeout"),
                s(keys::EXCEPTION_MESSAGE, "read_csv timed out after 1s"),
            ],
        ));
    }
    sp
}

pub fn llm(id: u64, parent: u64, start: u64, end: u64, model: &str) -> Span {
    let mut sp = span(
        id,
        Some(parent),
        &format!("chat {model}"),
        T0 + start,
        T0 + end,
    );
    sp.attributes = vec![
        s(keys::ROLE, "llm"),
        s(keys::GEN_AI_OPERATION_NAME, "chat"),
        s(keys::GEN_AI_REQUEST_MODEL, model),
        s(keys::PROMPT_HASH, "sha256:abababababababababababababababab"),
        s(keys::PROMPT_RENDERED, "You are a planner."),
        i(keys::GEN_AI_USAGE_INPUT_TOKENS, 100),
        i(keys::GEN_AI_USAGE_OUTPUT_TOKENS, 20),
    ];
    sp
}

pub fn transition(time: u64, from: &str, to: &str, reason: &str) -> SpanEvent {
    ev(
        keys::EVENT_TRANSITION,
        T0 + time,
        vec![
            s(keys::TRANSITION_FROM, from),
            s(keys::TRANSITION_TO, to),
            s(keys::TRANSITION_REASON, reason),
        ],
    )
}

/// The full run of the task: planner → worker (tool failing once, then retried) → verifier
/// (replan) → planner → worker → verifier (end). Span numbers: run 1, P0 2, L 3, W0 4,
/// T1 5 (error), T2 6 (retry ok), L 7, V0 8, P1 9, W1 10, T3 11, V1 12.
pub fn full_run() -> Vec<SpanRecord> {
    let mut root = run_span(1, 0, 1000, "success");
    root.events.push(ev(
        keys::EVENT_EXCEPTION,
        T0 + 950,
        vec![
            s(keys::EXCEPTION_TYPE, "cleanup_failed"),
            s(keys::EXCEPTION_MESSAGE, "temp dir busy"),
        ],
    ));
    let p0 = planner(2, 1, 0, 10, 100, None);
    let l3 = llm(3, 2, 20, 80, "m-plan");
    let mut w0 = worker(4, 1, 0, 110, 300, 1);
    w0.links.push(link(2));
    w0.events.push(ev(
        keys::EVENT_OBSERVATION,
        T0 + 210,
        vec![
            s(keys::OBSERVATION_SOURCE, "fs"),
            j(keys::OBSERVATION_DATA, json!({"files": ["a.csv"]})),
        ],
    ));
    let t5 = tool(5, 4, 120, 150, 1, false);
    let t6 = tool(6, 4, 160, 200, 2, true);
    let l7 = llm(7, 4, 220, 280, "m-work");
    let mut v8 = verifier(8, 1, 0, 310, 400, "replan");
    v8.links.push(link(4));
    v8.events.push(transition(
        400,
        "verifying",
        "planning",
        "replan: wrong column",
    ));
    let mut p9 = planner(9, 1, 1, 410, 500, Some("wrong column"));
    p9.links.push(link(8));
    let mut w10 = worker(10, 1, 1, 510, 600, 0);
    w10.links.push(link(9));
    let t11 = tool(11, 10, 520, 560, 1, true);
    let mut v12 = verifier(12, 1, 1, 610, 700, "end");
    v12.links.push(link(10));
    v12.events.push(transition(700, "verifying", "done", "end"));
    [root, p0, l3, w0, t5, t6, l7, v8, p9, w10, t11, v12]
        .into_iter()
        .map(rec)
        .collect()
}

/// Serializes the run to the text of `session.json` / `events.jsonl` and validates it.
pub fn assert_valid(run: &AssembledRun) {
    let session = serde_json::to_string_pretty(&run.session).unwrap();
    let mut events = String::new();
    for e in &run.events {
        events.push_str(&serde_json::to_string(e).unwrap());
        events.push('\n');
    }
    let check = traj_schema::validate_run(&session, &events);
    assert!(check.is_valid(), "violations: {:#?}", check.violations);
    assert_eq!(check.events, run.events.len() as u64);
}

/// Deterministic shuffle (xorshift) so tests need no rand crate.
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for k in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let m = (seed % (k as u64 + 1)) as usize;
        v.swap(k, m);
    }
}
