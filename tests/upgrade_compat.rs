//! Upgrades: a data dir written by the previous release (commit 8c25af6; the fixture
//! `tests/fixtures/data-8c25af6/`, made as its README says: finalized runs, a complete run not yet
//! finalized and a run whose root never arrived, both open when the old receiver was SIGKILLed) is
//! read by this build. `traj serve` resumes on it (recovers the raw store, finalizes the open runs,
//! accepts and assembles new spans), every raw span ends up in its trace's run, and `traj validate`
//! and `traj build` accept the runs. The version rules themselves (a newer raw record or run format
//! is refused by name) are tested where they live: `crates/store/tests/record_kinds.rs`,
//! `traj-runs`, `cmd_validate` and `crates/datasets/tests/build.rs`.

mod receiver_harness;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use receiver_harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The trace of the fixture whose root span was never sent (see the fixture's README).
const ROOTLESS_TRACE: &str = "c0a7f1c5000000000000000000000001";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-8c25af6")
}

/// Copies `src` into `dst` (created), leaving out the fixture's README and `tools/`.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if src == fixture_dir() && entry.file_name() == "tools" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&from, &to);
        } else if entry.file_name() != "README.md" {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// Run ids of the complete runs (a `session.json`) under `data/runs`.
fn run_ids(data: &Path) -> BTreeSet<String> {
    let Ok(dir) = std::fs::read_dir(data.join("runs")) else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| {
        let e = e.unwrap();
        e.path()
            .join("session.json")
            .is_file()
            .then(|| e.file_name().to_string_lossy().into_owned())
    })
    .collect()
}

/// trace id (hex) -> its distinct span ids (hex) in the raw store.
fn raw_by_trace(data: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let (_records, raw) = raw_spans(data);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (t, s) in raw.keys() {
        out.entry(hex(t)).or_default().insert(hex(s));
    }
    out
}

fn session_of(data: &Path, run_id: &str) -> serde_json::Value {
    let path = data.join("runs").join(run_id).join("session.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_release_8c25af6_resumes_validates_and_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_tree(&fixture_dir(), &data);

    // What the old release left: its raw store (read from a throwaway copy, so that the new
    // receiver is the first to open and recover the real one), runs it finalized, and traces
    // it had stored but not finalized.
    let peek = tmp.path().join("peek");
    copy_tree(&data.join("raw"), &peek.join("raw"));
    let raw_before = raw_by_trace(&peek);
    let runs_before = run_ids(&data);
    let open_before: BTreeSet<String> = raw_before
        .keys()
        .filter(|t| !runs_before.contains(*t))
        .cloned()
        .collect();
    assert!(runs_before.len() >= 2, "fixture runs: {runs_before:?}");
    assert!(
        open_before.contains(ROOTLESS_TRACE) && open_before.len() >= 2,
        "the fixture holds the rootless trace and a complete unfinalized one: {open_before:?}"
    );
    assert!(
        runs_before.iter().all(|r| raw_before.contains_key(r)),
        "every old run has its spans in raw"
    );

    // The new receiver resumes on it (grace period 200 ms, the harness's), with a short idle
    // timeout so that the rootless run closes.
    let log = tmp.path().join("serve.log");
    let server = spawn_server(&data, &log, &["--idle-timeout", "2s"]).await;

    // New spans are accepted and assembled next to the old ones.
    let new_spans = trace_spans(1, 1, 64);
    let new_trace = hex(&new_spans[0].trace_id);
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    client.export(request(new_spans)).await.unwrap();

    let mut want: BTreeSet<String> = raw_before.keys().cloned().collect();
    want.insert(new_trace.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let have = run_ids(&data);
        if want.is_subset(&have) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs never finalized: {:?}; log:\n{}",
            want.difference(&have).collect::<Vec<_>>(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let a re-materialization of an old run (if any) finish before stopping.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop().await;

    // The open runs were finalized the way this build finalizes them.
    assert_eq!(session_of(&data, ROOTLESS_TRACE)["root_span_seen"], false);
    for t in open_before.iter().filter(|t| *t != ROOTLESS_TRACE) {
        assert_eq!(session_of(&data, t)["root_span_seen"], true, "run {t}");
    }

    // Every raw span (old and new) is in its trace's run, exactly: lineage.spans is the number of
    // distinct raw spans of the trace and every event names one of them.
    let raw_after = raw_by_trace(&data);
    assert_eq!(
        raw_after.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "raw traces after the resume"
    );
    for (t, spans) in &raw_before {
        assert!(
            spans.is_subset(&raw_after[t]),
            "old spans of {t} lost from raw"
        );
    }
    let runs = runs_on_disk(&data);
    assert_eq!(runs.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (t, spans) in &raw_after {
        let run = &runs[t];
        assert_eq!(
            run.lineage_spans,
            spans.len() as u64,
            "run {t}: lineage.spans vs distinct raw spans"
        );
        let named: BTreeSet<String> = run.events_per_span.keys().cloned().collect();
        assert!(
            !named.is_empty() && named.is_subset(spans),
            "run {t}: events name spans not in raw: {:?}",
            named.difference(spans).collect::<Vec<_>>()
        );
    }
    assert_eq!(runs[&new_trace].events_per_span.len(), 1 + WORKERS as usize);

    // `traj validate` accepts every run, old and new.
    let out = Command::new(traj_bin())
        .args(["validate", "--quiet"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "traj validate failed:\n{stdout}");
    let n = want.len();
    assert!(
        stdout.contains(&format!("runs: {n}  valid: {n}  invalid: 0")),
        "{stdout}"
    );

    // `traj build` reads every run. Curation quarantines only the rootless one, for what it
    // holds (no goal, parents that never arrived), not for how it is stored.
    let ds = tmp.path().join("dataset");
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build-small-corpus.toml");
    let out = Command::new(traj_bin())
        .arg("build")
        .arg("--runs")
        .arg(&data)
        .arg("--out")
        .arg(&ds)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "traj build failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ds.join("report.json")).unwrap()).unwrap();
    let quarantined = report["quarantine"].as_array().unwrap();
    assert_eq!(quarantined.len(), 1, "quarantined: {quarantined:?}");
    assert_eq!(quarantined[0]["run_id"], ROOTLESS_TRACE);
    let reason = quarantined[0]["reason"].as_str().unwrap();
    assert!(reason.contains("broken lineage"), "{reason}");
    let mut rows = 0;
    for entry in std::fs::read_dir(ds.join("train")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        rows += text.lines().filter(|l| !l.trim().is_empty()).count();
    }
    assert!(rows > 0, "traj build wrote no train rows");
}
