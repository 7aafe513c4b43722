//! `report.json` / `report.md`: what the build kept and dropped, and why — leakage between
//! splits (must be zero), dedup, class balance per split, quarantine, quality, labels, PII counts.

use crate::build::{BuildInputs, Quarantined};
use crate::quality::Drift;
use crate::rows::{Completion, Row, View};
use crate::runview::RunIndex;
use crate::split::Split;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use traj_schema::{Outcome, ToolStatus};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunCounts {
    pub found: u64,
    pub quarantined: u64,
    pub deduplicated: u64,
    pub kept: u64,
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
    pub removed_runs: Vec<Value>,
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
    /// Per-run input hashes (written to the manifest, not the report).
    #[serde(skip)]
    pub inputs: Vec<InputHashes>,
}

/// One run's entry in the manifest's `inputs.runs`: a plain struct (fields in the sorted key
/// order the manifest uses) instead of a `serde_json` object, ~3x smaller per run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputHashes {
    pub events_sha256: String,
    pub run_id: String,
    pub session_sha256: String,
}

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

    pub fn add_duplicate(
        &mut self,
        run_id: &str,
        first: &str,
        goal_hash: &str,
        key_steps_hash: &str,
        outcome: Outcome,
    ) {
        self.dedup.removed += 1;
        self.dedup.removed_runs.push(serde_json::json!({
            "run_id": run_id,
            "duplicate_of": first,
            "reason": "same goal_hash, key_steps_hash and final outcome",
            "goal_hash": goal_hash,
            "key_steps_hash": key_steps_hash,
            "outcome": outcome.as_str(),
        }));
    }

    /// Records the split assignment and checks it for leakage. `runs[i]` is (run id, family,
    /// goal hash); `clusters[i]` the near-duplicate cluster representative of run `i`.
    pub fn record_split(
        &mut self,
        runs: &[(&str, &str, &str)],
        clusters: &[usize],
        split_of_run: &[Split],
        _families: &[String],
        _unit_of_family: &[usize],
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
        let mut goal_splits: BTreeMap<&str, SplitSet> = BTreeMap::new();
        let mut cluster_sizes: BTreeMap<usize, (u64, &str, bool)> = BTreeMap::new();
        for (i, (_, fam, goal)) in runs.iter().enumerate() {
            let s = split_of_run[i];
            fam_splits.entry(fam).or_default().insert(s);
            cluster_splits.entry(clusters[i]).or_default().insert(s);
            goal_splits.entry(goal).or_default().insert(s);
            let c = cluster_sizes.entry(clusters[i]).or_insert((0, fam, false));
            c.0 += 1;
            c.2 |= c.1 != *fam;
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

    /// Class balance of one converted run.
    pub fn record_run(&mut self, split: Split, idx: &RunIndex) {
        self.runs.kept += 1;
        let st = self.splits.entry(split.as_str().to_string()).or_default();
        st.runs += 1;
        bump(&mut st.outcomes, idx.outcome.as_str());
        for (_, v) in idx.verifies() {
            if let Some(verdict) = v.verdict {
                bump(&mut st.verdicts, verdict.as_str());
            }
        }
        for (_, w) in idx.works() {
            for t in &w.tools {
                if let Some((_, r)) = t.result {
                    if r.status == ToolStatus::Error {
                        st.tool_failures += 1;
                        bump(
                            &mut st.tool_error_classes,
                            r.error_class.as_deref().unwrap_or("unclassified"),
                        );
                    }
                }
            }
        }
    }

    /// Counts one written row.
    pub fn record_row(&mut self, split: Split, row: &Row) {
        let source = match row.metadata["source"].as_str() {
            Some("llm") => "llm".to_owned(),
            _ => format!(
                "payload:{}",
                row.metadata["payload_reason"].as_str().unwrap_or("unknown")
            ),
        };
        bump(
            self.row_sources
                .entry(row.view.as_str().to_owned())
                .or_default(),
            &source,
        );
        if let Some(m) = self.rows.get_mut(split.as_str()) {
            *m.entry(row.view.as_str().to_string()).or_insert(0) += 1;
        }
        let st = self.splits.entry(split.as_str().to_string()).or_default();
        let labels = &row.metadata["labels"];
        if row.metadata["human_label"] == Value::Bool(true) {
            st.human_labelled_rows += 1;
        }
        match (row.view, &row.completion) {
            (View::VerifierPrefPairs, Completion::Pref { .. }) => {
                bump(
                    &mut st.pref_pairs_by_rule,
                    labels["rule"].as_str().unwrap_or("unknown"),
                );
            }
            (View::VerifierSft, _) => {
                let k = match labels["ex_post_correct"].as_bool() {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "unknown",
                };
                bump(&mut st.verdict_correctness, k);
            }
            (View::WorkerRecoveryCases, _) => st.recovery_cases += 1,
            _ => {}
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
    }
}

/// The human-readable report.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Dataset build report\n");
    let _ = writeln!(
        s,
        "Schema v{}, seed {}, format `{}`, build config `{}`, redaction `{}` {}.\n",
        r.schema_version, r.seed, r.format, r.config_hash, r.pii.policy, r.pii.version
    );
    let _ = writeln!(
        s,
        "Runs: {} found, {} quarantined, {} removed as duplicates, {} kept.\n",
        r.runs.found, r.runs.quarantined, r.runs.deduplicated, r.runs.kept
    );
    let _ = writeln!(
        s,
        "## Rows\n\n| split | {} |",
        View::ALL.map(|v| v.as_str()).join(" | ")
    );
    let _ = writeln!(s, "|---|{}", "---|".repeat(View::ALL.len()));
    for sp in Split::ALL {
        let m = r.rows.get(sp.as_str());
        let cells: Vec<String> = View::ALL
            .iter()
            .map(|v| {
                m.and_then(|m| m.get(v.as_str()))
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", sp.as_str(), cells.join(" | "));
    }
    let _ = writeln!(s, "\n### Where the rows came from\n\n| view | from the model's conversation | from payloads |\n|---|---|---|");
    for v in View::ALL {
        let Some(m) = r.row_sources.get(v.as_str()) else {
            continue;
        };
        let payload: Vec<String> = m
            .iter()
            .filter(|(k, _)| k.starts_with("payload:"))
            .map(|(k, n)| format!("{n} ({})", &k["payload:".len()..]))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            v.as_str(),
            m.get("llm").copied().unwrap_or(0),
            if payload.is_empty() {
                "0".to_owned()
            } else {
                payload.join(", ")
            }
        );
    }
    if let Some(c) = &r.content_capture {
        let _ = writeln!(s, "\n**Content capture was off for some LLM calls.** {c}");
    }
    let l = &r.leakage;
    let verdict = if l.shared_goal_families + l.shared_near_duplicate_clusters + l.shared_goals == 0
    {
        "none"
    } else {
        "LEAKAGE FOUND"
    };
    let _ = writeln!(
        s,
        "\n## Leakage: {verdict}\n\nShared goal families: {}, shared near-duplicate clusters: {}, shared goals: {}.\n",
        l.shared_goal_families, l.shared_near_duplicate_clusters, l.shared_goals
    );
    let _ = writeln!(s, "## Splits\n\n| split | runs | families | outcomes | verdicts | tool errors | recovery cases | pref pairs |\n|---|---|---|---|---|---|---|---|");
    let fmt_map = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for sp in Split::ALL {
        if let Some(st) = r.splits.get(sp.as_str()) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                sp.as_str(),
                st.runs,
                st.goal_families.len(),
                fmt_map(&st.outcomes),
                fmt_map(&st.verdicts),
                fmt_map(&st.tool_error_classes),
                st.recovery_cases,
                fmt_map(&st.pref_pairs_by_rule)
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Dedup\n\nKey {}: {} runs removed. Near-duplicate goal clusters: {} ({} runs, {} spanning several families).\n",
        r.dedup.key,
        r.dedup.removed,
        r.dedup.near_duplicate_clusters,
        r.dedup.runs_in_near_duplicate_clusters,
        r.dedup.cross_family_clusters
    );
    let _ = writeln!(s, "## Quarantine ({})\n", r.quarantine.len());
    for q in &r.quarantine {
        let at = q.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "- `{}{}`: {} (evidence in `{}`)",
            q.file, at, q.reason, q.copied_to
        );
    }
    let _ = writeln!(
        s,
        "\n## Quality\n\n{} warnings, {} runs with broken lineage, {} drifting fields.\n",
        r.quality.warnings.len(),
        r.quality.broken_lineage_runs,
        r.quality.schema_drift.len()
    );
    for d in &r.quality.schema_drift {
        let by: Vec<String> = d
            .by_config
            .iter()
            .map(|(c, k)| format!("{c}: {}", k.join("/")))
            .collect();
        let _ = writeln!(s, "- `{}`: {}", d.field, by.join("; "));
    }
    let _ = writeln!(
        s,
        "\n## Human labels\n\n{} loaded, {} applied, {} matched nothing.\n",
        r.labels_loaded,
        r.labels_applied,
        r.labels_unmatched.len()
    );
    if let Some(m) = &r.role_metrics {
        let _ = writeln!(s, "## Role metrics (traj-metrics)\n");
        for g in m["by_split"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "- {}: {} runs, success rate {}",
                g["key"].as_str().unwrap_or("?"),
                g["runs"],
                traj_schema::hashing::canonical_json(&g["success_rate"])
            );
        }
        let _ = writeln!(s, "\nFull figures: `report.json:role_metrics`.\n");
    }
    let _ = writeln!(
        s,
        "## PII (second pass)\n\n{}\n",
        if r.pii.counts.is_empty() {
            "nothing found".to_string()
        } else {
            fmt_map(&r.pii.counts)
        }
    );
    s
}
