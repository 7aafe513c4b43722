//! `report.json`: what the build kept and dropped, and why — leakage between splits (must be
//! zero), split units and cuts, dedup, class balance and the named checks, quarantine, quality,
//! labels, PII counts, role metrics and collection coverage. `report.md` is its readable form.

pub use crate::report_markdown::markdown;

use crate::balance::{class_of, BalanceReport};
use crate::build::{BuildInputs, CutRun, FamilyJoin, Quarantined, RefusedJoin};
use crate::checks::{Check, Severity};
use crate::compact::{RunName, Sha256Digest, ShortHash};
use crate::quality::Drift;
use crate::rows::{Completion, Row, View};
use crate::runview::RunIndex;
use crate::split::Split;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use traj_schema::{Outcome, ToolStatus, Verdict};

/// Cut runs listed in the report (the count is always complete).
const MAX_LISTED_CUTS: usize = 1_000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunCounts {
    pub found: u64,
    pub quarantined: u64,
    pub deduplicated: u64,
    /// Left out so that near-duplicate goals stay in one split (see `split_units.cut_runs`).
    pub cut_near_duplicates: u64,
    pub kept: u64,
}

/// One split unit: goal families that go to one split together.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitReport {
    pub families: Vec<String>,
    pub runs: u64,
    pub split: String,
}

/// How the goal families became split units (see `build::units`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitUnits {
    pub max_unit_share: f64,
    pub max_unit_runs: u64,
    pub units: Vec<UnitReport>,
    /// Families joined because their goals are near-duplicates of each other.
    pub joins: Vec<FamilyJoin>,
    /// Links not made: the unit would have passed `max_unit_runs`.
    pub refused_joins: Vec<RefusedJoin>,
    /// Runs left out instead (at most 1 000 listed; `runs.cut_near_duplicates` counts all).
    pub cut_runs: Vec<CutRun>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Leakage {
    /// Goal families present in more than one split (must be 0).
    pub shared_goal_families: u64,
    /// Near-duplicate goal clusters present in more than one split (must be 0).
    pub shared_near_duplicate_clusters: u64,
    /// Identical normalized goals present in more than one split (must be 0).
    pub shared_goals: u64,
    /// `train|test` -> what the two splits share.
    pub pairs: BTreeMap<String, PairLeak>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PairLeak {
    pub goal_families: Vec<String>,
    pub near_duplicate_clusters: u64,
    pub goals: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Dedup {
    /// The key: (goal_hash, key_steps_hash, final_outcome); see docs/datasets.md.
    pub key: String,
    pub removed: u64,
    pub removed_runs: Vec<DuplicateRun>,
    /// Near-duplicate goal clusters (more than one run) among kept runs.
    pub near_duplicate_clusters: u64,
    pub runs_in_near_duplicate_clusters: u64,
    /// Clusters spanning several goal families (their families were forced into one split).
    pub cross_family_clusters: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitStats {
    pub runs: u64,
    pub goal_families: Vec<String>,
    pub outcomes: BTreeMap<String, u64>,
    /// Effective verifier verdicts of the split's runs.
    pub verdicts: BTreeMap<String, u64>,
    pub tool_error_classes: BTreeMap<String, u64>,
    pub tool_failures: u64,
    pub recovery_cases: u64,
    pub pref_pairs_by_rule: BTreeMap<String, u64>,
    /// verifier_sft rows by ex-post correctness (`true`, `false`, `unknown`).
    pub verdict_correctness: BTreeMap<String, u64>,
    pub human_labelled_rows: u64,
    /// Total variation distance between this split's outcome mix and the corpus's (0 = same).
    pub outcome_distance: f64,
    /// The same for the verdict mix.
    pub verdict_distance: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quality {
    pub warnings: Vec<Value>,
    pub broken_lineage_runs: u64,
    pub schema_drift: Vec<Drift>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pii {
    pub policy: String,
    pub version: String,
    /// Replacements made by the second pass, by kind.
    pub counts: BTreeMap<String, u64>,
}

/// The whole of `report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub schema_version: String,
    pub seed: u64,
    pub format: String,
    pub config_hash: String,
    pub runs: RunCounts,
    /// split -> view -> rows.
    pub rows: BTreeMap<String, BTreeMap<String, u64>>,
    pub split_targets: BTreeMap<String, f64>,
    pub leakage: Leakage,
    pub split_units: SplitUnits,
    /// Named checks that failed (errors fail the build, see docs/datasets.md).
    pub checks: Vec<Check>,
    pub balance: BalanceReport,
    pub dedup: Dedup,
    pub splits: BTreeMap<String, SplitStats>,
    pub quarantine: Vec<Quarantined>,
    pub quality: Quality,
    pub labels_loaded: u64,
    pub labels_applied: u64,
    pub labels_unmatched: Vec<String>,
    pub pii: Pii,
    /// Role metrics of the kept runs (overall and per split), from `traj-metrics`.
    pub role_metrics: Option<Value>,
    /// Rows per view by where their messages came from: `llm` (the model's recorded
    /// conversation) or `payload:<reason>` (traj's rendering of the step payloads).
    pub row_sources: BTreeMap<String, BTreeMap<String, u64>>,
    /// Set when rows fell back to payloads because LLM calls recorded no content: how to turn
    /// content capture on.
    pub content_capture: Option<String>,
    /// Runs per configuration × goal family × seed kind of the kept runs.
    pub coverage: Option<traj_metrics::Coverage>,
    /// Per-run input hashes (written to the manifest, not the report).
    #[serde(skip)]
    pub inputs: Vec<InputHashes>,
}

/// One run's entry in the manifest's `inputs.runs`: a plain struct (fields in the sorted key
/// order the manifest uses) of fixed-size digests, 88 bytes per run.
#[derive(Debug, Clone, Serialize)]
pub struct InputHashes {
    pub events_sha256: Sha256Digest,
    pub run_id: RunName,
    pub session_sha256: Sha256Digest,
}

/// A run removed as an exact duplicate: serialized as the object `report.json` lists (keys in
/// sorted order, as a `serde_json` object prints them), held in ~90 bytes.
#[derive(Debug, Clone)]
pub struct DuplicateRun {
    pub run_id: RunName,
    pub duplicate_of: RunName,
    pub goal_hash: ShortHash,
    pub key_steps_hash: ShortHash,
    pub outcome: Outcome,
}

impl Serialize for DuplicateRun {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("DuplicateRun", 6)?;
        st.serialize_field("duplicate_of", &self.duplicate_of)?;
        st.serialize_field("goal_hash", &self.goal_hash)?;
        st.serialize_field("key_steps_hash", &self.key_steps_hash)?;
        st.serialize_field("outcome", self.outcome.as_str())?;
        st.serialize_field("reason", DUPLICATE_REASON)?;
        st.serialize_field("run_id", &self.run_id)?;
        st.end()
    }
}

const DUPLICATE_REASON: &str = "same goal_hash, key_steps_hash and final outcome";

fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    *m.entry(k.to_string()).or_insert(0) += 1;
}

impl Report {
    pub fn new(inputs: &BuildInputs, found: u64) -> Report {
        let mut rows = BTreeMap::new();
        let mut splits = BTreeMap::new();
        for s in Split::ALL {
            rows.insert(
                s.as_str().to_string(),
                View::ALL
                    .iter()
                    .map(|v| (v.as_str().to_string(), 0))
                    .collect(),
            );
            splits.insert(s.as_str().to_string(), SplitStats::default());
        }
        let r = &inputs.config.split;
        Report {
            schema_version: traj_schema::SCHEMA_VERSION.into(),
            seed: inputs.seed,
            format: inputs.format.as_str().into(),
            config_hash: inputs.config.hash(),
            runs: RunCounts {
                found,
                ..Default::default()
            },
            rows,
            split_targets: [
                ("train", r.train),
                ("validation", r.validation),
                ("test", r.test),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            dedup: Dedup {
                key: "(goal_hash, key_steps_hash, final_outcome)".into(),
                ..Default::default()
            },
            splits,
            balance: BalanceReport::new(),
            split_units: SplitUnits {
                max_unit_share: inputs.config.split.max_unit_share,
                ..Default::default()
            },
            pii: Pii {
                policy: inputs.redactor.name(),
                version: inputs.redactor.version(),
                counts: BTreeMap::new(),
            },
            ..Default::default()
        }
    }

    pub fn add_warning(&mut self, run_id: &str, message: &str) {
        self.quality
            .warnings
            .push(serde_json::json!({"run_id": run_id, "message": message}));
    }

    pub fn add_duplicate(&mut self, duplicate: DuplicateRun) {
        self.dedup.removed += 1;
        self.dedup.removed_runs.push(duplicate);
    }

    /// Records the split assignment and checks it for leakage. `runs[i]` is (family, goal
    /// hash); `clusters[i]` the near-duplicate cluster representative of run `i`.
    pub fn record_split(
        &mut self,
        runs: &[(&str, ShortHash)],
        clusters: &[usize],
        split_of_run: &[Split],
    ) {
        // Per-key sets of splits as bit sets, and per cluster (size, first family, more than one
        // family): one entry per run at most, so these stay small at 100 000 runs.
        #[derive(Default, Clone, Copy)]
        struct SplitSet(u8);
        impl SplitSet {
            fn insert(&mut self, s: Split) {
                self.0 |= 1 << s as u8;
            }
            fn contains(&self, s: &Split) -> bool {
                self.0 & (1 << *s as u8) != 0
            }
            fn len(&self) -> u32 {
                self.0.count_ones()
            }
        }
        let mut fam_splits: BTreeMap<&str, SplitSet> = BTreeMap::new();
        let mut cluster_splits: BTreeMap<usize, SplitSet> = BTreeMap::new();
        let mut goal_splits: BTreeMap<ShortHash, SplitSet> = BTreeMap::new();
        let mut cluster_sizes: BTreeMap<usize, (u64, &str, bool)> = BTreeMap::new();
        for (i, &(fam, goal)) in runs.iter().enumerate() {
            let s = split_of_run[i];
            fam_splits.entry(fam).or_default().insert(s);
            cluster_splits.entry(clusters[i]).or_default().insert(s);
            goal_splits.entry(goal).or_default().insert(s);
            let c = cluster_sizes.entry(clusters[i]).or_insert((0, fam, false));
            c.0 += 1;
            c.2 |= c.1 != fam;
            let st = self.splits.entry(s.as_str().to_string()).or_default();
            if !st.goal_families.iter().any(|f| f == fam) {
                st.goal_families.push(fam.to_string());
            }
        }
        for st in self.splits.values_mut() {
            st.goal_families.sort();
        }
        fn multi<K>(m: &BTreeMap<K, SplitSet>) -> u64 {
            m.values().filter(|s| s.len() > 1).count() as u64
        }
        self.leakage.shared_goal_families = multi(&fam_splits);
        self.leakage.shared_near_duplicate_clusters = multi(&cluster_splits);
        self.leakage.shared_goals = multi(&goal_splits);
        for (i, a) in Split::ALL.iter().enumerate() {
            for b in &Split::ALL[i + 1..] {
                let both = |s: &SplitSet| s.contains(a) && s.contains(b);
                self.leakage.pairs.insert(
                    format!("{}|{}", a.as_str(), b.as_str()),
                    PairLeak {
                        goal_families: fam_splits
                            .iter()
                            .filter(|(_, s)| both(s))
                            .map(|(f, _)| f.to_string())
                            .collect(),
                        near_duplicate_clusters: cluster_splits.values().filter(|s| both(s)).count()
                            as u64,
                        goals: goal_splits.values().filter(|s| both(s)).count() as u64,
                    },
                );
            }
        }
        for (n, _, several_families) in cluster_sizes.values() {
            if *n > 1 {
                self.dedup.near_duplicate_clusters += 1;
                self.dedup.runs_in_near_duplicate_clusters += n;
            }
            if *several_families {
                self.dedup.cross_family_clusters += 1;
            }
        }
    }

    /// The split units, their joins and cuts.
    pub(crate) fn record_units(&mut self, plan: &crate::build::UnitPlan, unit_split: &[Split]) {
        let u = &mut self.split_units;
        u.max_unit_runs = plan.max_unit_runs;
        u.units = plan
            .units
            .iter()
            .zip(&plan.unit_families)
            .zip(unit_split)
            .map(|((p, f), s)| UnitReport {
                families: f.clone(),
                runs: p.runs,
                split: s.as_str().to_owned(),
            })
            .collect();
        u.joins = plan.joins.clone();
        u.refused_joins = plan.refused.clone();
        u.cut_runs = plan.cuts.iter().take(MAX_LISTED_CUTS).cloned().collect();
        self.runs.cut_near_duplicates = plan.cuts.len() as u64;
    }

    /// Rows written of a view in a split.
    pub fn rows_in(&self, split: Split, view: View) -> u64 {
        self.rows
            .get(split.as_str())
            .and_then(|m| m.get(view.as_str()))
            .copied()
            .unwrap_or(0)
    }

    /// The failed checks of severity `error`.
    pub fn failed_checks(&self) -> Vec<Check> {
        self.checks
            .iter()
            .filter(|c| c.severity == Severity::Error)
            .cloned()
            .collect()
    }

    /// Class balance of one converted run.
    pub fn record_run(&mut self, split: Split, run: &RunFacts) {
        self.runs.kept += 1;
        let st = self.splits.entry(split.as_str().to_string()).or_default();
        st.runs += 1;
        bump(&mut st.outcomes, run.outcome.as_str());
        for verdict in &run.verdicts {
            bump(&mut st.verdicts, verdict.as_str());
        }
        for class in &run.tool_errors {
            st.tool_failures += 1;
            bump(&mut st.tool_error_classes, class);
        }
    }

    /// Counts one written row.
    pub fn record_row(&mut self, split: Split, row: &RowFacts) {
        bump(
            self.row_sources
                .entry(row.view.as_str().to_owned())
                .or_default(),
            &row.source,
        );
        if let Some(m) = self.rows.get_mut(split.as_str()) {
            *m.entry(row.view.as_str().to_string()).or_insert(0) += 1;
        }
        self.balance.count(row.view, split, row.class.clone());
        let st = self.splits.entry(split.as_str().to_string()).or_default();
        if row.human_label {
            st.human_labelled_rows += 1;
        }
        match &row.kind {
            RowKind::PrefRule(rule) => bump(&mut st.pref_pairs_by_rule, rule),
            RowKind::Correctness(k) => bump(&mut st.verdict_correctness, k),
            RowKind::Recovery => st.recovery_cases += 1,
            RowKind::Other => {}
        }
    }

    pub fn finish(&mut self) {
        let uncaptured: u64 = self
            .row_sources
            .values()
            .filter_map(|m| m.get("payload:content_not_captured"))
            .sum();
        if uncaptured > 0 {
            self.content_capture = Some(format!("{uncaptured} rows were rendered from step payloads because their LLM calls recorded no prompt or completion. Turn content capture on: openai-v2 `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY` (or `EVENT_ONLY` and export logs to traj too); OpenInference: leave `OPENINFERENCE_HIDE_INPUTS` / `_OUTPUTS` unset; OpenLLMetry: `TRACELOOP_TRACE_CONTENT=true`; pydantic-ai: `InstrumentationSettings(include_content=True)`; traj-instrument: `LlmSpan` input/output messages."));
        }
        self.runs.quarantined = self.quarantine.len() as u64;
        self.runs.deduplicated = self.dedup.removed;
        self.split_distances();
    }

    /// Each split's distance from the corpus's outcome and verdict mix.
    fn split_distances(&mut self) {
        fn total(maps: &[&BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
            let mut t = BTreeMap::new();
            for m in maps {
                for (k, v) in *m {
                    *t.entry(k.clone()).or_insert(0) += v;
                }
            }
            t
        }
        let outcomes = total(
            &self
                .splits
                .values()
                .map(|s| &s.outcomes)
                .collect::<Vec<_>>(),
        );
        let verdicts = total(
            &self
                .splits
                .values()
                .map(|s| &s.verdicts)
                .collect::<Vec<_>>(),
        );
        for st in self.splits.values_mut() {
            st.outcome_distance = tv_distance(&st.outcomes, &outcomes);
            st.verdict_distance = tv_distance(&st.verdicts, &verdicts);
        }
    }
}

/// What the report counts of one converted run, taken from its index (on a worker thread, so
/// the run itself need not reach the thread that owns the report).
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub outcome: Outcome,
    /// Effective verifier verdicts, in stage order.
    pub verdicts: Vec<Verdict>,
    /// Error class of every failed tool call (`unclassified` when it has none).
    pub tool_errors: Vec<String>,
}

impl RunFacts {
    pub fn of(idx: &RunIndex) -> RunFacts {
        let verdicts = idx.verifies().filter_map(|(_, v)| v.verdict).collect();
        let mut tool_errors = Vec::new();
        for (_, w) in idx.works() {
            for t in &w.tools {
                if let Some((_, r)) = t.result {
                    if r.status == ToolStatus::Error {
                        let class = r.error_class.as_deref().unwrap_or("unclassified");
                        tool_errors.push(class.to_owned());
                    }
                }
            }
        }
        RunFacts {
            outcome: idx.outcome,
            verdicts,
            tool_errors,
        }
    }
}

/// What the report counts of one written row (taken before redaction).
#[derive(Debug, Clone)]
pub struct RowFacts {
    pub view: View,
    /// `llm` or `payload:<reason>`.
    pub source: String,
    /// The row's class for the balance report.
    pub class: String,
    pub human_label: bool,
    pub kind: RowKind,
}

/// The per-view counter a row adds to.
#[derive(Debug, Clone)]
pub enum RowKind {
    /// A preference pair, by the rule that made it.
    PrefRule(String),
    /// A verifier_sft row, by ex-post correctness (`true`, `false`, `unknown`).
    Correctness(&'static str),
    Recovery,
    Other,
}

impl RowFacts {
    pub fn of(row: &Row) -> RowFacts {
        let meta = &row.metadata;
        let source = match meta["source"].as_str() {
            Some("llm") => "llm".to_owned(),
            _ => format!(
                "payload:{}",
                meta["payload_reason"].as_str().unwrap_or("unknown")
            ),
        };
        let labels = &meta["labels"];
        let kind = match (row.view, &row.completion) {
            (View::VerifierPrefPairs, Completion::Pref { .. }) => {
                RowKind::PrefRule(labels["rule"].as_str().unwrap_or("unknown").to_owned())
            }
            (View::VerifierSft, _) => {
                RowKind::Correctness(match labels["ex_post_correct"].as_bool() {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "unknown",
                })
            }
            (View::WorkerRecoveryCases, _) => RowKind::Recovery,
            _ => RowKind::Other,
        };
        RowFacts {
            view: row.view,
            source,
            class: class_of(row.view, meta),
            human_label: meta["human_label"] == Value::Bool(true),
            kind,
        }
    }
}

/// Total variation distance between two count distributions (0 when either is empty).
pub fn tv_distance(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> f64 {
    let (na, nb) = (a.values().sum::<u64>(), b.values().sum::<u64>());
    if na == 0 || nb == 0 {
        return 0.0;
    }
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let d: f64 = keys
        .iter()
        .map(|k| {
            let pa = a.get(*k).copied().unwrap_or(0) as f64 / na as f64;
            let pb = b.get(*k).copied().unwrap_or(0) as f64 / nb as f64;
            (pa - pb).abs()
        })
        .sum();
    (d / 2.0 * 1e6).round() / 1e6
}
