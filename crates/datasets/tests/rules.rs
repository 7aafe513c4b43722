//! The labelling rules, one by one, on hand-built runs: verifier correctness and preference
//! pairs, recovery cases, human label overrides, lineage of every row.

use serde_json::{json, Value};
use traj_datasets::config::PrefConfig;
use traj_datasets::run_rows;
use traj_datasets::synth::{scenario_run, Scenario};
use traj_datasets::RunIndex;
use traj_datasets::{Completion, Row, View};
use traj_datasets::{HumanLabel, Labels};
use traj_schema::{Event, EventType, Session};

fn rows_of(run: &(Session, Vec<Event>), labels: &Labels, prefs: &PrefConfig) -> Vec<Row> {
    let idx = RunIndex::new(&run.0, &run.1, labels);
    run_rows(&idx, prefs, &traj_datasets::config::RowsConfig::default())
}

fn view(rows: &[Row], v: View) -> Vec<&Row> {
    rows.iter().filter(|r| r.view == v).collect()
}

fn content(m: &traj_datasets::Msg) -> Value {
    serde_json::from_str(&m.content).unwrap()
}

/// (rule, chosen verdict, rejected verdict, synthetic side) of every pair.
fn pairs(rows: &[Row]) -> Vec<(String, String, String, Value)> {
    view(rows, View::VerifierPrefPairs)
        .into_iter()
        .map(|r| match &r.completion {
            Completion::Pref { chosen, rejected } => (
                r.metadata["labels"]["rule"].as_str().unwrap().to_string(),
                content(chosen)["verdict"].as_str().unwrap().to_string(),
                content(rejected)["verdict"].as_str().unwrap().to_string(),
                r.metadata["labels"]["synthetic_side"].clone(),
            ),
            _ => panic!("pref row without a pair"),
        })
        .collect()
}

fn correctness(rows: &[Row]) -> Vec<(String, Value)> {
    view(rows, View::VerifierSft)
        .into_iter()
        .map(|r| {
            (
                r.metadata["labels"]["rule"].as_str().unwrap().to_string(),
                r.metadata["labels"]["ex_post_correct"].clone(),
            )
        })
        .collect()
}

fn no_labels() -> Labels {
    Labels::default()
}

#[test]
fn false_stop_prefers_continuing_over_the_recorded_end() {
    let run = scenario_run(
        1,
        "Sum the price column of a.csv",
        "csv_aggregate",
        Scenario::FalseStop,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    assert_eq!(
        pairs(&rows),
        vec![(
            "false_stop".into(),
            "continue".into(),
            "end".into(),
            json!("chosen")
        )]
    );
    assert_eq!(
        correctness(&rows),
        vec![("false_stop".into(), json!(false))]
    );
}

#[test]
fn needless_replan_prefers_continue() {
    let run = scenario_run(
        2,
        "Sum the price column of b.csv",
        "csv_aggregate",
        Scenario::NeedlessReplan,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    let p = pairs(&rows);
    assert!(
        p.contains(&(
            "needless_replan".into(),
            "continue".into(),
            "replan".into(),
            json!("chosen")
        )),
        "{p:?}"
    );
    assert!(correctness(&rows).contains(&("needless_replan".into(), json!(false))));
}

#[test]
fn a_replan_that_changed_the_plan_is_not_needless() {
    let run = scenario_run(
        3,
        "Sum the price column of c.csv",
        "csv_aggregate",
        Scenario::ReplanRecovery,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    assert!(pairs(&rows).iter().all(|p| p.0 != "needless_replan"));
    assert!(correctness(&rows).contains(&("replan_then_success".into(), json!(true))));
}

#[test]
fn missed_stop_prefers_end_when_the_goal_was_already_met() {
    let run = scenario_run(
        4,
        "Sum the price column of d.csv",
        "csv_aggregate",
        Scenario::MissedStop,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    let p = pairs(&rows);
    assert!(
        p.contains(&(
            "missed_stop".into(),
            "end".into(),
            "continue".into(),
            json!("chosen")
        )),
        "{p:?}"
    );
    assert_eq!(correctness(&rows)[0], ("missed_stop".into(), json!(false)));
}

#[test]
fn confirmed_stop_synthesizes_a_rejected_continue_only_when_configured() {
    let run = scenario_run(
        5,
        "Sum the price column of e.csv",
        "csv_aggregate",
        Scenario::Clean,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    assert_eq!(
        pairs(&rows),
        vec![(
            "confirmed_stop".into(),
            "end".into(),
            "continue".into(),
            json!("rejected")
        )]
    );
    let off = PrefConfig {
        synthesize_rejected_for_confirmed_stop: false,
    };
    assert!(pairs(&rows_of(&run, &no_labels(), &off)).is_empty());
    // The correct `continue` of the first cycle gets no pair and is judged correct.
    assert_eq!(
        correctness(&rows),
        vec![
            ("continue_then_success".into(), json!(true)),
            ("stop_then_success".into(), json!(true))
        ]
    );
}

#[test]
fn aborted_run_continue_is_unknown_and_yields_no_pair() {
    let run = scenario_run(
        6,
        "Sum the price column of f.csv",
        "csv_aggregate",
        Scenario::GiveUp,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    assert!(pairs(&rows).is_empty());
    assert_eq!(
        correctness(&rows),
        vec![("continue_then_no_success".into(), Value::Null)]
    );
    assert!(
        view(&rows, View::WorkerRecoveryCases).is_empty(),
        "two failures, no recovery"
    );
}

fn first_event(run: &(Session, Vec<Event>), t: EventType) -> Event {
    run.1.iter().find(|e| e.event_type() == t).unwrap().clone()
}

#[test]
fn human_labels_override_verdicts_outcomes_and_actions() {
    let run = scenario_run(
        7,
        "Sum the price column of g.csv",
        "csv_aggregate",
        Scenario::FalseStop,
    );
    let v_out = first_event(&run, EventType::VerifierOutput);
    let action = first_event(&run, EventType::WorkerAction);
    let end = first_event(&run, EventType::EpisodeEnd);
    let mut labels = Labels::default();
    labels
        .insert(HumanLabel {
            event_id: Some(v_out.event_id.clone()),
            verdict: Some("replan".into()),
            feedback: Some("the result was never checked".into()),
            ..Default::default()
        })
        .unwrap();
    labels
        .insert(HumanLabel {
            span_id: Some(action.span_id.clone()),
            action: Some(json!({"arguments": {"path": "right.csv"}})),
            ..Default::default()
        })
        .unwrap();
    labels
        .insert(HumanLabel {
            span_id: Some(end.span_id.clone()),
            outcome: Some("aborted".into()),
            ..Default::default()
        })
        .unwrap();
    let idx = RunIndex::new(&run.0, &run.1, &labels);
    assert_eq!(idx.labels_used.len(), 3);
    let rows = run_rows(
        &idx,
        &PrefConfig::default(),
        &traj_datasets::config::RowsConfig::default(),
    );

    let v = view(&rows, View::VerifierSft);
    let Completion::Sft(m) = &v[0].completion else {
        panic!()
    };
    assert_eq!(content(m)["verdict"], "replan");
    assert_eq!(content(m)["feedback"], "the result was never checked");
    assert_eq!(v[0].metadata["human_label"], true);
    assert_eq!(v[0].metadata["labels"]["recorded_verdict"], "end");
    assert_eq!(v[0].metadata["outcome"], "aborted");
    assert_eq!(
        pairs(&rows),
        vec![(
            "human_correction".into(),
            "replan".into(),
            "end".into(),
            Value::Null
        )]
    );

    let w = view(&rows, View::WorkerSft);
    let Completion::Sft(m) = &w[0].completion else {
        panic!()
    };
    assert_eq!(m.tool_calls[0].arguments, json!({"path": "right.csv"}));
    assert_eq!(w[0].metadata["human_label"], true);
    // Every row of a run whose outcome was corrected is marked.
    assert!(rows.iter().all(|r| r.metadata["human_label"] == true));
}

#[test]
fn retry_recovery_teaches_the_successful_attempt() {
    let run = scenario_run(
        8,
        "Sum the price column of h.csv",
        "csv_aggregate",
        Scenario::RetryRecovery,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    let rec = view(&rows, View::WorkerRecoveryCases);
    assert_eq!(rec.len(), 1);
    let r = rec[0];
    assert_eq!(r.metadata["labels"]["recovery_kind"], "retry");
    assert_eq!(r.metadata["labels"]["error_class"], "timeout");
    // Prompt: system, user, the failed call, its error; completion: the call that worked.
    assert_eq!(
        r.prompt.iter().map(|m| m.role).collect::<Vec<_>>(),
        ["system", "user", "assistant", "tool"]
    );
    assert!(r.prompt[3].content.contains("timeout"));
    let Completion::Sft(m) = &r.completion else {
        panic!()
    };
    assert_eq!(m.tool_calls[0].name, "read_csv");
    let w = view(&rows, View::WorkerSft);
    assert_eq!(w[0].metadata["labels"]["retried"], true);
    assert_eq!(w[0].metadata["labels"]["recovered"], true);
    assert_eq!(w[0].metadata["labels"]["attempts"], 2);
}

#[test]
fn next_step_recovery_teaches_the_next_workers_action() {
    let run = scenario_run(
        9,
        "Sum the price column of i.csv",
        "csv_aggregate",
        Scenario::ReplanRecovery,
    );
    let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
    let rec = view(&rows, View::WorkerRecoveryCases);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].metadata["labels"]["recovery_kind"], "next_step");
    assert_eq!(rec[0].metadata["labels"]["error_class"], "not_found");
    let last_user = rec[0]
        .prompt
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .unwrap();
    assert!(
        last_user.content.contains("prior_failures"),
        "{}",
        last_user.content
    );
    assert!(last_user.content.contains("not_found"));
    let Completion::Sft(m) = &rec[0].completion else {
        panic!()
    };
    assert_eq!(m.tool_calls[0].name, "sum_column");
    assert_eq!(m.tool_calls[0].arguments, json!({"column": "located"}));
}

#[test]
fn every_row_carries_lineage_that_exists_in_its_run() {
    for (k, sc) in [
        Scenario::Clean,
        Scenario::RetryRecovery,
        Scenario::ReplanRecovery,
        Scenario::NeedlessReplan,
        Scenario::FalseStop,
        Scenario::MissedStop,
        Scenario::GiveUp,
    ]
    .into_iter()
    .enumerate()
    {
        let run = scenario_run(
            100 + k as u64,
            "List the files of project 1 that call open",
            "code_search",
            sc,
        );
        let ids: std::collections::BTreeSet<&str> =
            run.1.iter().map(|e| e.event_id.as_str()).collect();
        let spans: std::collections::BTreeSet<&str> =
            run.1.iter().map(|e| e.span_id.as_str()).collect();
        let rows = rows_of(&run, &no_labels(), &PrefConfig::default());
        for v in [View::PlannerSft, View::WorkerSft, View::VerifierSft] {
            assert!(!view(&rows, v).is_empty(), "{sc:?} has no {v:?} rows");
        }
        for r in &rows {
            let m = &r.metadata;
            assert_eq!(m["run_id"], run.0.run_id.as_str());
            assert_eq!(m["trace_id"], run.0.trace_id.as_str());
            for key in [
                "goal_family",
                "config_hash",
                "prompt_hash",
                "toolset_hash",
                "outcome",
                "role",
            ] {
                assert!(
                    m[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{key} in {m}"
                );
            }
            assert!(m["step"].is_u64());
            let e = m["event_ids"].as_array().unwrap();
            let s = m["span_ids"].as_array().unwrap();
            assert!(!e.is_empty() && !s.is_empty());
            assert!(e.iter().all(|x| ids.contains(x.as_str().unwrap())), "{m}");
            assert!(s.iter().all(|x| spans.contains(x.as_str().unwrap())), "{m}");
        }
    }
}

mod evidence_rule {
    use super::*;
    use traj_datasets::synth::{RunBuilder, ToolAttempt};
    use traj_schema::event::{
        PlanProgress, PlanStep, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput,
        WorkerAction, WorkerInput, WorkerOutput,
    };
    use traj_schema::{Outcome, ToolStatus, Verdict};

    /// write, verify(continue, evidence e1), respond, verify(end, evidence e2), success.
    fn run(e1: Value, e2: Value) -> (Session, Vec<Event>) {
        let mut b = RunBuilder::new(77, "Write hello to out.txt", "file_write");
        b.plan(
            0,
            PlannerInput {
                goal: "Write hello to out.txt".into(),
                ..Default::default()
            },
            PlannerOutput {
                plan: vec![PlanStep {
                    index: 0,
                    description: "write".into(),
                    tool: Some("write_file".into()),
                }],
                ..Default::default()
            },
        );
        let wi = WorkerInput {
            current_step: "write".into(),
            allowed_tools: vec!["write_file".into()],
            ..Default::default()
        };
        b.work(
            0,
            wi.clone(),
            WorkerAction {
                action: "tool_call".into(),
                tool: Some("write_file".into()),
                arguments: json!({"path": "out.txt", "content": "hello"}),
                reasoning: "write it".into(),
            },
            vec![ToolAttempt::ok(
                "write_file",
                json!({"path": "out.txt", "content": "hello"}),
                json!({"ok": true}),
            )],
            WorkerOutput {
                status: ToolStatus::Ok,
                ..Default::default()
            },
        );
        let vi = |e: Value| VerifierInput {
            plan_progress: PlanProgress {
                completed: 1,
                total: 1,
            },
            action_traces: vec![],
            evidence: e,
        };
        let vo = |v: Verdict| VerifierOutput {
            verdict: v,
            feedback: String::new(),
            risk_flags: vec![],
            confidence: None,
            llm_calls: vec![],
        };
        b.verify(0, vi(e1), vo(Verdict::Continue));
        b.work(
            1,
            wi,
            WorkerAction {
                action: "respond".into(),
                tool: None,
                arguments: Value::Null,
                reasoning: "nothing left".into(),
            },
            vec![],
            WorkerOutput {
                status: ToolStatus::Ok,
                ..Default::default()
            },
        );
        b.verify(1, vi(e2), vo(Verdict::End));
        b.finish(Outcome::Success, None)
    }

    #[test]
    fn continue_on_the_evidence_of_the_final_end_is_a_missed_stop() {
        let ev = json!({"file": "out.txt", "content": "hello"});
        let rows = rows_of(&run(ev.clone(), ev), &no_labels(), &PrefConfig::default());
        assert!(
            pairs(&rows)
                .iter()
                .any(|p| p.0 == "missed_stop" && p.1 == "end"),
            "{:?}",
            pairs(&rows)
        );
        assert_eq!(correctness(&rows)[0], ("missed_stop".into(), json!(false)));
    }

    #[test]
    fn continue_on_different_evidence_is_not_a_missed_stop() {
        let rows = rows_of(
            &run(
                json!({"file": "out.txt", "content": "hel"}),
                json!({"file": "out.txt", "content": "hello"}),
            ),
            &no_labels(),
            &PrefConfig::default(),
        );
        assert!(pairs(&rows).iter().all(|p| p.0 != "missed_stop"));
        assert_eq!(
            correctness(&rows)[0],
            ("continue_then_success".into(), json!(true))
        );
        // A respond action is an SFT row without a tool call; schemas are inferred from arguments.
        let w = view(&rows, View::WorkerSft);
        let Completion::Sft(m) = &w[1].completion else {
            panic!()
        };
        assert!(m.tool_calls.is_empty());
        assert_eq!(
            w[1].metadata["source"], "llm",
            "from the worker's recorded conversation"
        );
        assert_eq!(w[0].metadata["source"], "llm");
        let params = &w[0].tools[0]["function"]["parameters"];
        assert_eq!(params["properties"]["path"]["type"], "string");
    }
}
