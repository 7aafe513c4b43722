//! Hostile shapes: parent cycles and self-references, thousands of roots, very deep span
//! chains, deeply nested attribute values, bad ids. All must terminate, never panic, and
//! still produce valid runs.

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as Av, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use traj_assemble::attributes::{any_to_json, attr_json, MAX_ANY_VALUE_DEPTH, TRUNCATED_MARKER};
use traj_assemble::{assemble, MappingRules, SpanRecord, MAX_WARNINGS};
use traj_schema::{keys, EventType, Lineage};

#[test]
fn cyclic_and_self_referencing_parents_terminate_as_broken() {
    let mut spans = vec![rec(run_span(1, 0, 1000, "success"))];
    // Workers 2 <-> 3 form a cycle; worker 4 is its own parent; tool 5 hangs under 2.
    spans.push(rec(worker(2, 3, 0, 10, 100, 0)));
    spans.push(rec(worker(3, 2, 1, 110, 200, 0)));
    spans.push(rec(worker(4, 4, 2, 210, 300, 0)));
    spans.push(rec(tool(5, 2, 20, 30, 1, true)));
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    for (w, missing) in [(2, 3), (3, 2), (4, 4)] {
        let e = run
            .events
            .iter()
            .find(|e| e.span_id == hex_sid(w) && e.event_type() == EventType::WorkerInput)
            .unwrap();
        assert_eq!(e.lineage, Lineage::Broken, "worker {w}");
        assert_eq!(e.missing_parent_span_id, Some(hex_sid(missing)));
    }
    // The tool still hangs off its (cyclic) worker's action: its own parent exists.
    let call = run
        .events
        .iter()
        .find(|e| e.event_type() == EventType::WorkerToolCall)
        .unwrap();
    assert_eq!(call.lineage, Lineage::Parent);
    assert!(run.warnings.iter().any(|w| w.contains("cycle")));
}

#[test]
fn ten_thousand_roots() {
    let spans: Vec<SpanRecord> = (0..10_000u64)
        .map(|k| {
            rec(worker(
                k + 2,
                0x7fff_0000 + k,
                k as i64,
                k * 10,
                k * 10 + 5,
                0,
            ))
        })
        .map(|mut r| {
            r.span.parent_span_id.clear(); // each worker is a root of its own
            r
        })
        .collect();
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_eq!(run.events.len(), 30_000);
    // Unlinked steps follow the previous step's output: one root for the whole run.
    assert_eq!(run.session.lineage.root_events, 1);
    assert_eq!(run.session.summary.step_count, 10_000);
    assert!(!run.session.root_span_seen);
    assert_valid(&run);
}

#[test]
fn a_fifty_thousand_deep_span_chain_does_not_recurse() {
    // run <- worker <- tool <- tool <- ... (each tool the parent of the next).
    let mut spans = vec![
        rec(run_span(1, 0, 10_000_000, "success")),
        rec(worker(2, 1, 0, 1, 9_000_000, 0)),
    ];
    let mut parent = 2;
    for k in 0..50_000u64 {
        spans.push(rec(tool(10 + k, parent, 2 + k, 3 + k, 1, true)));
        parent = 10 + k;
    }
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_eq!(run.session.summary.tool_calls, 50_000);
    // Every tool is owned by the worker, however deep it sits.
    let action = run
        .events
        .iter()
        .find(|e| e.event_type() == EventType::WorkerAction)
        .unwrap()
        .event_id
        .clone();
    let calls: Vec<_> = run
        .events
        .iter()
        .filter(|e| e.event_type() == EventType::WorkerToolCall)
        .collect();
    assert_eq!(calls.len(), 50_000);
    assert!(calls
        .iter()
        .all(|c| c.parent_event_id.as_deref() == Some(action.as_str())));
}

fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(Av::StringValue("leaf".into())),
    };
    for k in 0..depth {
        v = if k % 2 == 0 {
            AnyValue {
                value: Some(Av::ArrayValue(ArrayValue { values: vec![v] })),
            }
        } else {
            AnyValue {
                value: Some(Av::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(v),
                        ..Default::default()
                    }],
                })),
            }
        };
    }
    v
}

#[test]
fn deeply_nested_any_values_are_truncated_not_overflowed() {
    // Built and dropped on a big stack: prost's own Drop of the value is recursive.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let deep = nested(20_000);
            let json = any_to_json(&deep);
            let mut depth = 0;
            let mut cur = &json;
            loop {
                match cur {
                    serde_json::Value::Array(a) => cur = &a[0],
                    serde_json::Value::Object(o) => cur = &o["k"],
                    _ => break,
                }
                depth += 1;
            }
            assert_eq!(depth, MAX_ANY_VALUE_DEPTH);
            assert_eq!(cur, TRUNCATED_MARKER);

            // The same value as a payload attribute on a span: a precise error, no crash.
            let attrs = vec![KeyValue {
                key: keys::WORKER_INPUT.into(),
                value: Some(deep),
                ..Default::default()
            }];
            let r: Result<Option<traj_schema::event::WorkerInput>, _> =
                attr_json(&attrs, keys::WORKER_INPUT);
            assert!(r.is_err());

            let mut w = worker(2, 1, 0, 10, 20, 0);
            w.attributes.retain(|kv| kv.key != keys::WORKER_INPUT);
            w.attributes.extend(attrs);
            let spans = vec![rec(run_span(1, 0, 100, "success")), rec(w)];
            let run = assemble(TRACE, &spans, &MappingRules::default());
            assert_valid(&run);
            assert!(run
                .warnings
                .iter()
                .any(|w| w.contains("traj.worker.input malformed")));
            drop(spans);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn bad_ids_are_skipped_and_counted() {
    let mut spans = full_run();
    let mut short = spans[1].clone();
    short.span.span_id = vec![1, 2, 3];
    let mut zero = spans[1].clone();
    zero.span.span_id = vec![0; 8];
    let mut other_trace = spans[1].clone();
    other_trace.span.trace_id = vec![9; 16];
    other_trace.span.span_id = sid(777).to_vec();
    spans.extend([short, zero, other_trace]);
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_eq!(run.invalid_spans, 3);
    assert_eq!(run.session.lineage.spans, 12);
    assert_valid(&run);
}

#[test]
fn warnings_are_bounded() {
    // 500 native workers with malformed payloads: 1500 problems, MAX_WARNINGS kept.
    let spans: Vec<SpanRecord> = (0..500u64)
        .map(|k| {
            let mut w = worker(k + 2, 1, 0, k * 10 + 1, k * 10 + 5, 0);
            for kv in &mut w.attributes {
                if kv.key.starts_with("traj.worker.") {
                    *kv = s(&kv.key.clone(), "{");
                }
            }
            rec(w)
        })
        .chain([rec(run_span(1, 0, 10_000, "failure"))])
        .collect();
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_eq!(run.warnings.len(), MAX_WARNINGS + 1);
    assert!(run.warnings.last().unwrap().contains("1400 more"));
    assert_valid(&run);
}

#[test]
fn empty_input_gives_an_empty_but_valid_run() {
    let run = assemble(TRACE, &[], &MappingRules::default());
    assert!(run.events.is_empty());
    assert!(!run.session.root_span_seen);
    assert_valid(&run);
}
