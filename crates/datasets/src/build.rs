//! `traj build`: two streaming passes over the runs. Pass 1 reads each run once for quality
//! checks and small keys (dedup key, MinHash signature, shape); then dedup, near-duplicate
//! clusters and the split are decided. Pass 2 reads each kept run again, converts, redacts and
//! appends its rows to the split's files. Memory is bounded by the largest run.

use crate::config::BuildConfig;
use crate::labels::Labels;
use crate::minhash::{near_duplicate_clusters_spilled, normalize_goal, MinHasher, UnionFind};
use crate::output::{sha256_file, write_file, AtomicFile, Written};
use crate::quality::{check_run, shape, DriftTracker};
use crate::redact::{redact_row, Redactor};
use crate::report::{self, Report};
use crate::rows::{Format, View};
use crate::runview::{RunIndex, Stage};
use crate::split::{assign_units, Split};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use traj_runs::{list_runs, read_run, RunDir, RunReadError};
use traj_schema::hashing::{hash_json, hash_str};
use traj_schema::{Outcome, ToolStatus, SCHEMA_VERSION};

/// Progress callback: (phase, done, total).
pub type ProgressFn<'a> = &'a dyn Fn(&str, u64, u64);

/// What to build.
pub struct BuildInputs<'a> {
    /// `--runs` directories, as given (recorded in the manifest).
    pub runs: Vec<PathBuf>,
    pub out: PathBuf,
    pub config: BuildConfig,
    pub labels: Labels,
    pub seed: u64,
    pub format: Format,
    pub redactor: &'a dyn Redactor,
    /// Called with (phase, done, total) as runs are processed.
    pub progress: Option<ProgressFn<'a>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid config: {0}")]
    Config(String),
    /// Listing the `--runs` directories failed (its message already names the path and cause).
    #[error("{0}")]
    Runs(traj_runs::RunsError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl From<traj_runs::RunsError> for BuildError {
    fn from(e: traj_runs::RunsError) -> Self {
        BuildError::Runs(e)
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a build produced (the full story is in `report.json`).
#[derive(Debug, Clone)]
pub struct BuildSummary {
    pub runs_found: u64,
    pub runs_kept: u64,
    pub runs_quarantined: u64,
    pub runs_deduplicated: u64,
    /// split -> view -> rows.
    pub rows: BTreeMap<String, BTreeMap<String, u64>>,
    pub report: Report,
}

/// A run that could not be used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Quarantined {
    pub run_id: String,
    /// `<run_id>/<file>` (relative to its `--runs` directory).
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
    /// Where the evidence is under the output directory.
    pub copied_to: String,
}

/// The small per-run record pass 1 keeps.
struct RunKey {
    dir: RunDir,
    family: String,
    goal_hash: String,
    key_steps_hash: String,
    outcome: Outcome,
    /// Index of the run's MinHash signature in the spill file.
    record: usize,
}

/// The hash of the sequence of (role, tool, verdict) of a run: planner stages with the tools of
/// their plan, worker stages with their action tool (or action), tool executions with their
/// status, verifier stages with their (effective) verdict.
pub fn key_steps_hash(idx: &RunIndex) -> String {
    let mut seq: Vec<Value> = Vec::new();
    for s in &idx.stages {
        match s {
            Stage::Plan(p) => {
                let tools: Vec<String> = p
                    .output
                    .map(|(_, o)| {
                        o.plan
                            .iter()
                            .map(|x| x.tool.clone().unwrap_or_default())
                            .collect()
                    })
                    .unwrap_or_default();
                seq.push(json!(["planner", tools.join(","), ""]));
            }
            Stage::Work(w) => {
                let tool = w
                    .action
                    .as_ref()
                    .map(|(_, a)| a.tool.clone().unwrap_or_else(|| a.action.clone()))
                    .unwrap_or_default();
                seq.push(json!(["worker", tool, ""]));
                for t in &w.tools {
                    let status = match t.result {
                        Some((_, r)) if r.status == ToolStatus::Ok => "ok",
                        Some(_) => "error",
                        None => "none",
                    };
                    seq.push(json!(["tool", t.call.1.tool, status]));
                }
            }
            Stage::Verify(v) => {
                seq.push(json!([
                    "verifier",
                    "",
                    v.verdict.map(|x| x.as_str()).unwrap_or("")
                ]));
            }
        }
    }
    hash_json(&Value::Array(seq))
}

/// `goal_hash`: hash of the normalized goal text.
pub fn goal_hash(goal: &str) -> String {
    hash_str(&normalize_goal(goal))
}

struct Outputs {
    files: BTreeMap<(Split, View), AtomicFile>,
    sidecars: BTreeMap<(Split, View), AtomicFile>,
}

impl Outputs {
    fn open(out: &Path, format: Format) -> Result<Outputs, BuildError> {
        let mut files = BTreeMap::new();
        let mut sidecars = BTreeMap::new();
        for split in Split::ALL {
            for view in View::ALL {
                let p = out
                    .join(split.as_str())
                    .join(format!("{}.jsonl", view.as_str()));
                files.insert((split, view), AtomicFile::create(&p).map_err(io_at(&p))?);
                if format == Format::Openai {
                    let p = out
                        .join(split.as_str())
                        .join(format!("{}.metadata.jsonl", view.as_str()));
                    sidecars.insert((split, view), AtomicFile::create(&p).map_err(io_at(&p))?);
                }
            }
        }
        Ok(Outputs { files, sidecars })
    }

    fn write(
        &mut self,
        split: Split,
        view: View,
        row: &Value,
        side: Option<&Value>,
    ) -> Result<(), BuildError> {
        if let Some(f) = self.files.get_mut(&(split, view)) {
            f.write_json_line(row).map_err(|e| BuildError::Io {
                path: f.path().to_path_buf(),
                source: e,
            })?;
        }
        if let (Some(m), Some(f)) = (side, self.sidecars.get_mut(&(split, view))) {
            f.write_json_line(m).map_err(|e| BuildError::Io {
                path: f.path().to_path_buf(),
                source: e,
            })?;
        }
        Ok(())
    }

    fn commit(self) -> Result<Vec<Written>, BuildError> {
        let mut out = Vec::new();
        for f in self.files.into_values().chain(self.sidecars.into_values()) {
            let p = f.path().to_path_buf();
            out.push(f.commit().map_err(io_at(&p))?);
        }
        Ok(out)
    }
}

fn rel(out: &Path, p: &Path) -> String {
    p.strip_prefix(out)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Copies the evidence of a quarantined run under `OUT/quarantine/<run_id>/` and writes the reason.
fn quarantine(
    inputs: &BuildInputs,
    dir: &RunDir,
    file: &str,
    line: Option<usize>,
    reason: String,
    written: &mut Vec<Written>,
) -> Result<Quarantined, BuildError> {
    let qdir = inputs.out.join("quarantine").join(&dir.run_id);
    let mut copied = Vec::new();
    for name in [traj_runs::SESSION_FILE, traj_runs::EVENTS_FILE] {
        let src = dir.path.join(name);
        let Ok(meta) = std::fs::metadata(&src) else {
            continue;
        };
        if meta.len() <= inputs.config.quality.quarantine_copy_max_bytes {
            let bytes = std::fs::read(&src).map_err(io_at(&src))?;
            let dst = qdir.join(name);
            written.push(write_file(&dst, &bytes).map_err(io_at(&dst))?);
            copied.push(name);
        }
    }
    let q = Quarantined {
        run_id: dir.run_id.clone(),
        file: format!("{}/{file}", dir.run_id),
        line,
        reason,
        copied_to: format!("quarantine/{}/", dir.run_id),
    };
    let mut doc = serde_json::to_value(&q).unwrap_or(Value::Null);
    doc["copied_files"] = json!(copied);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    let dst = qdir.join("reason.json");
    written.push(write_file(&dst, text.as_bytes()).map_err(io_at(&dst))?);
    Ok(q)
}

fn read_error_parts(e: &RunReadError) -> (String, Option<usize>, String) {
    let file = e
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (file, e.line, e.message.clone())
}

/// Runs the whole build. Bad runs are quarantined (and reported), never fatal; only I/O on the
/// output, an unreadable `--runs` directory or an invalid config stop the build.
pub fn build(inputs: &BuildInputs) -> Result<BuildSummary, BuildError> {
    inputs.config.check().map_err(BuildError::Config)?;
    let cfg = &inputs.config;
    let out = &inputs.out;
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let qroot = out.join("quarantine");
    if qroot.exists() {
        // Stale evidence of an earlier build would not match this build's report.
        std::fs::remove_dir_all(&qroot).map_err(io_at(&qroot))?;
    }
    let progress = |phase: &str, done: usize, total: usize| {
        if let Some(p) = inputs.progress {
            p(phase, done as u64, total as u64);
        }
    };

    let dirs = list_runs(&inputs.runs)?;
    let total = dirs.len();
    let mut written: Vec<Written> = Vec::new();
    let mut rep = Report::new(inputs, total as u64);
    let hasher = MinHasher::new(&cfg.near_dup, inputs.seed);
    let mut drift = DriftTracker::default();
    let mut keys: Vec<RunKey> = Vec::new();
    // MinHash signatures (1 KiB per run by default) go to a spill file, not the heap.
    let spill_path = out.join(".near_dup_signatures.tmp");
    let spill_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spill_path)
        .map_err(io_at(&spill_path))?;
    let mut spill = io::BufWriter::with_capacity(1 << 20, &spill_file);
    let mut sig_len = 0usize;
    let mut labels_used: BTreeSet<String> = BTreeSet::new();

    // ---- pass 1: quality, keys --------------------------------------------------------------
    for (n, dir) in dirs.iter().enumerate() {
        progress("scan", n, total);
        let run = match read_run(dir) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(run_id = %dir.run_id, "quarantined: {e}");
                let (file, line, msg) = read_error_parts(&e);
                let q = quarantine(inputs, dir, &file, line, msg, &mut written)?;
                rep.quarantine.push(q);
                continue;
            }
        };
        let findings = check_run(&dir.run_id, &run.session, &run.events, &cfg.quality);
        for w in findings.warnings.iter().chain(&run.session.warnings) {
            rep.add_warning(&dir.run_id, w);
        }
        if findings.broken_lineage_events > 0 {
            rep.quality.broken_lineage_runs += 1;
        }
        if !findings.hard.is_empty() {
            let reason = findings.hard.join("; ");
            tracing::warn!(run_id = %dir.run_id, "quarantined: {reason}");
            let q = quarantine(
                inputs,
                dir,
                traj_runs::EVENTS_FILE,
                None,
                reason,
                &mut written,
            )?;
            rep.quarantine.push(q);
            continue;
        }
        let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
        labels_used.extend(idx.labels_used.iter().cloned());
        drift.add(&run.session.config_hash, &shape(&run.session, &run.events));
        let sp = dir.path.join(traj_runs::SESSION_FILE);
        let ep = dir.path.join(traj_runs::EVENTS_FILE);
        keys.push(RunKey {
            dir: dir.clone(),
            family: run.session.goal_family.clone(),
            goal_hash: goal_hash(&run.session.goal),
            key_steps_hash: key_steps_hash(&idx),
            outcome: idx.outcome,
            record: keys.len(),
        });
        let sig = hasher.signature(&run.session.goal);
        sig_len = sig.len();
        for v in sig {
            io::Write::write_all(&mut spill, &v.to_le_bytes()).map_err(io_at(&spill_path))?;
        }
        // Same order as the keys: the manifest lists every input, kept or not.
        rep.inputs.push(crate::report::InputHashes {
            events_sha256: sha256_file(&ep).map_err(io_at(&ep))?,
            run_id: dir.run_id.clone(),
            session_sha256: sha256_file(&sp).map_err(io_at(&sp))?,
        });
    }
    progress("scan", total, total);
    rep.quality.schema_drift = drift.drifts();

    // ---- dedup ----------------------------------------------------------------------------------
    let mut first_of: BTreeMap<(String, String, Outcome), String> = BTreeMap::new();
    let mut kept: Vec<RunKey> = Vec::new();
    for k in keys {
        let dk = (k.goal_hash.clone(), k.key_steps_hash.clone(), k.outcome);
        if cfg.dedup.enabled {
            if let Some(first) = first_of.get(&dk) {
                rep.add_duplicate(&k.dir.run_id, first, &dk.0, &dk.1, dk.2);
                continue;
            }
            first_of.insert(dk, k.dir.run_id.clone());
        }
        kept.push(k);
    }

    // ---- near-duplicates and split ----------------------------------------------------------
    io::Write::flush(&mut spill).map_err(io_at(&spill_path))?;
    drop(spill);
    let records: Vec<usize> = kept.iter().map(|k| k.record).collect();
    let clusters = near_duplicate_clusters_spilled(&spill_file, &records, sig_len, &cfg.near_dup)
        .map_err(io_at(&spill_path))?;
    drop(spill_file);
    std::fs::remove_file(&spill_path).map_err(io_at(&spill_path))?;
    let families: Vec<String> = kept
        .iter()
        .map(|k| k.family.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fam_index = |f: &str| {
        families
            .binary_search_by(|x| x.as_str().cmp(f))
            .unwrap_or(0)
    };
    let mut uf = UnionFind::new(families.len());
    for (i, k) in kept.iter().enumerate() {
        uf.union(fam_index(&k.family), fam_index(&kept[clusters[i]].family));
    }
    let unit_of_family: Vec<usize> = (0..families.len()).map(|f| uf.find(f)).collect();
    let unit_ids: Vec<usize> = unit_of_family
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut sizes = vec![0u64; unit_ids.len()];
    for k in &kept {
        let u = unit_of_family[fam_index(&k.family)];
        if let Ok(pos) = unit_ids.binary_search(&u) {
            sizes[pos] += 1;
        }
    }
    let unit_split = assign_units(&sizes, &cfg.split, inputs.seed);
    let split_of_run: Vec<Split> = kept
        .iter()
        .map(|k| {
            let u = unit_of_family[fam_index(&k.family)];
            unit_ids
                .binary_search(&u)
                .map(|p| unit_split[p])
                .unwrap_or(Split::Train)
        })
        .collect();
    rep.record_split(
        &kept
            .iter()
            .map(|k| {
                (
                    k.dir.run_id.as_str(),
                    k.family.as_str(),
                    k.goal_hash.as_str(),
                )
            })
            .collect::<Vec<_>>(),
        &clusters,
        &split_of_run,
        &families,
        &unit_of_family,
    );

    // ---- pass 2: convert, redact, write -------------------------------------------------------
    let mut outputs = Outputs::open(out, inputs.format)?;
    // Role metrics of the kept runs per split (traj-metrics, streaming; no run table kept).
    let mut metrics = traj_metrics::MetricsAccumulator::new(traj_metrics::MetricsOptions {
        max_run_rows: 0,
        ..Default::default()
    });
    let n_kept = kept.len();
    for (n, (k, split)) in kept.iter().zip(&split_of_run).enumerate() {
        progress("convert", n, n_kept);
        let run = match read_run(&k.dir) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(run_id = %k.dir.run_id, "quarantined (changed since pass 1): {e}");
                let (file, line, msg) = read_error_parts(&e);
                let q = quarantine(inputs, &k.dir, &file, line, msg, &mut written)?;
                rep.quarantine.push(q);
                continue;
            }
        };
        let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
        rep.record_run(*split, &idx);
        metrics.add_run(&run.session, &run.events, Some(split.as_str()));
        for row in crate::views::run_rows(&idx, &cfg.prefs, &cfg.rows) {
            if let Err(e) = row.check() {
                tracing::warn!(run_id = %k.dir.run_id, view = row.view.as_str(), "row dropped: {e}");
                rep.add_warning(
                    &k.dir.run_id,
                    &format!("{} row dropped: {e}", row.view.as_str()),
                );
                continue;
            }
            let (mut value, mut side) = row.render(inputs.format);
            redact_row(&mut value, inputs.redactor, &mut rep.pii.counts);
            if let Some(s) = side.as_mut() {
                redact_row(s, inputs.redactor, &mut rep.pii.counts);
            }
            rep.record_row(*split, &row);
            outputs.write(*split, row.view, &value, side.as_ref())?;
        }
    }
    progress("convert", n_kept, n_kept);
    written.extend(outputs.commit()?);

    // ---- report and manifest ---------------------------------------------------------------------
    rep.labels_loaded = inputs.labels.len() as u64;
    rep.labels_applied = labels_used.len() as u64;
    rep.labels_unmatched = inputs
        .labels
        .keys()
        .difference(&labels_used)
        .cloned()
        .collect();
    let m = metrics.finish();
    rep.role_metrics = Some(json!({
        "metrics_version": m.metrics_version,
        "note": "computed by traj-metrics on the recorded events of the kept runs (human labels not applied)",
        "runs": m.runs,
        "overall": m.overall,
        "by_split": m.groups.split,
    }));
    rep.finish();
    let p = out.join("report.json");
    written.push(crate::output::write_pretty_json(&p, &rep).map_err(io_at(&p))?);
    let p = out.join("report.md");
    written.push(write_file(&p, report::markdown(&rep).as_bytes()).map_err(io_at(&p))?);

    let mut files = BTreeMap::new();
    for w in &written {
        files.insert(
            rel(out, &w.path),
            json!({"sha256": w.sha256, "bytes": w.bytes, "lines": w.lines}),
        );
    }
    // Serialized from borrowed parts (fields in sorted key order, as a `serde_json` object would
    // write them): the per-run input list is not copied into a `Value`.
    #[derive(serde::Serialize)]
    struct ManifestInputs<'a> {
        labels_sha256: Value,
        runs: &'a [crate::report::InputHashes],
        runs_dirs: Vec<String>,
    }
    #[derive(serde::Serialize)]
    struct Manifest<'a> {
        config: Value,
        config_hash: Value,
        counts: &'a BTreeMap<String, BTreeMap<String, u64>>,
        files: BTreeMap<String, Value>,
        format: &'a str,
        inputs: ManifestInputs<'a>,
        redaction: Value,
        schema_version: Value,
        seed: u64,
        traj_version: &'a str,
    }
    let manifest = Manifest {
        config: json!(cfg),
        config_hash: json!(cfg.hash()),
        counts: &rep.rows,
        files,
        format: inputs.format.as_str(),
        inputs: ManifestInputs {
            labels_sha256: json!(inputs.labels.sha256()),
            runs: &rep.inputs,
            runs_dirs: inputs
                .runs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        },
        redaction: json!({"policy": inputs.redactor.name(), "version": inputs.redactor.version()}),
        schema_version: json!(SCHEMA_VERSION),
        seed: inputs.seed,
        traj_version: env!("CARGO_PKG_VERSION"),
    };
    let p = out.join("manifest.json");
    crate::output::write_pretty_json(&p, &manifest).map_err(io_at(&p))?;

    Ok(BuildSummary {
        runs_found: total as u64,
        runs_kept: rep.runs.kept,
        runs_quarantined: rep.quarantine.len() as u64,
        runs_deduplicated: rep.dedup.removed,
        rows: rep.rows.clone(),
        report: rep,
    })
}
