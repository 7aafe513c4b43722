//! Pass 1 of a build: each run read once for its quality checks and the small keys the later
//! phases decide on (dedup key, class mix, MinHash signature spilled to disk, input hashes).

use super::quarantine::{quarantine, quarantine_unreadable};
use super::{io_at, BuildError, BuildInputs, Progress};
use crate::minhash::{near_duplicate_clusters_spilled, normalize_goal, MinHasher, NearDupConfig};
use crate::output::{sha256_file, Written};
use crate::quality::{check_run, shape, DriftTracker};
use crate::report::{InputHashes, Report};
use crate::runview::{RunIndex, Stage};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use traj_runs::{read_run, RunDir};
use traj_schema::hashing::{hash_json, hash_str};
use traj_schema::{Outcome, ToolStatus, Verdict};

/// The classes a split is stratified on: a run's outcome, and its (effective) verdicts.
pub(crate) const OUTCOME_CLASSES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::Failure,
    Outcome::Aborted,
    Outcome::Unknown,
];
pub(crate) const VERDICT_CLASSES: [Verdict; 3] = [Verdict::Continue, Verdict::Replan, Verdict::End];

/// The small per-run record pass 1 keeps.
pub(crate) struct RunKey {
    pub dir: RunDir,
    pub family: String,
    pub goal_hash: String,
    pub key_steps_hash: String,
    pub outcome: Outcome,
    /// Effective verdicts of the run, counted in `VERDICT_CLASSES` order.
    pub verdicts: [u32; 3],
    /// Index of the run's MinHash signature in the spill file.
    pub record: usize,
}

impl RunKey {
    /// Counts per class: `OUTCOME_CLASSES` then `VERDICT_CLASSES`.
    pub fn classes(&self) -> [u64; 7] {
        let mut c = [0u64; 7];
        if let Some(i) = OUTCOME_CLASSES.iter().position(|o| *o == self.outcome) {
            c[i] = 1;
        }
        for (i, n) in self.verdicts.iter().enumerate() {
            c[OUTCOME_CLASSES.len() + i] = u64::from(*n);
        }
        c
    }
}

/// MinHash signatures (1 KiB per run by default) in a spill file, not on the heap.
pub(crate) struct SignatureSpill {
    path: PathBuf,
    file: File,
    sig_len: usize,
}

impl SignatureSpill {
    /// Near-duplicate cluster representatives of the given records (see `minhash`).
    pub fn clusters(
        self,
        records: &[usize],
        cfg: &NearDupConfig,
    ) -> Result<Vec<usize>, BuildError> {
        let clusters = near_duplicate_clusters_spilled(&self.file, records, self.sig_len, cfg)
            .map_err(io_at(&self.path))?;
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(io_at(&self.path))?;
        Ok(clusters)
    }
}

/// What pass 1 found.
pub(crate) struct Scan {
    pub keys: Vec<RunKey>,
    pub signatures: SignatureSpill,
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

/// Reads every run once: quarantines what cannot be used, records warnings, drift, label use
/// and input hashes in the report, and returns the keys of the usable runs.
pub(crate) fn scan_runs(
    inputs: &BuildInputs,
    dirs: &[RunDir],
    progress: &Progress,
    rep: &mut Report,
    labels_used: &mut BTreeSet<String>,
    written: &mut Vec<Written>,
) -> Result<Scan, BuildError> {
    let cfg = &inputs.config;
    let hasher = MinHasher::new(&cfg.near_dup, inputs.seed);
    let mut drift = DriftTracker::default();
    let mut keys: Vec<RunKey> = Vec::new();
    let spill_path = inputs.out.join(".near_dup_signatures.tmp");
    let spill_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spill_path)
        .map_err(io_at(&spill_path))?;
    let mut spill = BufWriter::with_capacity(1 << 20, &spill_file);
    let mut sig_len = 0usize;
    for (n, dir) in dirs.iter().enumerate() {
        progress.at("scan", n, dirs.len());
        let run = match read_run(dir) {
            Ok(r) => r,
            Err(e) => {
                let e = super::fatal_read_error(e)?;
                tracing::warn!(run_id = %dir.run_id, "quarantined: {e}");
                rep.quarantine
                    .push(quarantine_unreadable(inputs, dir, &e, written)?);
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
            let q = quarantine(inputs, dir, traj_runs::EVENTS_FILE, None, reason, written)?;
            rep.quarantine.push(q);
            continue;
        }
        let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
        labels_used.extend(idx.labels_used.iter().cloned());
        drift.add(&run.session.config_hash, &shape(&run.session, &run.events));
        let mut verdicts = [0u32; 3];
        for (_, v) in idx.verifies() {
            if let Some(i) = v
                .verdict
                .and_then(|x| VERDICT_CLASSES.iter().position(|c| *c == x))
            {
                verdicts[i] += 1;
            }
        }
        keys.push(RunKey {
            dir: dir.clone(),
            family: run.session.goal_family.clone(),
            goal_hash: goal_hash(&run.session.goal),
            key_steps_hash: key_steps_hash(&idx),
            outcome: idx.outcome,
            verdicts,
            record: keys.len(),
        });
        let sig = hasher.signature(&run.session.goal);
        sig_len = sig.len();
        for v in sig {
            spill
                .write_all(&v.to_le_bytes())
                .map_err(io_at(&spill_path))?;
        }
        // Same order as the keys: the manifest lists every input, kept or not.
        rep.inputs.push(input_hashes(dir)?);
    }
    progress.at("scan", dirs.len(), dirs.len());
    rep.quality.schema_drift = drift.drifts();
    spill.flush().map_err(io_at(&spill_path))?;
    drop(spill);
    Ok(Scan {
        keys,
        signatures: SignatureSpill {
            path: spill_path,
            file: spill_file,
            sig_len,
        },
    })
}

fn input_hashes(dir: &RunDir) -> Result<InputHashes, BuildError> {
    let sp = dir.path.join(traj_runs::SESSION_FILE);
    let ep = dir.path.join(traj_runs::EVENTS_FILE);
    let hash = |p: &Path| sha256_file(p).map_err(io_at(p));
    Ok(InputHashes {
        events_sha256: hash(&ep)?,
        run_id: dir.run_id.clone(),
        session_sha256: hash(&sp)?,
    })
}
