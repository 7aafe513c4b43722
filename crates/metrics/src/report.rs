//! The structure of `metrics.json` (versioned by [`METRICS_VERSION`]); documented field by field
//! in `docs/metrics.md`.

use crate::planner::PlannerMetrics;
use crate::stats::{Diff, Mean, Rate};
use crate::verifier::VerifierMetrics;
use crate::worker::WorkerMetrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use traj_schema::{Outcome, Verdict};

/// Bumped whenever a field of `metrics.json` changes meaning or disappears.
pub const METRICS_VERSION: &str = "1";

/// The whole of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    pub metrics_version: String,
    /// Confidence level of every interval in the report.
    pub confidence_level: f64,
    /// Runs counted.
    pub runs: u64,
    /// Runs that could not be counted, with the reason.
    pub skipped_runs: Vec<SkippedRun>,
    pub overall: GroupMetrics,
    pub groups: Groups,
    /// The config every other config is compared with; null when there are no runs.
    pub baseline: Option<Baseline>,
    /// One entry per non-baseline config.
    pub comparisons: Vec<ConfigComparison>,
    /// One row per run, sorted by (`started_at`, `run_id`), at most `max_run_rows`.
    pub run_table: Vec<RunRow>,
    /// Rows left out of `run_table` because of `max_run_rows`.
    pub run_table_omitted: u64,
    /// Runs per configuration × goal family × seed kind, with the empty and thin cells.
    #[serde(default)]
    pub coverage: crate::coverage::Coverage,
    pub warnings: Vec<String>,
}

/// A run that was not counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRun {
    /// Run id or directory.
    pub run: String,
    pub reason: String,
}

/// Metrics of the runs sharing one grouping key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// The key (`config_hash`, `prompt_hash`, goal family, split; `all` for the overall group).
    pub key: String,
    pub runs: u64,
    /// role -> model, for config groups (as recorded by the first run of the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_stack: Option<BTreeMap<String, String>>,
    /// Runs by outcome (`success`, `failure`, `aborted`, `unknown`).
    pub outcomes: BTreeMap<String, u64>,
    /// Successful runs / runs with a known outcome (aborted counts as not successful).
    pub success_rate: Rate,
    /// Steps (cycles) per run.
    pub steps: Mean,
    pub planner: PlannerMetrics,
    pub worker: WorkerMetrics,
    pub verifier: VerifierMetrics,
}

/// The groupings of the report, each sorted by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Groups {
    pub config: Vec<GroupMetrics>,
    pub prompt: Vec<GroupMetrics>,
    pub goal_family: Vec<GroupMetrics>,
    pub split: Vec<GroupMetrics>,
}

/// How the baseline config was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub config_hash: String,
    /// `requested` (`--baseline`) or `most_runs`.
    pub chosen_by: String,
}

/// One config against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigComparison {
    pub config_hash: String,
    pub baseline_config_hash: String,
    pub runs: u64,
    pub baseline_runs: u64,
    pub metrics: Vec<MetricDiff>,
}

/// One metric of a config against the baseline: `diff = value - baseline_value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDiff {
    /// Stable id, e.g. `verifier.stop_precision`.
    pub metric: String,
    pub role: String,
    pub label: String,
    /// `rate` (Newcombe interval on the difference) or `mean` (Welch interval).
    pub kind: String,
    pub higher_is_better: bool,
    pub value: Option<f64>,
    pub n: u64,
    pub baseline_value: Option<f64>,
    pub baseline_n: u64,
    pub diff: Option<Diff>,
    /// `better`, `worse`, `no_significant_difference` or `insufficient_data`.
    pub assessment: String,
}

/// One run in the run table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run_id: String,
    pub trace_id: String,
    pub started_at: String,
    pub config_hash: String,
    pub prompt_hash: String,
    pub goal_family: String,
    pub split: String,
    pub outcome: Outcome,
    pub steps: u32,
    pub plans: u32,
    pub replans: u32,
    pub tool_calls: u32,
    pub tool_errors: u32,
    pub final_verdict: Option<Verdict>,
}
