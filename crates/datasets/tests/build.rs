//! Whole builds on real run directories (tempfile): quarantine with file and line, dedup,
//! zero split leakage, byte-identical rebuilds, several --runs dirs == one, formats, redaction.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use traj_datasets::synth::{scenario_run, Scenario};
use traj_datasets::{build, generate_corpus, BuildConfig, BuildInputs, Format, Labels};

fn inputs<'a>(
    runs: Vec<PathBuf>,
    out: &Path,
    format: Format,
    policy: &'a traj_redact::Policy,
) -> BuildInputs<'a> {
    BuildInputs {
        runs,
        out: out.to_path_buf(),
        config: BuildConfig::default(),
        labels: Labels::default(),
        seed: 7,
        format,
        redactor: policy,
        progress: None,
        threads: 0,
    }
}

fn policy() -> traj_redact::Policy {
    traj_datasets::dataset_redaction_policy()
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn rows(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn corrupt_events_file_is_quarantined_with_file_and_line_and_the_rest_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let dirs = generate_corpus(&runs, 12, 3).unwrap();
    let bad = &dirs[4];
    let ev = bad.join("events.jsonl");
    let mut lines: Vec<String> = fs::read_to_string(&ev)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[2] = "{\"schema_version\": \"2\", \"truncated".into();
    fs::write(&ev, lines.join("\n") + "\n").unwrap();
    let run_id = bad.file_name().unwrap().to_string_lossy().into_owned();

    let out = tmp.path().join("out");
    let p = policy();
    let s = build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    assert_eq!(s.runs_found, 12);
    assert_eq!(s.runs_quarantined, 1);
    let q = &s.report.quarantine[0];
    assert_eq!(q.run_id, run_id);
    assert_eq!(q.file, format!("{run_id}/events.jsonl"));
    assert_eq!(q.line, Some(3));
    assert!(q.reason.contains("EOF"), "{}", q.reason);
    // Evidence copied under OUT/quarantine/, reason recorded, rest of the corpus converted.
    assert_eq!(
        fs::read(out.join("quarantine").join(&run_id).join("events.jsonl")).unwrap(),
        fs::read(&ev).unwrap()
    );
    let reason: Value = serde_json::from_str(
        &fs::read_to_string(out.join("quarantine").join(&run_id).join("reason.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(reason["line"], 3);
    assert_eq!(
        report(&out)["quarantine"][0]["file"],
        format!("{run_id}/events.jsonl")
    );
    assert_eq!(s.runs_kept + s.runs_deduplicated, 11);
    let total: u64 = s.rows.values().map(|v| v["worker_sft"]).sum();
    assert!(total >= 11);
    for split in ["train", "validation", "test"] {
        for f in fs::read_dir(out.join(split)).unwrap() {
            let text = fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(
                !text.contains(&run_id),
                "quarantined run leaked into {split}"
            );
        }
    }
}

#[test]
fn a_run_of_a_newer_format_stops_the_build_with_its_version() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let dirs = generate_corpus(&runs, 6, 3).unwrap();
    let newer = dirs[2].join("session.json");
    let mut s: Value = serde_json::from_str(&fs::read_to_string(&newer).unwrap()).unwrap();
    s["schema_version"] = "3".into();
    s.as_object_mut().unwrap().remove("lineage");
    fs::write(&newer, s.to_string()).unwrap();

    let out = tmp.path().join("out");
    let p = policy();
    let err = build(&inputs(vec![runs.clone()], &out, Format::Trl, &p)).unwrap_err();
    assert!(
        matches!(err, traj_datasets::BuildError::NewerRunFormat(_)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&newer.display().to_string()), "{text}");
    assert!(
        text.contains("schema_version \"3\" is newer than this build reads (\"2\")"),
        "{text}"
    );
    // An unknown older or garbled version is damaged data: quarantined, the build goes on.
    s["schema_version"] = "1".into();
    fs::write(&newer, s.to_string()).unwrap();
    let summary = build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    assert_eq!(summary.runs_quarantined, 1);
    assert!(
        summary.report.quarantine[0]
            .reason
            .contains("schema_version \"1\""),
        "{}",
        summary.report.quarantine[0].reason
    );
}

#[test]
fn broken_lineage_and_missing_keys_are_quarantined_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (mut s1, mut e1) = scenario_run(
        11,
        "Sum the amount column of x.csv",
        "csv_aggregate",
        Scenario::Clean,
    );
    let i = e1.iter().position(|e| e.parent_event_id.is_some()).unwrap();
    e1[i].lineage = traj_schema::Lineage::Broken;
    e1[i].parent_event_id = None;
    e1[i].missing_parent_span_id = Some("00f067aa0ba902b7".into());
    s1.lineage.orphan_events = 1;
    traj_runs::write_run(&runs, &s1, &e1).unwrap();
    let (mut s2, e2) = scenario_run(
        12,
        "Sum the amount column of y.csv",
        "csv_aggregate",
        Scenario::Clean,
    );
    s2.goal_family = String::new();
    traj_runs::write_run(&runs, &s2, &e2).unwrap();
    let (s3, e3) = scenario_run(
        13,
        "Sum the amount column of z.csv",
        "csv_aggregate",
        Scenario::Clean,
    );
    traj_runs::write_run(&runs, &s3, &e3).unwrap();

    let out = tmp.path().join("out");
    let p = policy();
    let s = build(&inputs(vec![runs.clone()], &out, Format::Trl, &p)).unwrap();
    let reasons: BTreeMap<&str, &str> = s
        .report
        .quarantine
        .iter()
        .map(|q| (q.run_id.as_str(), q.reason.as_str()))
        .collect();
    assert!(
        reasons[s1.run_id.as_str()].contains("broken lineage"),
        "{reasons:?}"
    );
    assert!(
        reasons[s2.run_id.as_str()].contains("missing key goal_family"),
        "{reasons:?}"
    );
    assert_eq!(s.runs_kept, 1);

    // With `broken_lineage = keep`, the run is kept and counted.
    let mut i2 = inputs(vec![runs], &tmp.path().join("out2"), Format::Trl, &p);
    i2.config.quality.broken_lineage = traj_datasets::config::BrokenLineagePolicy::Keep;
    let s = build(&i2).unwrap();
    assert_eq!(s.runs_kept, 2);
    assert_eq!(s.report.quality.broken_lineage_runs, 1);
}

#[test]
fn exact_duplicates_are_removed_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    // Same goal (up to case and punctuation), same steps, same outcome: duplicates.
    let a = scenario_run(
        21,
        "Sum the amount column of x.csv",
        "csv_aggregate",
        Scenario::Clean,
    );
    let b = scenario_run(
        22,
        "sum the AMOUNT column of x.csv!",
        "csv_aggregate",
        Scenario::Clean,
    );
    // Same goal but a different trajectory: kept.
    let c = scenario_run(
        23,
        "Sum the amount column of x.csv",
        "csv_aggregate",
        Scenario::RetryRecovery,
    );
    for r in [&a, &b, &c] {
        traj_runs::write_run(&runs, &r.0, &r.1).unwrap();
    }
    let out = tmp.path().join("out");
    let p = policy();
    let s = build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    assert_eq!(s.runs_deduplicated, 1);
    assert_eq!(s.runs_kept, 2);
    let removed = &report(&out)["dedup"]["removed_runs"][0];
    let (first, dup) = if a.0.run_id < b.0.run_id {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(removed["run_id"], dup.0.run_id.as_str());
    assert_eq!(removed["duplicate_of"], first.0.run_id.as_str());
}

#[test]
fn splits_never_share_families_or_near_duplicate_goals() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    generate_corpus(&runs, 150, 5).unwrap();
    // A near-duplicate goal in two families that would otherwise be split apart.
    let x = scenario_run(
        31,
        "Please read the quarterly report and total the sales per region",
        "fam_a",
        Scenario::Clean,
    );
    let y = scenario_run(
        32,
        "please read the quarterly report and total the sales per region now",
        "fam_b",
        Scenario::Clean,
    );
    traj_runs::write_run(&runs, &x.0, &x.1).unwrap();
    traj_runs::write_run(&runs, &y.0, &y.1).unwrap();
    let out = tmp.path().join("out");
    let p = policy();
    let s = build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    let lk = &s.report.leakage;
    assert_eq!(
        (
            lk.shared_goal_families,
            lk.shared_near_duplicate_clusters,
            lk.shared_goals
        ),
        (0, 0, 0)
    );
    // Check the files themselves, not only the report.
    let mut family_split: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut run_split: BTreeMap<String, String> = BTreeMap::new();
    for split in ["train", "validation", "test"] {
        assert!(s.rows[split]["worker_sft"] > 0, "{split} is empty");
        for r in rows(&out.join(split).join("worker_sft.jsonl")) {
            let fam = r["metadata"]["goal_family"].as_str().unwrap().to_string();
            family_split
                .entry(fam)
                .or_default()
                .insert(split.to_string());
            run_split.insert(
                r["metadata"]["run_id"].as_str().unwrap().into(),
                split.into(),
            );
        }
    }
    assert!(
        family_split.values().all(|s| s.len() == 1),
        "{family_split:?}"
    );
    assert_eq!(
        run_split[&x.0.run_id], run_split[&y.0.run_id],
        "near-duplicates split apart"
    );
    assert!(s.report.dedup.cross_family_clusters >= 1);
}

#[test]
fn same_inputs_and_seed_give_byte_identical_outputs_and_shards_equal_one_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    let dirs = generate_corpus(&all, 60, 8).unwrap();
    // The same runs sharded over two directories.
    let (a, b) = (tmp.path().join("shard_a"), tmp.path().join("shard_b"));
    for (i, d) in dirs.iter().enumerate() {
        let dst = if i % 2 == 0 { &a } else { &b }.join(d.file_name().unwrap());
        fs::create_dir_all(&dst).unwrap();
        for f in ["session.json", "events.jsonl"] {
            fs::copy(d.join(f), dst.join(f)).unwrap();
        }
    }
    let p = policy();
    let o1 = tmp.path().join("o1");
    let o2 = tmp.path().join("o2");
    let o3 = tmp.path().join("o3");
    build(&inputs(vec![all.clone()], &o1, Format::Trl, &p)).unwrap();
    build(&inputs(vec![all.clone()], &o2, Format::Trl, &p)).unwrap();
    build(&inputs(vec![b.clone(), a.clone()], &o3, Format::Trl, &p)).unwrap();
    let (t1, t2, mut t3) = (tree(&o1), tree(&o2), tree(&o3));
    assert!(t1.len() >= 18, "{:?}", t1.keys());
    assert_eq!(t1, t2, "rebuild differs");
    // Shards: everything identical except the manifest, which records the --runs dirs given.
    let m1: Value = serde_json::from_slice(&t1["manifest.json"]).unwrap();
    let m3: Value = serde_json::from_slice(&t3.remove("manifest.json").unwrap()).unwrap();
    let mut t1b = t1.clone();
    t1b.remove("manifest.json");
    assert_eq!(t1b, t3, "sharded inputs give different datasets");
    assert_eq!(m1["files"], m3["files"]);
    assert_eq!(m1["inputs"]["runs"], m3["inputs"]["runs"]);
    // A different seed is allowed to change MinHash and the split, and the manifest says so.
    let o4 = tmp.path().join("o4");
    let mut i4 = inputs(vec![all], &o4, Format::Trl, &p);
    i4.seed = 99;
    build(&i4).unwrap();
    let m4: Value = serde_json::from_slice(&fs::read(o4.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m4["seed"], 99);
}

#[test]
fn manifest_hashes_every_file_and_names_policy_config_and_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    generate_corpus(&runs, 20, 1).unwrap();
    let out = tmp.path().join("out");
    let p = policy();
    build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    let m: Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let files = m["files"].as_object().unwrap();
    let on_disk = tree(&out);
    assert_eq!(
        files.len(),
        on_disk.len() - 1,
        "every file but the manifest itself"
    );
    for (rel, meta) in files {
        let bytes = &on_disk[rel];
        assert_eq!(meta["sha256"], traj_datasets::sha256_hex(bytes), "{rel}");
    }
    assert_eq!(m["schema_version"], "2");
    assert_eq!(m["redaction"]["policy"], "traj-dataset");
    assert!(m["config_hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(m["inputs"]["runs"].as_array().unwrap().len(), 20);
    assert!(m["traj_version"].is_string());
    // Role metrics of the kept runs, per split, from traj-metrics.
    let r = report(&out);
    let kept = r["runs"]["kept"].as_u64().unwrap();
    assert_eq!(r["role_metrics"]["runs"].as_u64().unwrap(), kept);
    let per_split: u64 = r["role_metrics"]["by_split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(per_split, kept);
}

#[test]
fn openai_format_uses_string_arguments_and_a_line_aligned_metadata_file() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    generate_corpus(&runs, 40, 2).unwrap();
    let out = tmp.path().join("out");
    let p = policy();
    build(&inputs(vec![runs], &out, Format::Openai, &p)).unwrap();
    let w = rows(&out.join("train/worker_sft.jsonl"));
    let meta = rows(&out.join("train/worker_sft.metadata.jsonl"));
    assert_eq!(w.len(), meta.len());
    assert!(!w.is_empty());
    let call = &w[0]["messages"][2]["tool_calls"][0]["function"]["arguments"];
    let parsed: Value =
        serde_json::from_str(call.as_str().expect("arguments as a JSON string")).unwrap();
    assert!(parsed.is_object());
    assert!(w[0].get("metadata").is_none());
    assert!(meta[0]["run_id"].is_string());
    let prefs = rows(&out.join("train/verifier_pref_pairs.jsonl"));
    assert!(!prefs.is_empty());
    for key in ["input", "preferred_output", "non_preferred_output"] {
        assert!(prefs[0].get(key).is_some(), "{key}");
    }
}

#[test]
fn second_pass_redaction_removes_pii_and_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (s, e) = scenario_run(
        41,
        "Email the totals to bob.smith@example.com",
        "csv_aggregate",
        Scenario::Clean,
    );
    traj_runs::write_run(&runs, &s, &e).unwrap();
    let out = tmp.path().join("out");
    let p = policy();
    let sum = build(&inputs(vec![runs], &out, Format::Trl, &p)).unwrap();
    for (_, bytes) in tree(&out)
        .iter()
        .filter(|(k, _)| k.ends_with(".jsonl") && !k.starts_with("quarantine"))
    {
        assert!(!String::from_utf8_lossy(bytes).contains("bob.smith@example.com"));
    }
    assert!(sum.report.pii.counts["email"] > 0);
    assert_eq!(report(&out)["pii"]["policy"], "traj-dataset");
}

#[test]
fn labels_file_applies_through_the_build_and_unmatched_labels_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (s, e) = scenario_run(
        51,
        "Sum the price column of q.csv",
        "csv_aggregate",
        Scenario::FalseStop,
    );
    traj_runs::write_run(&runs, &s, &e).unwrap();
    let vout = e
        .iter()
        .find(|x| x.event_type() == traj_schema::EventType::VerifierOutput)
        .unwrap();
    let lp = tmp.path().join("labels.jsonl");
    fs::write(
        &lp,
        format!(
            "{{\"event_id\": \"{}\", \"verdict\": \"continue\"}}\n{{\"span_id\": \"ffffffffffffffff\", \"outcome\": \"success\"}}\n",
            vout.event_id
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let p = policy();
    let mut i = inputs(vec![runs], &out, Format::Trl, &p);
    i.labels = Labels::load(&lp).unwrap();
    let sum = build(&i).unwrap();
    assert_eq!(sum.report.labels_applied, 1);
    assert_eq!(
        sum.report.labels_unmatched,
        vec!["span:ffffffffffffffff".to_string()]
    );
    let split = sum
        .rows
        .iter()
        .find(|(_, v)| v["verifier_sft"] > 0)
        .unwrap()
        .0
        .clone();
    let v = rows(&out.join(&split).join("verifier_sft.jsonl"));
    assert_eq!(v[0]["metadata"]["human_label"], true);
    assert!(v[0]["messages"][2]["content"]
        .as_str()
        .unwrap()
        .contains("\"verdict\":\"continue\""));
    let m: Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert!(m["inputs"]["labels_sha256"].is_string());
}

/// The per-run work of both passes runs on worker threads and is applied in run order: the
/// output tree (rows, sidecars, report, card, manifest, quarantine) is the same bytes for one
/// thread and for several, in both formats, with a corrupt run (quarantined in pass 1) and a
/// run whose files are not UTF-8 in the corpus.
#[test]
fn one_thread_and_several_give_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let dirs = generate_corpus(&runs, 300, 42).unwrap();
    let ev = dirs[17].join("events.jsonl");
    let text = fs::read_to_string(&ev).unwrap();
    fs::write(&ev, text.replacen('\n', "\n{\"truncated\n", 1)).unwrap();
    let ev = dirs[230].join("events.jsonl");
    let mut bytes = fs::read(&ev).unwrap();
    bytes.extend_from_slice(b"\xff\xfe\n");
    fs::write(&ev, bytes).unwrap();
    let p = policy();
    for format in [Format::Trl, Format::Openai] {
        let mut trees = Vec::new();
        for threads in [1, 2, 3, 8] {
            let out = tmp
                .path()
                .join(format!("out-{}-{threads}", format.as_str()));
            let mut i = inputs(vec![runs.clone()], &out, format, &p);
            i.threads = threads;
            build(&i).unwrap();
            trees.push((threads, tree(&out)));
        }
        let (_, one) = &trees[0];
        assert!(one.len() >= 18, "{:?}", one.keys());
        assert_eq!(
            report(&tmp.path().join(format!("out-{}-1", format.as_str())))["runs"]["quarantined"],
            2
        );
        for (threads, t) in &trees[1..] {
            assert_eq!(
                t.keys().collect::<Vec<_>>(),
                one.keys().collect::<Vec<_>>(),
                "{threads} threads: other files"
            );
            for (name, bytes) in one {
                assert!(t[name] == *bytes, "{threads} threads: {name} differs");
            }
        }
    }
}
