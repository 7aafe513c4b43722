//! Curation on corpora built to provoke each case: near-duplicate goals chaining every family
//! together, a split holding one class only, a verifier that says `continue` 95 % of the time;
//! KTO and stepwise rows, the dataset card and the coverage table.

use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use traj_datasets::config::Rebalance;
use traj_datasets::synth::{scenario_run, RunBuilder, Scenario, ToolAttempt};
use traj_datasets::{build, generate_corpus, BuildConfig, BuildInputs, Format, Labels};
use traj_schema::event::{
    PlanStep, PlannerInput, PlannerOutput, VerifierInput, VerifierOutput, WorkerAction,
    WorkerInput, WorkerOutput,
};
use traj_schema::{Event, Outcome, Session, ToolStatus, Verdict};

fn policy() -> traj_redact::Policy {
    traj_datasets::dataset_redaction_policy()
}

fn inputs<'a>(
    runs: &Path,
    out: &Path,
    config: BuildConfig,
    policy: &'a traj_redact::Policy,
) -> BuildInputs<'a> {
    BuildInputs {
        runs: vec![runs.to_path_buf()],
        out: out.to_path_buf(),
        config,
        labels: Labels::default(),
        seed: 11,
        format: Format::Trl,
        redactor: policy,
        progress: None,
        threads: 0,
    }
}

fn write(dir: &Path, run: &(Session, Vec<Event>)) {
    traj_runs::write_run_with(dir, &run.0, &run.1, traj_runs::Durability::RenameOnly).unwrap();
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn lines(path: PathBuf) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SCENARIOS: [Scenario; 5] = [
    Scenario::Clean,
    Scenario::RetryRecovery,
    Scenario::FalseStop,
    Scenario::NeedlessReplan,
    Scenario::ReplanRecovery,
];

/// Six families of 40 runs: 30 with goals of the family's own template, and 5 + 5 with the
/// template the family shares with each neighbour, so near-duplicate goals chain every family
/// to the next (a cycle), as templated goals do in real corpora.
fn chained_corpus(dir: &Path) {
    const OWN: [&str; 6] = [
        "Sum the {n} price column of the sales csv and print the total",
        "Rename the key {n} to name in every object of config json",
        "Search the repository for functions named handler {n} and list them",
        "Count the error lines of service {n} in yesterday's log",
        "Fetch status code of endpoint {n} and report whether it is healthy",
        "Convert {n} miles to kilometres and round to two decimals",
    ];
    const BRIDGE: [&str; 6] = [
        "Find every TODO comment in the src directory and count them by file please {n}",
        "Download the nightly report archive and unpack it into the tmp folder now {n}",
        "Translate the readme introduction paragraph into plain german for the team {n}",
        "Compress all png images under assets with the lossless preset today {n}",
        "Schedule the weekly backup of the orders database for sunday night {n}",
        "Draft a short release note summarising the last three merged changes {n}",
    ];
    let families = [
        "csv_aggregate",
        "json_edit",
        "code_search",
        "log_triage",
        "http_status",
        "unit_convert",
    ];
    for (f, fam) in families.iter().enumerate() {
        for i in 0..40u64 {
            let key = (f as u64) * 1000 + i;
            let template = match i {
                0..=29 => OWN[f],
                30..=34 => BRIDGE[f],
                _ => BRIDGE[(f + 5) % 6],
            };
            let goal = template.replace("{n}", &(key % 97).to_string());
            write(
                dir,
                &scenario_run(key, &goal, fam, SCENARIOS[(i % 5) as usize]),
            );
        }
    }
}

#[test]
fn near_duplicate_chains_are_cut_not_allowed_to_empty_the_splits() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("runs");
    chained_corpus(&runs);
    let p = policy();

    // Unbounded (the old behaviour): one unit, validation and test empty — and now loud.
    let unbounded = BuildConfig {
        split: traj_datasets::config::SplitConfig {
            max_unit_share: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = t.path().join("unbounded");
    let s = build(&inputs(&runs, &out, unbounded, &p)).unwrap();
    let names: Vec<&str> = s.failed_checks.iter().map(|c| c.name).collect();
    assert!(names.contains(&"split_empty"), "{names:?}");
    assert_eq!(
        report(&out)["split_units"]["units"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bounded (default): several units, every split holds rows of every view with rows.
    let out = t.path().join("bounded");
    let s = build(&inputs(&runs, &out, BuildConfig::default(), &p)).unwrap();
    assert!(s.failed_checks.is_empty(), "{:?}", s.failed_checks);
    let r = report(&out);
    let units = &r["split_units"];
    assert!(units["units"].as_array().unwrap().len() >= 3, "{units}");
    let cap = units["max_unit_runs"].as_u64().unwrap();
    for u in units["units"].as_array().unwrap() {
        assert!(
            u["runs"].as_u64().unwrap() <= cap || u["families"].as_array().unwrap().len() == 1,
            "{u}"
        );
    }
    assert!(!units["refused_joins"].as_array().unwrap().is_empty());
    assert!(s.runs_cut > 0);
    assert_eq!(r["runs"]["cut_near_duplicates"], s.runs_cut);
    assert_eq!(
        r["runs"]["kept"].as_u64().unwrap()
            + s.runs_cut
            + r["runs"]["deduplicated"].as_u64().unwrap(),
        240
    );
    for k in [
        "shared_goal_families",
        "shared_near_duplicate_clusters",
        "shared_goals",
    ] {
        assert_eq!(r["leakage"][k], 0, "{k}");
    }
    for (split, views) in &s.rows {
        for v in [
            "planner_sft",
            "worker_sft",
            "verifier_sft",
            "verifier_kto",
            "worker_prm",
        ] {
            assert!(views[v] > 0, "{split}/{v} empty: {views:?}");
        }
    }
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("## Split units") && md.contains("would have made"),
        "{md}"
    );
    assert!(!md.contains("{\""), "report.md holds raw JSON");
}

#[test]
fn a_split_with_one_class_only_is_named() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("runs");
    // Three families, one split each; `steady` only ever succeeds.
    for (f, fam) in ["steady", "mixed_a", "mixed_b"].iter().enumerate() {
        for i in 0..20u64 {
            let key = 100 * f as u64 + i;
            let scenario = if *fam == "steady" {
                Scenario::Clean
            } else {
                SCENARIOS[(i % 5) as usize]
            };
            let goal = format!("{fam} task number {key} with words {}", key * 7);
            write(&runs, &scenario_run(key, &goal, fam, scenario));
        }
    }
    let cfg = BuildConfig {
        split: traj_datasets::config::SplitConfig {
            train: 1.0,
            validation: 1.0,
            test: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = t.path().join("out");
    let p = policy();
    build(&inputs(&runs, &out, cfg, &p)).unwrap();
    let r = report(&out);
    let steady_split = r["split_units"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["families"] == json!(["steady"]))
        .map(|u| u["split"].as_str().unwrap().to_owned())
        .unwrap();
    let one_class: Vec<&Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "one_class" && c["view"] == "planner_sft")
        .collect();
    assert_eq!(one_class.len(), 1, "{}", r["checks"]);
    assert_eq!(one_class[0]["split"], steady_split.as_str());
    assert_eq!(one_class[0]["severity"], "warning");
    let classes = &r["balance"]["classes"]["planner_sft"][steady_split.as_str()];
    assert_eq!(classes.as_object().unwrap().len(), 1, "{classes}");
    assert!(classes["success"].as_u64().unwrap() >= 20);
}

/// A run whose verifier says `continue` 19 times, then `end`.
fn chatty_run(key: u64, family: &str) -> (Session, Vec<Event>) {
    let mut b = RunBuilder::new(key, &format!("count the lines of file {key}.txt"), family);
    b.plan(
        0,
        PlannerInput {
            goal: format!("count the lines of file {key}.txt"),
            ..Default::default()
        },
        PlannerOutput {
            plan: vec![PlanStep {
                index: 0,
                description: "count".into(),
                tool: Some("wc".into()),
            }],
            ..Default::default()
        },
    );
    for step in 0..20u32 {
        let ok = step % 4 != 1;
        b.work(
            step,
            WorkerInput {
                current_step: "count".into(),
                allowed_tools: vec!["wc".into()],
                ..Default::default()
            },
            WorkerAction {
                action: "tool_call".into(),
                tool: Some("wc".into()),
                arguments: json!({"path": format!("{key}.txt")}),
                reasoning: "count".into(),
            },
            vec![if ok {
                ToolAttempt::ok("wc", json!({"path": format!("{key}.txt")}), json!(step))
            } else {
                ToolAttempt::err("wc", json!({"path": format!("{key}.txt")}), "timeout")
            }],
            WorkerOutput {
                status: if ok {
                    ToolStatus::Ok
                } else {
                    ToolStatus::Error
                },
                ..Default::default()
            },
        );
        let verdict = if step == 19 {
            Verdict::End
        } else {
            Verdict::Continue
        };
        b.verify(
            step,
            VerifierInput::default(),
            VerifierOutput {
                verdict,
                feedback: "go on".into(),
                risk_flags: vec![],
                confidence: None,
                llm_calls: vec![],
            },
        );
    }
    b.finish(Outcome::Success, None)
}

fn chatty_corpus(dir: &Path) {
    for f in 0..10u64 {
        for i in 0..3u64 {
            write(dir, &chatty_run(f * 10 + i, &format!("family_{f}")));
        }
    }
}

#[test]
fn a_mostly_continue_verifier_is_flagged_and_can_be_rebalanced() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("runs");
    chatty_corpus(&runs);
    let p = policy();
    let out = t.path().join("plain");
    build(&inputs(&runs, &out, BuildConfig::default(), &p)).unwrap();
    let r = report(&out);
    let train = &r["balance"]["classes"]["verifier_sft"]["train"];
    let (cont, end) = (
        train["continue"].as_u64().unwrap(),
        train["end"].as_u64().unwrap(),
    );
    assert_eq!(cont, 19 * end, "{train}");
    let flagged = r["checks"].as_array().unwrap().iter().any(|c| {
        c["name"] == "majority_share"
            && c["view"] == "verifier_sft"
            && c["split"] == "train"
            && (c["value"].as_f64().unwrap() - 0.95).abs() < 1e-9
    });
    assert!(flagged, "{}", r["checks"]);

    // Down-sampled to a 60 % majority, deterministically.
    let mut cfg = BuildConfig::default();
    cfg.balance.rebalance = Rebalance::Downsample;
    cfg.balance.max_majority_share = 0.6;
    cfg.balance.views = vec!["verifier_sft".into()];
    let a = t.path().join("down-a");
    let b = t.path().join("down-b");
    build(&inputs(&runs, &a, cfg.clone(), &p)).unwrap();
    build(&inputs(&runs, &b, cfg, &p)).unwrap();
    let file = |d: &Path| d.join("train/verifier_sft.jsonl");
    assert_eq!(fs::read(file(&a)).unwrap(), fs::read(file(&b)).unwrap());
    let rows = lines(file(&a));
    let kept_cont = rows
        .iter()
        .filter(|r| r["metadata"]["labels"]["verdict"] == "continue")
        .count() as u64;
    assert_eq!(kept_cont, (0.6 * end as f64 / 0.4).floor() as u64);
    assert_eq!(rows.len() as u64, kept_cont + end);
    assert!(rows
        .iter()
        .all(|r| r["metadata"]["balance"]["method"] == "downsample"));
    let ra = report(&a);
    assert_eq!(ra["rows"]["train"]["verifier_sft"], rows.len() as u64);
    let m: Value =
        serde_json::from_str(&fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["rebalanced"][0]["view"], "verifier_sft");
    assert_eq!(m["rebalanced"][0]["before"]["continue"], cont);
    assert_eq!(
        m["files"]["train/verifier_sft.jsonl"]["lines"],
        rows.len() as u64,
        "the manifest hashes the rebalanced file"
    );
    // Evaluation splits keep the real mix.
    let val = lines(a.join("validation/verifier_sft.jsonl"));
    assert!(val.iter().all(|r| r["metadata"].get("balance").is_none()));

    // Weighted: every class carries the same total weight.
    let mut cfg = BuildConfig::default();
    cfg.balance.rebalance = Rebalance::Weight;
    cfg.balance.views = vec!["verifier_sft".into()];
    let w = t.path().join("weight");
    build(&inputs(&runs, &w, cfg, &p)).unwrap();
    let rows = lines(file(&w));
    let total = |class: &str| -> f64 {
        rows.iter()
            .filter(|r| r["metadata"]["balance"]["class"] == class)
            .map(|r| r["metadata"]["balance"]["sample_weight"].as_f64().unwrap())
            .sum()
    };
    assert!((total("continue") - total("end")).abs() < 1e-6);
    assert_eq!(rows.len() as u64, cont + end);
}

#[test]
fn kto_and_stepwise_rows_follow_their_labelling_rules() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("runs");
    generate_corpus(&runs, 200, 5).unwrap();
    let out = t.path().join("out");
    let p = policy();
    build(&inputs(&runs, &out, BuildConfig::default(), &p)).unwrap();
    let sft = lines(out.join("train/verifier_sft.jsonl"));
    let kto = lines(out.join("train/verifier_kto.jsonl"));
    let judged: Vec<&Value> = sft
        .iter()
        .filter(|r| r["metadata"]["labels"]["ex_post_correct"].is_boolean())
        .collect();
    assert_eq!(kto.len(), judged.len());
    for (k, s) in kto.iter().zip(&judged) {
        assert_eq!(k["label"], s["metadata"]["labels"]["ex_post_correct"]);
        assert_eq!(k["metadata"]["event_ids"], s["metadata"]["event_ids"]);
        let msgs = s["messages"].as_array().unwrap();
        assert_eq!(k["completion"][0], msgs[msgs.len() - 1]);
        assert_eq!(k["prompt"].as_array().unwrap().len(), msgs.len() - 1);
    }
    assert!(kto.iter().any(|k| k["label"] == true) && kto.iter().any(|k| k["label"] == false));

    let worker = lines(out.join("train/worker_kto.jsonl"));
    assert!(!worker.is_empty());
    for k in &worker {
        let status = &k["metadata"]["labels"]["tool_status"];
        assert_eq!(k["label"] == true, status == "ok", "{k}");
    }

    let prm = lines(out.join("train/worker_prm.jsonl"));
    assert!(!prm.is_empty());
    let (mut good, mut bad) = (0, 0);
    for r in &prm {
        let steps = r["completions"].as_array().unwrap();
        let labels = r["labels"].as_array().unwrap();
        assert_eq!(steps.len(), labels.len());
        assert!(r["prompt"].as_str().unwrap().starts_with("Goal: "));
        for l in labels {
            if l == true {
                good += 1
            } else {
                bad += 1
            }
        }
        assert_eq!(
            r["metadata"]["labels"]["all_steps_good"],
            labels.iter().all(|l| l == true)
        );
    }
    assert!(good > 0 && bad > 0, "{good} good, {bad} bad steps");
}

#[test]
fn the_output_is_a_dataset_card_and_reports_coverage() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("runs");
    generate_corpus(&runs, 120, 3).unwrap();
    let out = t.path().join("out");
    let p = policy();
    build(&inputs(&runs, &out, BuildConfig::default(), &p)).unwrap();
    let card = fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.starts_with("---\n"));
    let front = card.split("\n---\n").next().unwrap();
    for v in ["planner_sft", "worker_sft", "verifier_kto", "worker_prm"] {
        assert!(front.contains(&format!("- config_name: {v}\n")), "{v}");
        assert!(front.contains(&format!("path: train/{v}.jsonl")), "{v}");
    }
    assert!(front.contains("license: other"));
    assert!(front.contains("  - name: completions\n    list: string"));
    let m: Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert!(m["files"]["README.md"]["sha256"].is_string());

    let cov = &report(&out)["coverage"];
    assert_eq!(cov["seed_kinds"], json!(["fixed", "random"]));
    let runs_of = |kind: &str| -> u64 {
        cov["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["seed_kind"] == kind)
            .map(|c| c["runs"].as_u64().unwrap())
            .sum()
    };
    let kept = report(&out)["runs"]["kept"].as_u64().unwrap();
    assert_eq!(runs_of("fixed") + runs_of("random"), kept);
    assert!(runs_of("random") > 0 && runs_of("fixed") > runs_of("random"));
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Collection coverage"));
    assert!(md.contains("| role | metric |"), "role metrics as a table");
}
