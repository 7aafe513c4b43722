//! Pass 1 of a build: each run read once for its quality checks and the small keys the later
//! phases decide on (dedup key, class mix, MinHash signature spilled to disk, input hashes).
//! Runs are read and checked on worker threads (`par`); their results are applied in run order.

use super::quarantine::{quarantine, quarantine_unreadable};
use super::{io_at, BuildError, BuildInputs, Progress};
use crate::compact::{Interner, RunEntry, RunList, RunName, Sha256Digest, ShortHash};
use crate::minhash::{near_duplicate_clusters_spilled, normalize_goal, MinHasher, NearDupConfig};
use crate::output::Written;
use crate::quality::{check_run, shape, DriftTracker, Shape};
use crate::report::{InputHashes, Report};
use crate::runview::{RunIndex, Stage};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use traj_runs::{read_run_files, LoadedRun, RunDir, RunFiles, RunReadError};
use traj_schema::hashing::canonical_json;
use traj_schema::{Outcome, ToolStatus, Verdict};

/// The classes a split is stratified on: a run's outcome, and its (effective) verdicts.
pub(crate) const OUTCOME_CLASSES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::Failure,
    Outcome::Aborted,
    Outcome::Unknown,
];
pub(crate) const VERDICT_CLASSES: [Verdict; 3] = [Verdict::Continue, Verdict::Replan, Verdict::End];

/// The small per-run record pass 1 keeps (~60 bytes: names are indexes, hashes are bytes).
pub(crate) struct RunKey {
    /// Index of the run in the build's run list (see [`KeyNames`]).
    pub run: u32,
    /// Interned goal family (see [`KeyNames`]).
    pub family: u32,
    pub goal_hash: ShortHash,
    pub key_steps_hash: ShortHash,
    pub outcome: Outcome,
    /// Effective verdicts of the run, counted in `VERDICT_CLASSES` order.
    pub verdicts: [u32; 3],
    /// Index of the run's MinHash signature in the spill file.
    pub record: u32,
}

/// What the indexes of the keys name: the build's run list and the interned goal families.
pub(crate) struct KeyNames<'a> {
    pub dirs: &'a RunList,
    pub families: &'a Interner,
}

impl KeyNames<'_> {
    pub fn entry(&self, k: &RunKey) -> Option<&RunEntry> {
        self.dirs.entries().get(k.run as usize)
    }

    pub fn name(&self, k: &RunKey) -> RunName {
        self.dirs.name(k.run as usize)
    }

    pub fn family(&self, k: &RunKey) -> &str {
        self.families.name(k.family)
    }
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
    pub families: Interner,
    pub signatures: SignatureSpill,
}

/// The hash of the sequence of (role, tool, verdict) of a run: planner stages with the tools of
/// their plan, worker stages with their action tool (or action), tool executions with their
/// status, verifier stages with their (effective) verdict.
pub fn key_steps_hash(idx: &RunIndex) -> ShortHash {
    ShortHash::of_str(&canonical_json(&key_steps(idx)))
}

/// The (role, tool, verdict) sequence that [`key_steps_hash`] hashes.
fn key_steps(idx: &RunIndex) -> Value {
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
    Value::Array(seq)
}

/// `goal_hash`: hash of the normalized goal text.
pub fn goal_hash(goal: &str) -> ShortHash {
    ShortHash::of_str(&normalize_goal(goal))
}

/// One run checked on a worker thread: what pass 1 records of it, applied in run order by
/// [`ScanState::apply`].
enum Scanned {
    Unreadable(RunReadError),
    Checked(Box<CheckedRun>),
}

struct CheckedRun {
    /// The quality findings' warnings, then the session's own.
    warnings: Vec<String>,
    broken_lineage: bool,
    /// The usable run's keys, or the reason it is quarantined.
    usable: Result<UsableRun, String>,
}

struct UsableRun {
    labels_used: BTreeSet<String>,
    config_hash: String,
    shape: Shape,
    family: String,
    goal_hash: ShortHash,
    key_steps_hash: ShortHash,
    outcome: Outcome,
    verdicts: [u32; 3],
    signature: Vec<u64>,
    /// sha256 of the two files, from the bytes read (the manifest's `inputs.runs`).
    hashes: InputHashes,
}

/// Reads and checks one run, and computes its keys when it is usable.
fn scan_run(inputs: &BuildInputs, hasher: &MinHasher, dir: &RunDir) -> Scanned {
    let (run, files) = match read_run_files(dir) {
        Ok(r) => r,
        Err(e) => return Scanned::Unreadable(e),
    };
    let findings = check_run(
        &dir.run_id,
        &run.session,
        &run.events,
        &inputs.config.quality,
    );
    let warnings = findings
        .warnings
        .iter()
        .chain(&run.session.warnings)
        .cloned()
        .collect();
    let usable = if findings.hard.is_empty() {
        Ok(usable_run(inputs, hasher, &run, &files))
    } else {
        Err(findings.hard.join("; "))
    };
    Scanned::Checked(Box::new(CheckedRun {
        warnings,
        broken_lineage: findings.broken_lineage_events > 0,
        usable,
    }))
}

fn usable_run(
    inputs: &BuildInputs,
    hasher: &MinHasher,
    run: &LoadedRun,
    files: &RunFiles,
) -> UsableRun {
    let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
    let mut verdicts = [0u32; 3];
    for (_, v) in idx.verifies() {
        if let Some(i) = v
            .verdict
            .and_then(|x| VERDICT_CLASSES.iter().position(|c| *c == x))
        {
            verdicts[i] += 1;
        }
    }
    UsableRun {
        labels_used: idx.labels_used.clone(),
        config_hash: run.session.config_hash.clone(),
        shape: shape(&run.session, &run.events),
        family: run.session.goal_family.clone(),
        goal_hash: goal_hash(&run.session.goal),
        key_steps_hash: key_steps_hash(&idx),
        outcome: idx.outcome,
        verdicts,
        signature: hasher.signature(&run.session.goal),
        hashes: InputHashes {
            events_sha256: Sha256Digest::of(&files.events),
            run_id: RunName::new(&run.dir.run_id),
            session_sha256: Sha256Digest::of(&files.session),
        },
    }
}

/// What pass 1 accumulates, in run order, on the calling thread.
struct ScanState<'a, 'b> {
    inputs: &'a BuildInputs<'b>,
    rep: &'a mut Report,
    labels_used: &'a mut BTreeSet<String>,
    written: &'a mut Vec<Written>,
    drift: DriftTracker,
    keys: Vec<RunKey>,
    families: Interner,
    /// Writes the signatures through a second handle of the spill file.
    spill: BufWriter<File>,
    spill_path: PathBuf,
    sig_len: usize,
}

impl ScanState<'_, '_> {
    /// Applies one scanned run: quarantine, warnings, drift, label use, keys, signature, hashes.
    fn apply(&mut self, n: usize, dir: &RunDir, scanned: Scanned) -> Result<(), BuildError> {
        let c = match scanned {
            Scanned::Checked(c) => c,
            Scanned::Unreadable(e) => {
                let e = super::fatal_read_error(e)?;
                tracing::warn!(run_id = %dir.run_id, "quarantined: {e}");
                let q = quarantine_unreadable(self.inputs, dir, &e, self.written)?;
                self.rep.quarantine.push(q);
                return Ok(());
            }
        };
        for w in &c.warnings {
            self.rep.add_warning(&dir.run_id, w);
        }
        if c.broken_lineage {
            self.rep.quality.broken_lineage_runs += 1;
        }
        match c.usable {
            Ok(u) => self.add_usable(n, u),
            Err(reason) => {
                tracing::warn!(run_id = %dir.run_id, "quarantined: {reason}");
                let file = traj_runs::EVENTS_FILE;
                let q = quarantine(self.inputs, dir, file, None, reason, self.written)?;
                self.rep.quarantine.push(q);
                Ok(())
            }
        }
    }

    fn add_usable(&mut self, n: usize, u: UsableRun) -> Result<(), BuildError> {
        self.labels_used.extend(u.labels_used);
        self.drift.add(&u.config_hash, &u.shape);
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        self.keys.push(RunKey {
            run: index(n),
            family: self.families.intern(&u.family),
            goal_hash: u.goal_hash,
            key_steps_hash: u.key_steps_hash,
            outcome: u.outcome,
            verdicts: u.verdicts,
            record: index(self.keys.len()),
        });
        self.sig_len = u.signature.len();
        for v in u.signature {
            self.spill
                .write_all(&v.to_le_bytes())
                .map_err(io_at(&self.spill_path))?;
        }
        // Same order as the keys: the manifest lists every input, kept or not.
        self.rep.inputs.push(u.hashes);
        Ok(())
    }
}

/// Reads every run once: quarantines what cannot be used, records warnings, drift, label use
/// and input hashes in the report, and returns the keys of the usable runs. Runs are read and
/// checked on `inputs.threads` worker threads and applied in run order.
pub(crate) fn scan_runs(
    inputs: &BuildInputs,
    dirs: &RunList,
    progress: &Progress,
    rep: &mut Report,
    labels_used: &mut BTreeSet<String>,
    written: &mut Vec<Written>,
) -> Result<Scan, BuildError> {
    let hasher = MinHasher::new(&inputs.config.near_dup, inputs.seed);
    let spill_path = inputs.out.join(".near_dup_signatures.tmp");
    let spill_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spill_path)
        .map_err(io_at(&spill_path))?;
    let spill_writer = spill_file.try_clone().map_err(io_at(&spill_path))?;
    let mut st = ScanState {
        inputs,
        rep,
        labels_used,
        written,
        drift: DriftTracker::default(),
        keys: Vec::new(),
        families: Interner::default(),
        spill: BufWriter::with_capacity(1 << 20, spill_writer),
        spill_path: spill_path.clone(),
        sig_len: 0,
    };
    crate::par::ordered_map(
        dirs.entries(),
        inputs.threads(),
        |_, e| scan_run(inputs, &hasher, &dirs.dir_of(e)),
        |n, scanned| {
            progress.at("scan", n, dirs.len());
            let dir = dirs.dir_of(&dirs.entries()[n]);
            st.apply(n, &dir, scanned)
        },
    )?;
    progress.at("scan", dirs.len(), dirs.len());
    st.rep.quality.schema_drift = st.drift.drifts();
    st.spill.flush().map_err(io_at(&spill_path))?;
    let (keys, families, sig_len) = (st.keys, st.families, st.sig_len);
    drop(st.spill);
    Ok(Scan {
        keys,
        families,
        signatures: SignatureSpill {
            path: spill_path,
            file: spill_file,
            sig_len,
        },
    })
}
