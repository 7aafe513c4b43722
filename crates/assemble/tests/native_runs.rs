//! Assembly of schema v2 traces: the full planner/worker/verifier run, determinism under
//! shuffling and duplication, missing parents and links, missing root span.

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use traj_assemble::{assemble, MappingRules};
use traj_schema::{Event, EventType, Lineage, Outcome, Payload, Role, Verdict};

fn by_type(events: &[Event], span: u64, ty: EventType) -> &Event {
    let hex = hex_sid(span);
    events
        .iter()
        .find(|e| e.span_id == hex && e.event_type() == ty)
        .unwrap_or_else(|| panic!("no {ty:?} on span {span}"))
}

fn parent_of<'a>(events: &'a [Event], e: &Event) -> &'a Event {
    let p = e.parent_event_id.as_deref().expect("has a parent");
    events
        .iter()
        .find(|x| x.event_id == p)
        .expect("parent exists")
}

#[test]
fn full_run_produces_every_event_type_with_correct_parents() {
    let run = assemble(TRACE, &full_run(), &MappingRules::default());
    assert_valid(&run);
    let ev = &run.events;
    let types: BTreeSet<EventType> = ev.iter().map(|e| e.event_type()).collect();
    assert_eq!(types.len(), EventType::ALL.len(), "types seen: {types:?}");

    // The first planner input is the explicit root of the causal chain.
    let p0_in = by_type(ev, 2, EventType::PlannerInput);
    assert_eq!(p0_in.lineage, Lineage::Root);
    assert_eq!(p0_in.parent_event_id, None);
    let p0_out = by_type(ev, 2, EventType::PlannerOutput);
    assert_eq!(parent_of(ev, p0_out).event_id, p0_in.event_id);
    match &p0_out.payload {
        Payload::PlannerOutput(p) => {
            assert_eq!(p.llm_calls.len(), 1);
            assert_eq!(p.llm_calls[0].span_id, hex_sid(3));
            assert_eq!(p.llm_calls[0].model, "m-plan");
            assert_eq!(p.llm_calls[0].input_tokens, 100);
            assert_eq!(p.plan[0].tool.as_deref(), Some("read_csv"));
        }
        other => panic!("{other:?}"),
    }

    // Worker: input ← linked planner's output, action ← input, output ← action.
    let w_in = by_type(ev, 4, EventType::WorkerInput);
    assert_eq!(parent_of(ev, w_in).event_id, p0_out.event_id);
    let w_act = by_type(ev, 4, EventType::WorkerAction);
    assert_eq!(parent_of(ev, w_act).event_id, w_in.event_id);
    assert_eq!(w_act.time_unix_nano, w_in.time_unix_nano + 1);
    let w_out = by_type(ev, 4, EventType::WorkerOutput);
    assert_eq!(parent_of(ev, w_out).event_id, w_act.event_id);
    match &w_out.payload {
        Payload::WorkerOutput(o) => {
            assert_eq!(o.llm_calls.len(), 1);
            assert_eq!(o.retries, 1);
        }
        other => panic!("{other:?}"),
    }

    // Tools: call ← worker action; result ← call; the failed attempt keeps its error.
    for t in [5, 6] {
        let call = by_type(ev, t, EventType::WorkerToolCall);
        assert_eq!(parent_of(ev, call).event_id, w_act.event_id);
        assert_eq!(call.step, 0);
        let res = by_type(ev, t, EventType::WorkerToolResult);
        assert_eq!(parent_of(ev, res).event_id, call.event_id);
    }
    match &by_type(ev, 5, EventType::WorkerToolResult).payload {
        Payload::WorkerToolResult(r) => {
            assert_eq!(r.status, traj_schema::ToolStatus::Error);
            assert_eq!(r.error_class.as_deref(), Some("timeout"));
            assert_eq!(
                r.error_message.as_deref(),
                Some("read_csv timed out after 1s")
            );
            assert_eq!(r.attempt, 1);
            assert!((r.duration_ms - 30e-6).abs() < 1e-9, "{}", r.duration_ms);
        }
        other => panic!("{other:?}"),
    }
    match &by_type(ev, 6, EventType::WorkerToolCall).payload {
        Payload::WorkerToolCall(c) => {
            assert_eq!(c.attempt, 2);
            assert_eq!(c.arguments["path"], "a.csv");
        }
        other => panic!("{other:?}"),
    }

    // The observation at 210 comes after the retry's result (200).
    let obs = by_type(ev, 4, EventType::EnvObservation);
    assert_eq!(
        parent_of(ev, obs).event_id,
        by_type(ev, 6, EventType::WorkerToolResult).event_id
    );

    // Verifier ← linked worker output; transition ← verifier output.
    let v_in = by_type(ev, 8, EventType::VerifierInput);
    assert_eq!(parent_of(ev, v_in).event_id, w_out.event_id);
    let v_out = by_type(ev, 8, EventType::VerifierOutput);
    match &v_out.payload {
        Payload::VerifierOutput(v) => assert_eq!(v.verdict, Verdict::Replan),
        other => panic!("{other:?}"),
    }
    let tr = by_type(ev, 8, EventType::OrchestratorTransition);
    assert_eq!(parent_of(ev, tr).event_id, v_out.event_id);

    // The replan's planner input hangs off the verifier that asked for it.
    let p1_in = by_type(ev, 9, EventType::PlannerInput);
    assert_eq!(parent_of(ev, p1_in).event_id, v_out.event_id);
    assert_eq!(p1_in.step, 1);
    let w1_in = by_type(ev, 10, EventType::WorkerInput);
    assert_eq!(
        parent_of(ev, w1_in).event_id,
        by_type(ev, 9, EventType::PlannerOutput).event_id
    );
    assert_eq!(by_type(ev, 11, EventType::WorkerToolCall).step, 1);

    // Root events: the error hangs off the last role event before it, the end off the error.
    let err = ev
        .iter()
        .find(|e| e.event_type() == EventType::EpisodeError)
        .unwrap();
    let err_parent = parent_of(ev, err);
    assert!(err_parent.time_unix_nano <= err.time_unix_nano);
    assert_eq!(err_parent.span_id, hex_sid(12));
    let end = ev.last().unwrap();
    assert_eq!(end.event_type(), EventType::EpisodeEnd);
    assert_eq!(end.role, Role::Run);
    assert_eq!(end.step, 1);
    assert_eq!(parent_of(ev, end).event_id, err.event_id);
    match &end.payload {
        Payload::EpisodeEnd(e) => {
            assert_eq!(e.outcome, Outcome::Success);
            assert_eq!(e.steps, 2);
        }
        other => panic!("{other:?}"),
    }

    // Sorted by (time, id); only the first planner input is a root.
    assert!(ev
        .windows(2)
        .all(|w| (w[0].time_unix_nano, &w[0].event_id) <= (w[1].time_unix_nano, &w[1].event_id)));
    assert!(ev.iter().all(|e| e.source == "traj"));

    let s = &run.session;
    assert_eq!(s.run_id, hex::encode(TRACE));
    assert_eq!(s.goal, "sum the column");
    assert_eq!(s.goal_family, "arith");
    assert_eq!(s.seed, Some(7));
    assert_eq!(s.source, "traj");
    assert_eq!(s.service_name, "test-agent");
    assert_eq!(s.model_stack["planner"].model, "m-plan");
    assert_eq!(s.model_stack["planner"].params["temperature"], 0.2);
    assert_eq!(s.runtime_config.max_steps, 8);
    assert_eq!(s.data_governance.pii_scan_status, "source_redacted");
    assert!(s.root_span_seen);
    assert_eq!(s.summary.outcome, Outcome::Success);
    assert_eq!(s.summary.success, Some(true));
    assert_eq!(s.summary.step_count, 2);
    assert_eq!(s.summary.llm_calls, 2);
    assert_eq!(s.summary.tool_calls, 3);
    assert_eq!(s.summary.tool_errors, 1);
    assert_eq!(s.summary.input_tokens, 200);
    assert_eq!(s.summary.output_tokens, 40);
    assert_eq!(s.summary.cost_estimate_usd, 0.0);
    assert_eq!(s.duration_ms, 1000.0 / 1e6);
    assert_eq!(s.lineage.spans, 12);
    assert_eq!(s.lineage.events, ev.len() as u64);
    assert_eq!(s.lineage.root_events, 1);
    assert_eq!(s.lineage.orphan_events, 0);
    assert_eq!(s.lineage.parented_events, ev.len() as u64 - 1);
    assert_eq!(s.lineage.unmapped_spans, 0);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn shuffled_and_duplicated_input_gives_identical_output() {
    let base = assemble(TRACE, &full_run(), &MappingRules::default());
    for seed in [1u64, 7, 99, 12345] {
        let mut spans = full_run();
        // Exact duplicates, plus a stale copy of the worker (earlier end) that must lose.
        let extra: Vec<_> = spans.iter().step_by(3).cloned().collect();
        spans.extend(extra);
        let mut stale = spans[3].clone();
        stale.span.end_time_unix_nano -= 50;
        spans.push(stale);
        shuffle(&mut spans, seed);
        let run = assemble(TRACE, &spans, &MappingRules::default());
        assert_eq!(run.duplicate_spans, 5);
        assert_eq!(run.session.lineage.duplicate_spans, 5);
        assert_eq!(run.events, base.events, "seed {seed}");
        let mut s = run.session.clone();
        s.lineage.duplicate_spans = 0;
        assert_eq!(s, base.session);
        assert_eq!(
            serde_json::to_string(&run.events).unwrap(),
            serde_json::to_string(&base.events).unwrap()
        );
    }
}

#[test]
fn duplicates_with_equal_end_times_resolve_independently_of_order() {
    let mut a = full_run();
    let mut twin = a[3].clone();
    twin.span.name = "invoke_agent worker (retransmitted)".into();
    a.push(twin);
    let mut b = a.clone();
    b.reverse();
    let ra = assemble(TRACE, &a, &MappingRules::default());
    let rb = assemble(TRACE, &b, &MappingRules::default());
    assert_eq!(ra, rb);
}

#[test]
fn missing_parent_span_gives_broken_lineage() {
    // Drop the first worker (span 4): its tools lose their parent, the verifier its link.
    let spans: Vec<_> = full_run()
        .into_iter()
        .filter(|r| r.span.span_id != sid(4).to_vec())
        .collect();
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    let ev = &run.events;
    for t in [5, 6] {
        let call = by_type(ev, t, EventType::WorkerToolCall);
        assert_eq!(call.lineage, Lineage::Broken);
        assert_eq!(
            call.missing_parent_span_id.as_deref(),
            Some(hex_sid(4).as_str())
        );
        // The result still hangs off its call.
        assert_eq!(
            by_type(ev, t, EventType::WorkerToolResult).lineage,
            Lineage::Parent
        );
    }
    let v_in = by_type(ev, 8, EventType::VerifierInput);
    assert_eq!(v_in.lineage, Lineage::Broken);
    assert_eq!(
        v_in.missing_parent_span_id.as_deref(),
        Some(hex_sid(4).as_str())
    );
    assert_eq!(run.session.lineage.orphan_events, 3);
    // The LLM call of the missing worker cannot be attached: counted, reported.
    assert_eq!(run.session.summary.llm_calls, 2);
    assert!(
        run.warnings.iter().any(|w| w.contains(&hex_sid(7))),
        "{:?}",
        run.warnings
    );
}

#[test]
fn missing_root_span_finalizes_without_it() {
    let spans: Vec<_> = full_run()
        .into_iter()
        .filter(|r| r.span.span_id != sid(1).to_vec())
        .collect();
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    let s = &run.session;
    assert!(!s.root_span_seen);
    assert_eq!(s.summary.outcome, Outcome::Unknown);
    assert_eq!(s.summary.success, None);
    assert_eq!(
        s.started_at,
        traj_schema::time_fmt::rfc3339_from_unix_nanos(T0 + 10)
    );
    assert_eq!(
        s.finished_at,
        traj_schema::time_fmt::rfc3339_from_unix_nanos(T0 + 700)
    );
    assert_eq!(
        s.goal, "sum the column",
        "goal falls back to the planner input"
    );
    assert!(run.events.iter().all(|e| !matches!(
        e.event_type(),
        EventType::EpisodeEnd | EventType::EpisodeError
    )));
    // The first planner input's parent (the run span) is missing: broken, not re-rooted.
    let p0_in = by_type(&run.events, 2, EventType::PlannerInput);
    assert_eq!(p0_in.lineage, Lineage::Broken);
    assert_eq!(
        p0_in.missing_parent_span_id.as_deref(),
        Some(hex_sid(1).as_str())
    );
    assert_eq!(s.lineage.root_events, 0);
}

#[test]
fn malformed_payloads_give_default_payloads_and_warnings() {
    let mut spans = full_run();
    // Worker 4: broken action JSON, no output payload at all, status ERROR.
    let w = &mut spans[3].span;
    w.attributes
        .retain(|kv| kv.key != traj_schema::keys::WORKER_OUTPUT);
    for kv in &mut w.attributes {
        if kv.key == traj_schema::keys::WORKER_ACTION {
            *kv = s(traj_schema::keys::WORKER_ACTION, "{\"action\": ");
        }
    }
    w.status = error_status("worker gave up");
    w.attributes
        .push(s(traj_schema::keys::ERROR_TYPE, "gave_up"));
    // Root: a hash that is not sha256:, a model stack that is not an object.
    let r = &mut spans[0].span;
    for kv in &mut r.attributes {
        if kv.key == traj_schema::keys::CONFIG_HASH {
            *kv = s(traj_schema::keys::CONFIG_HASH, "md5:abc");
        }
        if kv.key == traj_schema::keys::MODEL_STACK {
            *kv = s(traj_schema::keys::MODEL_STACK, "[1, 2]");
        }
    }
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    match &by_type(&run.events, 4, EventType::WorkerAction).payload {
        // Default action built from the first tool child.
        Payload::WorkerAction(a) => {
            assert_eq!(a.action, "tool_call");
            assert_eq!(a.tool.as_deref(), Some("read_csv"));
        }
        other => panic!("{other:?}"),
    }
    match &by_type(&run.events, 4, EventType::WorkerOutput).payload {
        Payload::WorkerOutput(o) => {
            assert_eq!(o.status, traj_schema::ToolStatus::Error);
            assert_eq!(o.error_class.as_deref(), Some("gave_up"));
            assert_eq!(o.retries, 1, "counted from the retried tool span");
            assert_eq!(o.llm_calls.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.session.config_hash, "");
    // Model stack falls back to the models seen on LLM calls.
    assert_eq!(run.session.model_stack["worker"].model, "m-work");
    let joined = run.warnings.join("\n");
    for needle in [
        "traj.worker.action malformed",
        "traj.worker.output missing",
        "md5:abc",
        "traj.model_stack malformed",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in {joined}");
    }
}

#[test]
fn root_error_status_without_exception_gives_a_fatal_episode_error() {
    let mut spans = full_run();
    let r = &mut spans[0].span;
    r.events.clear();
    r.status = error_status("budget exhausted");
    r.attributes
        .retain(|kv| kv.key != traj_schema::keys::OUTCOME);
    r.attributes
        .push(s(traj_schema::keys::FAILURE_CLASS, "max_steps"));
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    let errs: Vec<_> = run
        .events
        .iter()
        .filter(|e| e.event_type() == EventType::EpisodeError)
        .collect();
    assert_eq!(errs.len(), 1);
    match &errs[0].payload {
        Payload::EpisodeError(e) => {
            assert!(e.fatal);
            assert_eq!(e.error_class, "max_steps");
            assert_eq!(e.message, "budget exhausted");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.session.summary.outcome, Outcome::Failure);
    assert_eq!(
        run.session.summary.failure_class.as_deref(),
        Some("max_steps")
    );
    assert_eq!(run.session.summary.success, Some(false));
}

#[test]
fn event_ids_are_unique_and_stable_across_runs() {
    let a = assemble(TRACE, &full_run(), &MappingRules::default());
    let ids: HashMap<&str, usize> = a
        .events
        .iter()
        .enumerate()
        .map(|(k, e)| (e.event_id.as_str(), k))
        .collect();
    assert_eq!(ids.len(), a.events.len());
    let expected =
        traj_schema::event::event_id(&hex::encode(TRACE), &hex_sid(4), EventType::WorkerAction, 0);
    assert!(ids.contains_key(expected.as_str()));
}

#[test]
fn a_run_span_called_from_an_unsent_upstream_span_is_still_the_root() {
    let mut spans = full_run();
    spans[0].span.parent_span_id = sid(999).to_vec(); // e.g. the caller's HTTP server span
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    assert!(run.session.root_span_seen);
    assert_eq!(run.session.lineage.orphan_events, 0);
    assert_eq!(
        by_type(&run.events, 2, EventType::PlannerInput).lineage,
        Lineage::Root
    );
}
