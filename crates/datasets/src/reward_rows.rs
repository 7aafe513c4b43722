//! Rows for preference and reward trainers that need no pair: KTO's unpaired preference
//! (`verifier_kto`, `worker_kto`, each an SFT row's prompt and answer with a desirable /
//! undesirable label) and TRL's stepwise supervision for process reward models (`worker_prm`,
//! a plan's worker steps with one label each). Labelling rules: docs/datasets.md.

use crate::prefs::judge;
use crate::rows::{Completion, Msg, Row, View};
use crate::runview::{RunIndex, Stage, WorkStage};
use serde_json::{json, Value};
use traj_schema::hashing::canonical_json;
use traj_schema::{Role, Verdict};

/// The KTO and stepwise rows of one run, from its SFT rows and its stages.
pub fn derive(idx: &RunIndex, rows: &[Row]) -> Vec<Row> {
    let mut out: Vec<Row> = rows.iter().filter_map(unpaired).collect();
    stepwise_rows(idx, &mut out);
    out
}

/// Sets `labels.<key>` of a copy of the row's metadata.
fn with_labels(meta: &Value, extra: &[(&str, Value)]) -> Value {
    let mut m = meta.clone();
    if let Some(labels) = m.get_mut("labels").and_then(Value::as_object_mut) {
        for (k, v) in extra {
            labels.insert((*k).to_owned(), v.clone());
        }
    }
    m
}

/// A verifier SFT row labelled by ex-post correctness, or a worker SFT row by its tool outcome
/// (the step's last tool result, else the step's output status); unlabelled rows yield none.
fn unpaired(row: &Row) -> Option<Row> {
    let Completion::Sft(answer) = &row.completion else {
        return None;
    };
    let labels = &row.metadata["labels"];
    let (mut prompt, mut answer) = (&row.prompt[..], answer);
    let (view, label, rule) = match row.view {
        View::VerifierSft => (
            View::VerifierKto,
            labels["ex_post_correct"].as_bool()?,
            "verifier_ex_post_correct",
        ),
        View::WorkerSft => {
            let status = labels["tool_status"]
                .as_str()
                .or_else(|| labels["output_status"].as_str())?;
            // The label judges the tool call: in a multi-turn row that is the last assistant
            // turn that called a tool, not the closing summary after the results.
            (prompt, answer) = judged_action(&row.prompt, answer);
            (View::WorkerKto, status == "ok", "worker_tool_outcome")
        }
        _ => return None,
    };
    Some(Row {
        view,
        prompt: prompt.to_vec(),
        completion: Completion::Unpaired {
            answer: answer.clone(),
            label,
        },
        tools: row.tools.clone(),
        metadata: with_labels(
            &row.metadata,
            &[("desirable", json!(label)), ("label_rule", json!(rule))],
        ),
    })
}

/// The conversation up to the last assistant turn that called a tool, and that turn (the answer
/// itself when it calls a tool or no turn does).
fn judged_action<'r>(prompt: &'r [Msg], answer: &'r Msg) -> (&'r [Msg], &'r Msg) {
    if !answer.tool_calls.is_empty() {
        return (prompt, answer);
    }
    match prompt
        .iter()
        .rposition(|m| m.role == "assistant" && !m.tool_calls.is_empty())
    {
        Some(i) if i > 0 => (&prompt[..i], &prompt[i]),
        _ => (prompt, answer),
    }
}

/// One step of a plan as the worker took it: what it did, in words and JSON.
fn step_text(w: &WorkStage) -> Option<String> {
    let (_, a) = w.action.as_ref()?;
    let what = match &a.tool {
        Some(tool) => format!("{tool}({})", canonical_json(&a.arguments)),
        None => format!("{} {}", a.action, canonical_json(&a.arguments)),
    };
    Some(if a.reasoning.is_empty() {
        what
    } else {
        format!("{}\n{what}", a.reasoning)
    })
}

/// A worker step is good when it succeeded (no failed output, last tool call ok) and the
/// verifier after it did not rightly ask for a new plan (a correct `replan` says the step did
/// not move the plan forward).
fn step_label(idx: &RunIndex, work_at: usize, w: &WorkStage) -> bool {
    let rightly_replanned = idx.stages[work_at + 1..]
        .iter()
        .enumerate()
        .take_while(|(_, s)| !matches!(s, Stage::Work(_) | Stage::Plan(_)))
        .any(|(k, s)| match s {
            Stage::Verify(v) => {
                v.verdict == Some(Verdict::Replan) && judge(idx, work_at + 1 + k, v).0 == Some(true)
            }
            _ => false,
        });
    !w.failed() && !rightly_replanned
}

/// The prompt of a plan's stepwise row: the goal and the plan's steps.
fn plan_prompt(idx: &RunIndex, plan: &crate::runview::PlanStage) -> String {
    let mut text = format!("Goal: {}", idx.session.goal);
    if let Some((_, out)) = plan.output {
        text.push_str("\nPlan:");
        for s in &out.plan {
            text.push_str(&format!("\n{}. {}", s.index, s.description));
            if let Some(t) = &s.tool {
                text.push_str(&format!(" [{t}]"));
            }
        }
    }
    text
}

/// One stepwise row per plan that has worker steps before the next plan.
fn stepwise_rows(idx: &RunIndex, out: &mut Vec<Row>) {
    for (i, p) in idx.plans() {
        let (mut steps, mut labels) = (Vec::new(), Vec::new());
        let (mut spans, mut events) = (vec![p.span_id], Vec::new());
        if let Some((e, _)) = p.output {
            events.push(e.event_id.as_str());
        }
        for (j, s) in idx.stages.iter().enumerate().skip(i + 1) {
            match s {
                Stage::Plan(_) => break,
                Stage::Work(w) => {
                    let Some(text) = step_text(w) else { continue };
                    steps.push(text);
                    labels.push(step_label(idx, j, w));
                    spans.push(w.span_id);
                    if let Some((e, _)) = &w.action {
                        events.push(e.event_id.as_str());
                    }
                }
                Stage::Verify(v) => {
                    spans.push(v.span_id);
                    if let Some((e, _)) = v.output {
                        events.push(e.event_id.as_str());
                    }
                }
            }
        }
        if steps.is_empty() {
            continue;
        }
        let all_good = labels.iter().all(|l| *l);
        let meta = crate::views::metadata(
            idx,
            Role::Worker,
            p.step,
            spans,
            events,
            false,
            json!({
                "all_steps_good": all_good,
                "steps": steps.len(),
                "label_rule": "worker_step_succeeded_and_not_rightly_replanned",
                "final_outcome": idx.outcome.as_str(),
            }),
        );
        let mut meta = meta;
        if let Some(m) = meta.as_object_mut() {
            m.insert("source".into(), json!("payload"));
            m.insert("payload_reason".into(), json!("steps_from_worker_actions"));
        }
        out.push(Row {
            view: View::WorkerPrm,
            prompt: vec![Msg::user(plan_prompt(idx, p))],
            completion: Completion::Stepwise { steps, labels },
            tools: Vec::new(),
            metadata: meta,
        });
    }
}
