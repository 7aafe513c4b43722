//! Converts one indexed run into the rows of the five views: planner, worker and verifier SFT,
//! verifier preference pairs and worker recovery cases, each with full lineage metadata.

use crate::config::{PrefConfig, RowsConfig};
use crate::llm_rows::{content_missing, conversations, verdict_like, Conversation};
use crate::prefs::{judge, pref_cases, Synthetic, VerdictText};
use crate::rows::{Call, Completion, Msg, Row, View};
use crate::runview::LlmCallRef;
use crate::runview::{RunIndex, Stage, ToolExec, WorkStage};
use serde::Serialize;
use serde_json::{json, Map, Value};
use traj_schema::hashing::canonical_json;
use traj_schema::Role;

pub const PLANNER_SYSTEM: &str =
    "You are the Planner of a Planner/Worker/Verifier agent. Given the goal, \
the current observation, a condensed history and the tool mask, answer with a JSON object \
{\"plan\": [{\"index\", \"description\", \"tool\"}], \"rationale\", \"confidence\"}.";
pub const WORKER_SYSTEM: &str = "You are the Worker of a Planner/Worker/Verifier agent. Given the \
current plan step, the environment state, the allowed tools and earlier failures, choose one \
action: call a tool with arguments, respond, or give up. State your reasoning briefly.";
pub const VERIFIER_SYSTEM: &str =
    "You are the Verifier of a Planner/Worker/Verifier agent. Given the \
plan progress, the action traces and the evidence, answer with a JSON object \
{\"verdict\": \"continue\" | \"replan\" | \"end\", \"feedback\", \"risk_flags\"}.";
pub const RECOVERY_SYSTEM: &str =
    "You are the Worker of a Planner/Worker/Verifier agent. A tool call \
failed; look at the error and choose the action that recovers.";

fn json_text<T: Serialize>(v: &T) -> String {
    canonical_json(&serde_json::to_value(v).unwrap_or(Value::Null))
}

/// Lineage metadata common to every row of a run.
pub(crate) fn metadata(
    idx: &RunIndex,
    role: Role,
    step: u32,
    span_ids: Vec<&str>,
    event_ids: Vec<&str>,
    human: bool,
    labels: Value,
) -> Value {
    let s = idx.session;
    let mut spans: Vec<&str> = Vec::new();
    for x in span_ids {
        if !spans.contains(&x) {
            spans.push(x);
        }
    }
    let mut m = Map::new();
    m.insert("run_id".into(), json!(s.run_id));
    m.insert("trace_id".into(), json!(s.trace_id));
    m.insert("span_ids".into(), json!(spans));
    m.insert("event_ids".into(), json!(event_ids));
    m.insert("step".into(), json!(step));
    m.insert("role".into(), json!(role.as_str()));
    m.insert("goal_family".into(), json!(s.goal_family));
    m.insert(
        "goal_hash".into(),
        json!(traj_schema::hashing::hash_str(
            &crate::minhash::normalize_goal(&s.goal)
        )),
    );
    m.insert("config_hash".into(), json!(s.config_hash));
    m.insert("prompt_hash".into(), json!(s.prompt_hash));
    m.insert("toolset_hash".into(), json!(s.toolset_hash));
    m.insert("outcome".into(), json!(idx.outcome.as_str()));
    m.insert("failure_class".into(), json!(idx.failure_class));
    m.insert(
        "human_label".into(),
        json!(human || idx.outcome_label.is_some()),
    );
    m.insert("labels".into(), labels);
    Value::Object(m)
}

/// Tool schemas for the given tool names: from `runtime_config.tools` (a list of
/// `{name, description, parameters}`) when the agent recorded it, else inferred from the
/// arguments the run passed to the tool (property names and JSON types).
pub fn tool_schemas(idx: &RunIndex, names: &[String]) -> Vec<Value> {
    let recorded = idx.session.runtime_config.extra.get("tools");
    names
        .iter()
        .map(|n| {
            let spec = recorded.and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(n))
            });
            let description = spec
                .and_then(|s| s.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let parameters = spec
                .and_then(|s| s.get("parameters"))
                .cloned()
                .unwrap_or_else(|| inferred_parameters(idx, n));
            json!({
                "type": "function",
                "function": {"name": n, "description": description, "parameters": parameters},
            })
        })
        .collect()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn inferred_parameters(idx: &RunIndex, tool: &str) -> Value {
    let mut props: std::collections::BTreeMap<String, &'static str> = Default::default();
    for (_, w) in idx.works() {
        for t in &w.tools {
            if t.call.1.tool == tool {
                if let Value::Object(args) = &t.call.1.arguments {
                    for (k, v) in args {
                        props.entry(k.clone()).or_insert(json_type(v));
                    }
                }
            }
        }
    }
    let properties: Map<String, Value> = props
        .into_iter()
        .map(|(k, t)| (k, json!({"type": t})))
        .collect();
    json!({"type": "object", "properties": properties})
}

fn verdict_msg(v: &VerdictText) -> Msg {
    Msg::assistant(canonical_json(&json!({
        "verdict": v.verdict.as_str(),
        "feedback": v.feedback,
        "risk_flags": v.risk_flags,
    })))
}

fn call_of(w: &WorkStage, t: Option<&ToolExec>) -> String {
    t.map(|t| t.call.1.call_id.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("call_{}", w.span_id))
}

/// The worker's chosen action as an assistant message.
fn action_msg(w: &WorkStage) -> Option<Msg> {
    let (_, a) = w.action.as_ref()?;
    match (&a.tool, a.action.as_str()) {
        (Some(tool), "tool_call") => Some(Msg::assistant_call(
            canonical_json(&json!({"action": a.action, "reasoning": a.reasoning})),
            Call {
                id: call_of(w, w.tools.first()),
                name: tool.clone(),
                arguments: a.arguments.clone(),
            },
        )),
        _ => Some(Msg::assistant(canonical_json(&json!({
            "action": a.action,
            "arguments": a.arguments,
            "reasoning": a.reasoning,
        })))),
    }
}

/// Every row of every view for one run, in a fixed order.
pub fn run_rows(idx: &RunIndex, prefs: &PrefConfig, cfg: &RowsConfig) -> Vec<Row> {
    let mut rows = Vec::new();
    planner_rows(idx, cfg, &mut rows);
    worker_rows(idx, cfg, &mut rows);
    verifier_rows(idx, prefs, cfg, &mut rows);
    recovery_rows(idx, &mut rows);
    rows
}

/// Where a row's messages came from.
enum Source<'c, 'a> {
    /// The model's recorded conversation.
    Llm(&'c Conversation<'a>),
    /// The step's payloads, rendered with traj's prompt; the reason says why.
    Payload(&'static str),
}

/// Why a step's row falls back to its payloads.
fn payload_reason(calls: &[LlmCallRef]) -> &'static str {
    if calls.is_empty() {
        "no_llm_calls"
    } else if content_missing(calls) {
        "content_not_captured"
    } else {
        "no_conversation"
    }
}

/// Adds `source` (and, for LLM rows, the calls' lineage and provenance) to a row's metadata.
fn with_source(mut meta: Value, source: Source) -> Value {
    let Value::Object(m) = &mut meta else {
        return meta;
    };
    match source {
        Source::Llm(c) => {
            m.insert("source".into(), json!("llm"));
            let span_ids: Vec<&str> = c.calls.iter().map(|(e, _)| e.span_id.as_str()).collect();
            let event_ids: Vec<&str> = c.calls.iter().map(|(e, _)| e.event_id.as_str()).collect();
            for (key, ids) in [("span_ids", span_ids), ("event_ids", event_ids)] {
                if let Some(Value::Array(list)) = m.get_mut(key) {
                    for id in ids {
                        if !list.iter().any(|x| x == id) {
                            list.push(json!(id));
                        }
                    }
                }
            }
            m.insert("llm".into(), c.provenance());
        }
        Source::Payload(why) => {
            m.insert("source".into(), json!("payload"));
            m.insert("payload_reason".into(), json!(why));
        }
    }
    meta
}

/// The rows of one step: one per recorded conversation, else the payload row `fallback` makes.
fn step_rows(
    view: View,
    calls: &[LlmCallRef],
    convs: &[Conversation],
    meta: Value,
    default_tools: impl Fn() -> Vec<Value>,
    fallback: impl FnOnce() -> Option<(Vec<Msg>, Msg, Vec<Value>)>,
    rows: &mut Vec<Row>,
) {
    if convs.is_empty() {
        if let Some((prompt, answer, tools)) = fallback() {
            rows.push(Row {
                view,
                prompt,
                completion: Completion::Sft(answer),
                tools,
                metadata: with_source(meta, Source::Payload(payload_reason(calls))),
            });
        }
        return;
    }
    for c in convs {
        rows.push(Row {
            view,
            prompt: c.prompt.clone(),
            completion: Completion::Sft(c.answer.clone()),
            tools: if c.tools.is_empty() {
                default_tools()
            } else {
                c.tools.clone()
            },
            metadata: with_source(meta.clone(), Source::Llm(c)),
        });
    }
}

fn end_ids<'a>(idx: &'a RunIndex) -> (Vec<&'a str>, Vec<&'a str>) {
    match idx.end {
        Some(e) => (vec![e.span_id.as_str()], vec![e.event_id.as_str()]),
        None => (vec![], vec![]),
    }
}

fn planner_rows(idx: &RunIndex, cfg: &RowsConfig, rows: &mut Vec<Row>) {
    for (i, p) in idx.plans() {
        let mut spans = vec![p.span_id];
        let mut events: Vec<&str> = [p.input, None]
            .iter()
            .flatten()
            .map(|(e, _)| e.event_id.as_str())
            .chain(p.output.map(|(e, _)| e.event_id.as_str()))
            .collect();
        let mut verdicts = Vec::new();
        for s in idx.stages.iter().skip(i + 1) {
            match s {
                Stage::Plan(_) => break,
                Stage::Verify(v) => {
                    if let (Some(verdict), Some((e, _))) = (v.verdict, v.output) {
                        verdicts.push(verdict.as_str());
                        spans.push(v.span_id);
                        events.push(e.event_id.as_str());
                    }
                }
                Stage::Work(_) => {}
            }
        }
        let (es, ee) = end_ids(idx);
        spans.extend(es);
        events.extend(ee);
        let labels = json!({
            "following_verdicts": verdicts,
            "final_outcome": idx.outcome.as_str(),
            "is_replan": p.input.is_some_and(|(_, i)| i.replan_reason.is_some()),
        });
        let meta = metadata(idx, Role::Planner, p.step, spans, events, false, labels);
        step_rows(
            View::PlannerSft,
            &p.llm_calls,
            &conversations(&p.llm_calls, cfg.llm_rows),
            meta,
            Vec::new,
            || {
                let ((_, input), (_, output)) = (p.input?, p.output?);
                let answer = Msg::assistant(canonical_json(&json!({
                    "plan": output.plan,
                    "rationale": output.rationale,
                    "confidence": output.confidence,
                })));
                Some((
                    vec![Msg::system(PLANNER_SYSTEM), Msg::user(json_text(input))],
                    answer,
                    Vec::new(),
                ))
            },
            rows,
        );
    }
}

fn worker_rows(idx: &RunIndex, cfg: &RowsConfig, rows: &mut Vec<Row>) {
    for (_, w) in idx.works() {
        let mut spans = vec![w.span_id];
        let mut events: Vec<&str> = w
            .input
            .map(|(e, _)| e.event_id.as_str())
            .into_iter()
            .chain(w.action.as_ref().map(|(e, _)| e.event_id.as_str()))
            .collect();
        for t in &w.tools {
            spans.push(t.span_id);
            events.push(t.call.0.event_id.as_str());
            if let Some((re, _)) = t.result {
                events.push(re.event_id.as_str());
            }
        }
        if let Some((oe, _)) = w.output {
            events.push(oe.event_id.as_str());
        }
        let last = w.tools.last().and_then(|t| t.result.map(|(_, r)| r));
        let first_error = w
            .tools
            .iter()
            .find_map(|t| t.result.and_then(|(_, r)| r.error_class.clone()))
            .or_else(|| w.output.and_then(|(_, o)| o.error_class.clone()));
        let labels = json!({
            "tool_status": last.map(|r| if r.status == traj_schema::ToolStatus::Ok { "ok" } else { "error" }),
            "tool_result": last.map(|r| canonical_json(&r.result)),
            "error_class": first_error,
            "attempts": w.tools.len(),
            "retried": w.tools.len() > 1,
            "recovered": w.tools.iter().any(|t| t.failed()) && w.tools.last().is_some_and(|t| t.succeeded()),
            "output_status": w.output.map(|(_, o)| if o.status == traj_schema::ToolStatus::Ok { "ok" } else { "error" }),
        });
        let meta = metadata(
            idx,
            Role::Worker,
            w.step,
            spans,
            events,
            w.action_label.is_some(),
            labels,
        );
        let allowed: &[String] = w
            .input
            .map(|(_, i)| i.allowed_tools.as_slice())
            .unwrap_or(&[]);
        let default_tools = || tool_schemas(idx, allowed);
        // A human correction of the action replaces what the model said: payload row.
        let calls = if w.action_label.is_some() {
            &[][..]
        } else {
            &w.llm_calls[..]
        };
        step_rows(
            View::WorkerSft,
            calls,
            &conversations(calls, cfg.llm_rows),
            meta,
            default_tools,
            || {
                let (_, input) = w.input?;
                w.action.as_ref()?;
                let answer = action_msg(w)?;
                Some((
                    vec![Msg::system(WORKER_SYSTEM), Msg::user(json_text(input))],
                    answer,
                    default_tools(),
                ))
            },
            rows,
        );
    }
}

fn verifier_rows(idx: &RunIndex, prefs: &PrefConfig, cfg: &RowsConfig, rows: &mut Vec<Row>) {
    for (i, v) in idx.verifies() {
        let (Some((ie, input)), Some((oe, out)), Some(verdict)) = (v.input, v.output, v.verdict)
        else {
            continue;
        };
        let (correct, rule) = judge(idx, i, v);
        let (es, ee) = end_ids(idx);
        let mut spans = vec![v.span_id];
        spans.extend(es.iter().copied());
        let mut events = vec![ie.event_id.as_str(), oe.event_id.as_str()];
        events.extend(ee.iter().copied());
        let human = v.label.is_some();
        let effective = VerdictText {
            verdict,
            feedback: v.feedback.clone(),
            risk_flags: out.risk_flags.clone(),
        };
        let labels = json!({
            "ex_post_correct": correct,
            "rule": rule,
            "recorded_verdict": out.verdict.as_str(),
            "verdict": verdict.as_str(),
            "final_outcome": idx.outcome.as_str(),
        });
        // A human correction replaces what the model said: its rows come from the payloads.
        let calls = if human { &[][..] } else { &v.llm_calls[..] };
        let convs = conversations(calls, cfg.llm_rows);
        let payload_prompt = vec![Msg::system(VERIFIER_SYSTEM), Msg::user(json_text(input))];
        let meta = metadata(
            idx,
            Role::Verifier,
            v.step,
            spans.clone(),
            events.clone(),
            human,
            labels,
        );
        step_rows(
            View::VerifierSft,
            calls,
            &convs,
            meta,
            Vec::new,
            || Some((payload_prompt.clone(), verdict_msg(&effective), Vec::new())),
            rows,
        );
        // Preference pairs: on the model's real prompt, the recorded side as it answered and
        // the other side in the same form.
        let real = convs.last();
        for case in pref_cases(idx, i, v, prefs) {
            let labels = json!({
                "rule": case.rule,
                "chosen_verdict": case.chosen.verdict.as_str(),
                "rejected_verdict": case.rejected.verdict.as_str(),
                "synthetic_side": case.synthetic.map(|s| s.as_str()),
                "final_outcome": idx.outcome.as_str(),
            });
            let meta = metadata(
                idx,
                Role::Verifier,
                v.step,
                spans.clone(),
                events.clone(),
                human,
                labels,
            );
            let (prompt, chosen, rejected, tools, source) = match real {
                Some(c) => {
                    let side = |vt: &VerdictText, recorded: bool| {
                        if recorded {
                            c.answer.clone()
                        } else {
                            verdict_like(
                                &c.answer,
                                vt.verdict.as_str(),
                                &vt.feedback,
                                &vt.risk_flags,
                                &cfg.synthetic_verdict_template,
                            )
                        }
                    };
                    (
                        c.prompt.clone(),
                        side(&case.chosen, case.synthetic == Some(Synthetic::Rejected)),
                        side(&case.rejected, case.synthetic == Some(Synthetic::Chosen)),
                        c.tools.clone(),
                        Source::Llm(c),
                    )
                }
                None => (
                    payload_prompt.clone(),
                    verdict_msg(&case.chosen),
                    verdict_msg(&case.rejected),
                    Vec::new(),
                    Source::Payload(payload_reason(calls)),
                ),
            };
            rows.push(Row {
                view: View::VerifierPrefPairs,
                prompt,
                completion: Completion::Pref { chosen, rejected },
                tools,
                metadata: with_source(meta, source),
            });
        }
    }
}

fn failed_turns(w: &WorkStage, failed: &[&ToolExec], prompt: &mut Vec<Msg>) {
    let reasoning = w
        .action
        .as_ref()
        .map(|(_, a)| a.reasoning.clone())
        .unwrap_or_default();
    for t in failed {
        let id = format!("{}_{}", call_of(w, Some(t)), t.call.1.attempt);
        prompt.push(Msg::assistant_call(
            canonical_json(&json!({"action": "tool_call", "reasoning": reasoning})),
            Call {
                id: id.clone(),
                name: t.call.1.tool.clone(),
                arguments: t.call.1.arguments.clone(),
            },
        ));
        let err = t.result.map(|(_, r)| {
            json!({
                "status": "error",
                "error_class": r.error_class,
                "error_message": r.error_message,
            })
        });
        prompt.push(Msg::tool(
            &id,
            &t.call.1.tool,
            canonical_json(&err.unwrap_or(Value::Null)),
        ));
    }
}

/// The LLM call of the worker step that ended between the last failed attempt and the attempt
/// that succeeded and whose input carries a failed call's result (by call id): the model saw
/// the error, and its answer is the recovery.
fn llm_recovery<'a>(
    w: &WorkStage<'a>,
    failed: &[&ToolExec],
    recovered: &ToolExec,
) -> Option<Conversation<'a>> {
    let after = failed
        .last()
        .and_then(|t| t.result.map(|(e, _)| e.time_unix_nano))?;
    let before = recovered.call.0.time_unix_nano;
    let ids: Vec<&str> = failed
        .iter()
        .map(|t| t.call.1.call_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let call = w.llm_calls.iter().find(|(e, r)| {
        (after..=before).contains(&e.time_unix_nano)
            && r.has_conversation()
            && r.input_messages.iter().any(|m| {
                m.parts.iter().any(|p| {
                    matches!(p, traj_schema::MessagePart::ToolCallResponse { id, .. } if ids.contains(&id.as_str()))
                })
            })
    })?;
    conversations(std::slice::from_ref(call), crate::llm_rows::LlmRows::Call)
        .into_iter()
        .next()
}

fn recovery_rows(idx: &RunIndex, rows: &mut Vec<Row>) {
    let works: Vec<(usize, &WorkStage)> = idx.works().collect();
    for (wi, (_, w)) in works.iter().enumerate() {
        let Some((ie, input)) = w.input else { continue };
        let mut j = 0;
        while j < w.tools.len() {
            if !w.tools[j].failed() {
                j += 1;
                continue;
            }
            // A run of consecutive failures starting at j.
            let mut k = j;
            while k < w.tools.len() && w.tools[k].failed() {
                k += 1;
            }
            let failed: Vec<&ToolExec> = w.tools[j..k].iter().collect();
            let error_class = failed
                .first()
                .and_then(|t| t.result.and_then(|(_, r)| r.error_class.clone()));
            let mut prompt = vec![Msg::system(RECOVERY_SYSTEM), Msg::user(json_text(input))];
            failed_turns(w, &failed, &mut prompt);
            let mut spans = vec![w.span_id];
            let mut events = vec![ie.event_id.as_str()];
            for t in &failed {
                spans.push(t.span_id);
                events.push(t.call.0.event_id.as_str());
                if let Some((re, _)) = t.result {
                    events.push(re.event_id.as_str());
                }
            }
            let recovery = recovery_of(&works, wi, w, k, &mut prompt, &mut spans, &mut events);
            if let Some((msg, kind, attempt)) = recovery {
                let labels = json!({
                    "recovery_kind": kind,
                    "error_class": error_class,
                    "failed_attempts": failed.len(),
                    "recovered_at_attempt": attempt,
                    "final_outcome": idx.outcome.as_str(),
                });
                let meta = metadata(
                    idx,
                    Role::Worker,
                    w.step,
                    spans,
                    events,
                    w.action_label.is_some(),
                    labels,
                );
                let default_tools = tool_schemas(idx, &input.allowed_tools);
                // The model saw the failure: its real conversation up to the error result, then
                // the turn that recovered.
                let seen = w
                    .tools
                    .get(k)
                    .filter(|_| kind == "retry" && w.action_label.is_none())
                    .and_then(|ok| llm_recovery(w, &failed, ok));
                rows.push(match seen {
                    Some(c) => Row {
                        view: View::WorkerRecoveryCases,
                        prompt: c.prompt.clone(),
                        completion: Completion::Sft(c.answer.clone()),
                        tools: if c.tools.is_empty() {
                            default_tools
                        } else {
                            c.tools.clone()
                        },
                        metadata: with_source(meta, Source::Llm(&c)),
                    },
                    None => Row {
                        view: View::WorkerRecoveryCases,
                        prompt,
                        completion: Completion::Sft(msg),
                        tools: default_tools,
                        metadata: with_source(
                            meta,
                            Source::Payload(if w.llm_calls.is_empty() {
                                "no_llm_calls"
                            } else {
                                "failure_not_shown_to_model"
                            }),
                        ),
                    },
                });
            }
            j = k;
        }
    }
}

/// What recovered the failed attempts `..k` of worker `w` (index `wi` of `works`): a later
/// attempt of the same step (`retry`), or, when the step ended failed, the next worker step that
/// did not fail (`next_step`, whose input joins the prompt). Adds its spans and events.
fn recovery_of<'a>(
    works: &[(usize, &'a WorkStage<'a>)],
    wi: usize,
    w: &'a WorkStage<'a>,
    k: usize,
    prompt: &mut Vec<Msg>,
    spans: &mut Vec<&'a str>,
    events: &mut Vec<&'a str>,
) -> Option<(Msg, &'static str, u32)> {
    if let Some(ok) = w.tools.get(k).filter(|t| t.succeeded()) {
        spans.push(ok.span_id);
        events.push(ok.call.0.event_id.as_str());
        if let Some((re, _)) = ok.result {
            events.push(re.event_id.as_str());
        }
        let reasoning = w
            .action
            .as_ref()
            .map(|(_, a)| a.reasoning.clone())
            .unwrap_or_default();
        return Some((
            Msg::assistant_call(
                canonical_json(&json!({"action": "tool_call", "reasoning": reasoning})),
                Call {
                    id: format!("{}_{}", call_of(w, Some(ok)), ok.call.1.attempt),
                    name: ok.call.1.tool.clone(),
                    arguments: ok.call.1.arguments.clone(),
                },
            ),
            "retry",
            ok.call.1.attempt,
        ));
    }
    if k != w.tools.len() {
        return None;
    }
    let (_, n) = works
        .get(wi + 1)
        .filter(|(_, n)| n.step <= w.step + 1 && !n.failed())?;
    let (nie, ninput) = n.input?;
    let (nae, _) = n.action.as_ref()?;
    let msg = action_msg(n)?;
    prompt.push(Msg::user(json_text(ninput)));
    spans.push(n.span_id);
    events.push(nie.event_id.as_str());
    events.push(nae.event_id.as_str());
    Some((msg, "next_step", 1))
}
