//! `traj build`, as named phases: two streaming passes over the runs. Pass 1 (`scan`) reads
//! each run once for quality checks and small keys; then dedup, near-duplicate clusters, the
//! split units (`units`) and their assignment (`split`) are decided. Pass 2 (`convert`) reads
//! each kept run again, converts, redacts and appends its rows to the split's files; then the
//! class mix is checked and optionally rebalanced (`balance`), the named checks run (`checks`),
//! and the report, dataset card and manifest are written. Both passes do their per-run work on
//! worker threads (`par`) and apply the results in run order, so the outputs are the same bytes
//! for any thread count. Memory is bounded by the runs in flight plus compact per-run keys.

mod convert;
mod manifest;
mod quarantine;
mod scan;
mod units;

pub(crate) use convert::{sidecar_path, view_path};
pub use quarantine::Quarantined;
pub(crate) use units::UnitPlan;
pub use units::{CutRun, FamilyJoin, RefusedJoin};

use crate::compact::{RunEntry, RunList, ShortHash};
use crate::config::BuildConfig;
use crate::labels::Labels;
use crate::output::{write_file, Written};
use crate::redact::Redactor;
use crate::report::DuplicateRun;
use crate::report::{self, Report};
use crate::rows::Format;
use crate::split::{assign_units, Split};
use scan::{KeyNames, RunKey};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use traj_runs::list_runs;
use traj_schema::Outcome;

/// Progress callback: (phase, done, total). Called on the thread that runs the build.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

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
    /// Worker threads for the per-run work of both passes; 0 = one per core. The outputs are
    /// the same bytes for every value.
    pub threads: usize,
}

impl BuildInputs<'_> {
    /// The worker thread count (`threads`, or one per core when 0).
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => crate::par::default_threads(),
            n => n,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Listing the `--runs` directories failed (its message already names the path and cause).
    #[error("{0}")]
    Runs(traj_runs::RunsError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A run written by a newer traj (its run format version is larger than this build's): the
    /// build stops instead of quarantining it, since the run is not damaged, only unreadable here.
    #[error("{0}")]
    NewerRunFormat(traj_runs::RunReadError),
    /// The per-run keys index runs with 32 bits.
    #[error("{0} runs: a build takes at most 4 294 967 295")]
    TooManyRuns(usize),
}

/// A read error that must stop the build ([`BuildError::NewerRunFormat`]) rather than quarantine
/// the run.
pub(crate) fn fatal_read_error(
    e: traj_runs::RunReadError,
) -> Result<traj_runs::RunReadError, BuildError> {
    match e.format {
        Some(traj_runs::RunFormatError::Newer { .. }) => Err(BuildError::NewerRunFormat(e)),
        _ => Ok(e),
    }
}

impl From<traj_runs::RunsError> for BuildError {
    fn from(e: traj_runs::RunsError) -> Self {
        BuildError::Runs(e)
    }
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
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
    /// Runs left out so that near-duplicate goals stay in one split.
    pub runs_cut: u64,
    /// Named checks that failed with severity `error` (empty or thin splits): the CLI exits
    /// non-zero when there are any.
    pub failed_checks: Vec<crate::checks::Check>,
    /// split -> view -> rows.
    pub rows: BTreeMap<String, BTreeMap<String, u64>>,
    pub report: Report,
}

/// Reports progress of a phase to the caller's callback, if any.
pub(crate) struct Progress<'a>(Option<ProgressFn<'a>>);

impl Progress<'_> {
    pub fn at(&self, phase: &str, done: usize, total: usize) {
        if let Some(p) = self.0 {
            p(phase, done as u64, total as u64);
        }
    }
}

/// Runs the whole build. Bad runs are quarantined (and reported), never fatal; only I/O on the
/// output, an unreadable `--runs` directory, a run written by a newer traj or an invalid config
/// stop the build. Failed checks (empty or thin splits) are in the summary: the data is written
/// either way.
pub fn build(inputs: &BuildInputs) -> Result<BuildSummary, BuildError> {
    inputs.config.check().map_err(BuildError::Config)?;
    let cfg = &inputs.config;
    prepare_output(&inputs.out)?;
    let progress = Progress(inputs.progress);
    let dirs = RunList::new(list_runs(&inputs.runs)?);
    if u32::try_from(dirs.len()).is_err() {
        return Err(BuildError::TooManyRuns(dirs.len()));
    }
    let mut written: Vec<Written> = Vec::new();
    let mut rep = Report::new(inputs, dirs.len() as u64);
    let mut labels_used: BTreeSet<String> = BTreeSet::new();

    let scan = scan::scan_runs(
        inputs,
        &dirs,
        &progress,
        &mut rep,
        &mut labels_used,
        &mut written,
    )?;
    let names = KeyNames {
        dirs: &dirs,
        families: &scan.families,
    };
    let kept = dedup(scan.keys, &names, cfg.dedup.enabled, &mut rep);
    let records: Vec<usize> = kept.iter().map(|k| k.record as usize).collect();
    let clusters = scan.signatures.clusters(&records, &cfg.near_dup)?;
    let plan = units::plan_units(&kept, &names, &clusters, &cfg.split);
    let unit_split = assign_units(&plan.units, &cfg.split, inputs.seed);
    let assigned = assigned_runs(&kept, &names, &clusters, &plan, &unit_split);
    rep.record_split(&assigned.runs, &assigned.clusters, &assigned.splits);
    rep.record_units(&plan, &unit_split);

    let runs: Vec<(&RunEntry, Split)> = assigned
        .kept
        .iter()
        .zip(&assigned.splits)
        .filter_map(|(&i, &s)| Some((names.entry(&kept[i])?, s)))
        .collect();
    let metrics = convert::convert_runs(inputs, &dirs, &runs, &progress, &mut rep, &mut written)?;
    crate::balance::rebalance_outputs(inputs, &mut rep, &mut written)?;
    finish_report(inputs, &mut rep, metrics, &labels_used);
    write_report_and_card(inputs, &rep, &mut written)?;
    manifest::write_manifest(inputs, &rep, &written)?;

    Ok(BuildSummary {
        runs_found: dirs.len() as u64,
        runs_kept: rep.runs.kept,
        runs_quarantined: rep.quarantine.len() as u64,
        runs_deduplicated: rep.dedup.removed,
        runs_cut: rep.runs.cut_near_duplicates,
        failed_checks: rep.failed_checks(),
        rows: rep.rows.clone(),
        report: rep,
    })
}

/// Creates the output directory and removes the evidence of an earlier build's quarantine
/// (it would not match this build's report).
fn prepare_output(out: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let qroot = out.join("quarantine");
    if qroot.exists() {
        std::fs::remove_dir_all(&qroot).map_err(io_at(&qroot))?;
    }
    Ok(())
}

/// Exact dedup on `(goal_hash, key_steps_hash, final_outcome)`: the first run of a key is kept.
fn dedup(keys: Vec<RunKey>, names: &KeyNames, enabled: bool, rep: &mut Report) -> Vec<RunKey> {
    let mut first_of: HashMap<(ShortHash, ShortHash, Outcome), u32> = HashMap::new();
    let mut kept = Vec::new();
    for k in keys {
        if enabled {
            let key = (k.goal_hash, k.key_steps_hash, k.outcome);
            if let Some(&first) = first_of.get(&key) {
                rep.add_duplicate(DuplicateRun {
                    run_id: names.name(&k),
                    duplicate_of: names.dirs.name(first as usize),
                    goal_hash: k.goal_hash,
                    key_steps_hash: k.key_steps_hash,
                    outcome: k.outcome,
                });
                continue;
            }
            first_of.insert(key, k.run);
        }
        kept.push(k);
    }
    kept
}

/// The runs that go into a split (not cut), with what the leakage check needs.
struct Assigned<'a> {
    /// Indexes into the kept runs.
    kept: Vec<usize>,
    /// (family, goal hash) of each.
    runs: Vec<(&'a str, ShortHash)>,
    clusters: Vec<usize>,
    splits: Vec<Split>,
}

fn assigned_runs<'a>(
    kept: &[RunKey],
    names: &'a KeyNames,
    clusters: &[usize],
    plan: &units::UnitPlan,
    unit_split: &[Split],
) -> Assigned<'a> {
    let mut a = Assigned {
        kept: Vec::new(),
        runs: Vec::new(),
        clusters: Vec::new(),
        splits: Vec::new(),
    };
    for (i, k) in kept.iter().enumerate() {
        let Some(u) = plan.unit_of_run[i] else {
            continue;
        };
        a.kept.push(i);
        a.runs.push((names.family(k), k.goal_hash));
        a.clusters.push(clusters[i]);
        a.splits.push(unit_split[u]);
    }
    a
}

/// Label use, role metrics and the named checks.
fn finish_report(
    inputs: &BuildInputs,
    rep: &mut Report,
    metrics: traj_metrics::MetricsReport,
    labels_used: &BTreeSet<String>,
) {
    rep.labels_loaded = inputs.labels.len() as u64;
    rep.labels_applied = labels_used.len() as u64;
    rep.labels_unmatched = inputs
        .labels
        .keys()
        .difference(labels_used)
        .cloned()
        .collect();
    rep.coverage = Some(metrics.coverage.clone());
    rep.role_metrics = Some(json!({
        "metrics_version": metrics.metrics_version,
        "note": "computed by traj-metrics on the recorded events of the kept runs (human labels not applied)",
        "runs": metrics.runs,
        "overall": metrics.overall,
        "by_split": metrics.groups.split,
    }));
    rep.finish();
    rep.checks = crate::checks::run_checks(rep, &inputs.config);
}

fn write_report_and_card(
    inputs: &BuildInputs,
    rep: &Report,
    written: &mut Vec<Written>,
) -> Result<(), BuildError> {
    let out = &inputs.out;
    let p = out.join("report.json");
    written.push(crate::output::write_pretty_json(&p, rep).map_err(io_at(&p))?);
    let p = out.join("report.md");
    written.push(write_file(&p, report::markdown(rep).as_bytes()).map_err(io_at(&p))?);
    let p = out.join("README.md");
    let card = crate::card::dataset_card(rep, inputs.format, written);
    written.push(write_file(&p, card.as_bytes()).map_err(io_at(&p))?);
    Ok(())
}
