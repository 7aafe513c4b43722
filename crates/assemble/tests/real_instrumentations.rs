//! Runs assembled from what real instrumentation libraries sent (captured by
//! `tests/python/real_agents/capture_fixtures.py`): every LLM call is found, and its content
//! equals, message for message, what the stub model received and returned (`truth.json`'s wire).

mod common;

use common::assert_valid;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use prost::Message;
use serde_json::Value;
use std::path::PathBuf;
use traj_assemble::{
    assemble_with_logs, split_by_trace, split_logs_by_trace, AssembledRun, LogEntry, MappingRules,
    SpanRecord,
};
use traj_schema::{
    ContentSource, Event, Lineage, LlmCallRecord, MessagePart, Outcome, Payload, Verdict,
};

struct Capture {
    trace: [u8; 16],
    spans: Vec<SpanRecord>,
    logs: Vec<LogEntry>,
    wire: Vec<Value>,
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/real_agents")
        .join(name)
}

fn load(name: &str) -> Capture {
    let d = dir(name);
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    let mut trace = None;
    let mut files: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let file = f.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&f).unwrap();
        if file.starts_with("traces-") {
            let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            for (t, recs) in split_by_trace(req).traces {
                trace = Some(t);
                spans.extend(recs);
            }
        } else if file.starts_with("logs-") {
            let req = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
            for (_, entries) in split_logs_by_trace(req).traces {
                logs.extend(entries);
            }
        }
    }
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("truth.json")).unwrap()).unwrap();
    Capture {
        trace: trace.expect("a trace"),
        spans,
        logs,
        wire: truth["wire"].as_array().unwrap().clone(),
    }
}

fn assemble(c: &Capture) -> AssembledRun {
    assemble_with_logs(c.trace, &c.spans, &c.logs, &MappingRules::default())
}

fn llm_calls(run: &AssembledRun) -> Vec<(&Event, &LlmCallRecord)> {
    run.events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::LlmCall(r) => Some((e, r)),
            _ => None,
        })
        .collect()
}

fn text_of(parts: &[MessagePart]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            MessagePart::Text { content } => Some(content.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every chat-completions exchange on the wire is one `llm_call` event with the same model,
/// system prompt, messages, answer (text or tool calls with their ids and arguments) and tools.
fn check_against_wire(name: &str, run: &AssembledRun, tools_recorded: bool) {
    let calls = llm_calls(run);
    let c = load(name);
    assert_eq!(
        calls.len(),
        c.wire.len(),
        "{name}: one llm_call per model call"
    );
    for x in &c.wire {
        let (req, resp) = (&x["request"], &x["response"]);
        let id = resp["id"].as_str().unwrap();
        let (e, r) = calls
            .iter()
            .find(|(_, r)| r.response_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{name}: no llm_call with response id {id}"));
        assert_ne!(
            e.parent_event_id, None,
            "{name}: llm_call hangs under its step"
        );
        assert_eq!(
            r.model,
            req["model"].as_str().unwrap(),
            "{name} {id}: model"
        );
        assert_ne!(r.content_source, ContentSource::None, "{name} {id}");
        assert_eq!(
            r.usage.input_tokens,
            resp["usage"]["prompt_tokens"].as_u64().unwrap(),
            "{name} {id}: usage"
        );
        // The prompt: the system message (or system instructions), then every other message.
        let sent = req["messages"].as_array().unwrap();
        let system_sent = sent[0]["content"].as_str().unwrap();
        let system_got = if r.system_instructions.is_empty() {
            assert_eq!(r.input_messages[0].role, "system", "{name} {id}");
            text_of(&r.input_messages[0].parts)
        } else {
            text_of(&r.system_instructions)
        };
        assert_eq!(system_got, system_sent, "{name} {id}: system prompt");
        let non_system: Vec<_> = r
            .input_messages
            .iter()
            .filter(|m| m.role != "system")
            .collect();
        assert_eq!(
            non_system.len(),
            sent.len() - 1,
            "{name} {id}: input messages"
        );
        for (m, s) in non_system.iter().zip(&sent[1..]) {
            if let Some(text) = s["content"].as_str() {
                let got = match m.parts.as_slice() {
                    [MessagePart::ToolCallResponse { response, .. }] => response
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or(response.to_string()),
                    parts => text_of(parts),
                };
                // pydantic-ai records a tool's error result as text where it sent JSON.
                assert!(
                    got == text || text.contains(&got),
                    "{name} {id}: message {got:?} vs sent {text:?}"
                );
            }
        }
        // The answer.
        let answer = &resp["choices"][0]["message"];
        let out = &r.output_messages[0];
        match answer["tool_calls"].as_array() {
            Some(tcs) if !tcs.is_empty() => {
                let got: Vec<(&str, &str, &Value)> = out
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        MessagePart::ToolCall {
                            id,
                            name,
                            arguments,
                        } => Some((id.as_str(), name.as_str(), arguments)),
                        _ => None,
                    })
                    .collect();
                assert_eq!(got.len(), tcs.len(), "{name} {id}: tool calls");
                for ((gid, gname, gargs), t) in got.iter().zip(tcs) {
                    assert_eq!(*gid, t["id"].as_str().unwrap());
                    assert_eq!(*gname, t["function"]["name"].as_str().unwrap());
                    let want: Value =
                        serde_json::from_str(t["function"]["arguments"].as_str().unwrap()).unwrap();
                    assert_eq!(**gargs, want, "{name} {id}: arguments as an object");
                }
            }
            _ => assert_eq!(
                text_of(&out.parts),
                answer["content"].as_str().unwrap(),
                "{name} {id}: answer text"
            ),
        }
        if tools_recorded {
            let offered = req["tools"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(
                r.tool_definitions.len(),
                offered.len(),
                "{name} {id}: tools"
            );
            for (t, o) in r.tool_definitions.iter().zip(offered) {
                assert_eq!(t.name, o["function"]["name"].as_str().unwrap());
                assert!(!t.description.is_empty(), "{name} {id}: description kept");
                assert_eq!(
                    t.parameters["required"], o["function"]["parameters"]["required"],
                    "{name} {id}: required kept"
                );
            }
        }
    }
    let roots = run
        .events
        .iter()
        .filter(|e| e.lineage == Lineage::Root)
        .count();
    assert_eq!(roots, 1, "{name}: one root event");
}

#[test]
fn openai_v2_span_mode_content_from_genai_attributes() {
    let c = load("openai_v2_span");
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("openai_v2_span", &run, false);
    assert!(llm_calls(&run)
        .iter()
        .all(|(_, r)| r.content_source == ContentSource::GenaiAttributes));
}

#[test]
fn openai_v2_event_mode_content_from_log_records_in_either_order() {
    let mut c = load("openai_v2_event");
    assert!(!c.logs.is_empty());
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("openai_v2_event", &run, false);
    assert!(llm_calls(&run)
        .iter()
        .all(|(_, r)| r.content_source == ContentSource::GenaiLogs));
    // The same records in the reverse order give the same run.
    c.logs.reverse();
    assert_eq!(assemble(&c).events, run.events);
    // Without the logs, the calls are there but their content is not.
    let bare = assemble_with_logs(c.trace, &c.spans, &[], &MappingRules::default());
    let calls = llm_calls(&bare);
    assert_eq!(calls.len(), llm_calls(&run).len());
    assert!(calls
        .iter()
        .all(|(_, r)| r.content_source == ContentSource::None));
}

#[test]
fn openai_v2_legacy_mode_content_from_per_message_log_events() {
    let c = load("openai_v2_legacy");
    assert!(c.logs.iter().any(|l| l.record.event_name == "gen_ai.choice"
        || l.record.attributes.iter().any(|a| a.key == "event.name")));
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("openai_v2_legacy", &run, false);
    assert!(llm_calls(&run)
        .iter()
        .all(|(_, r)| r.content_source == ContentSource::GenaiLogs));
}

#[test]
fn openllmetry_content_and_tool_definitions() {
    let c = load("openllmetry");
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("openllmetry", &run, true);
}

#[test]
fn logs_whose_span_never_arrived_are_a_warning_not_a_loss_of_the_rest() {
    let mut c = load("openai_v2_event");
    c.logs[0].record.span_id = vec![0xee; 8];
    let run = assemble(&c);
    assert_valid(&run);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("eeeeeeeeeeeeeeee") && w.contains("never arrived")),
        "{:?}",
        run.warnings
    );
    let with_content = llm_calls(&run)
        .iter()
        .filter(|(_, r)| r.content_source == ContentSource::GenaiLogs)
        .count();
    assert_eq!(with_content, llm_calls(&run).len() - 1);
}

#[test]
fn openinference_content_from_flattened_attributes() {
    let c = load("openinference");
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("openinference", &run, true);
    assert!(llm_calls(&run)
        .iter()
        .all(|(_, r)| r.content_source == ContentSource::Openinference));
}

#[test]
fn pydantic_ai_without_traj_keys_gets_goal_plan_verdict_outcome_and_family() {
    let c = load("pydantic_ai");
    let run = assemble(&c);
    assert_valid(&run);
    check_against_wire("pydantic_ai", &run, true);
    let s = &run.session;
    let goal = c.wire[0]["request"]["messages"][1]["content"]
        .as_str()
        .unwrap();
    assert_eq!(s.goal, goal);
    assert!(s.goal_family.starts_with("template:"), "{}", s.goal_family);
    let mut verdicts = Vec::new();
    for e in &run.events {
        match &e.payload {
            Payload::PlannerInput(p) => assert_eq!(p.goal, goal),
            Payload::PlannerOutput(p) => assert!(p.plan.len() >= 2, "{:?}", p.plan),
            Payload::WorkerInput(w) => assert!(!w.current_step.is_empty()),
            Payload::VerifierOutput(v) => verdicts.push(v.verdict),
            Payload::EpisodeEnd(end) => assert_eq!(end.outcome, Outcome::Success),
            _ => {}
        }
    }
    assert_eq!(verdicts.last(), Some(&Verdict::End));
    assert_eq!(s.summary.outcome, Outcome::Success);
}

fn string_attr(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Av::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn truncated_message_json_and_two_conventions_are_named_warnings() {
    let mut c = load("openai_v2_span");
    let chat = c
        .spans
        .iter_mut()
        .find(|r| r.span.name.starts_with("chat "))
        .unwrap();
    for kv in &mut chat.span.attributes {
        if kv.key == "gen_ai.input.messages" {
            if let Some(AnyValue {
                value: Some(Av::StringValue(s)),
            }) = &mut kv.value
            {
                s.truncate(s.len() / 2); // what an SDK attribute length limit does
            }
        }
    }
    chat.span
        .attributes
        .push(string_attr("llm.input_messages.0.message.role", "user"));
    chat.span
        .attributes
        .push(string_attr("llm.input_messages.0.message.content", "hi"));
    chat.span.attributes.push(string_attr(
        "llm.output_messages.0.message.role",
        "assistant",
    ));
    let run = assemble(&c);
    assert_valid(&run);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("not valid JSON") && w.contains("truncated")),
        "{:?}",
        run.warnings
    );
    assert!(
        run.warnings.iter().any(|w| w.contains("two conventions")),
        "{:?}",
        run.warnings
    );
    // The other calls are untouched.
    assert_eq!(llm_calls(&run).len(), c.wire.len());
}
