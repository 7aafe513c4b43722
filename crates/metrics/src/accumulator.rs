//! The streaming entry point: feed runs one at a time with [`MetricsAccumulator::add_run`], get
//! the [`MetricsReport`] from [`MetricsAccumulator::finish`]. Memory grows with the number of
//! groups and run-table rows, never with events.

use crate::compare::compare;
use crate::planner::PlannerAgg;
use crate::report::{
    Baseline, GroupMetrics, Groups, MetricsReport, RunRow, SkippedRun, METRICS_VERSION,
};
use crate::run_facts::{extract, RunFacts};
use crate::stats::{MeanAcc, Rate};
use crate::verifier::VerifierAgg;
use crate::worker::WorkerAgg;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use traj_schema::{Event, Outcome, Session};

/// What to compute and how much to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOptions {
    /// Config to compare the others against; default: the config with most runs.
    pub baseline: Option<String>,
    /// Tools that exist, used to check plans whose `planner_input` has no tool mask.
    pub known_tools: Option<BTreeSet<String>>,
    /// Rows kept in the run table (the rest are counted in `run_table_omitted`).
    pub max_run_rows: usize,
    /// A coverage cell with fewer runs than this (but at least one) is reported thin.
    pub coverage_thin_below: u64,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            baseline: None,
            known_tools: None,
            max_run_rows: 5000,
            coverage_thin_below: 3,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct GroupAgg {
    runs: u64,
    model_stack: Option<BTreeMap<String, String>>,
    outcomes: BTreeMap<Outcome, u64>,
    successes: u64,
    known: u64,
    steps: MeanAcc,
    planner: PlannerAgg,
    worker: WorkerAgg,
    verifier: VerifierAgg,
}

impl GroupAgg {
    fn add(&mut self, f: &RunFacts) {
        self.runs += 1;
        *self.outcomes.entry(f.outcome).or_default() += 1;
        if let Some(s) = f.success {
            self.known += 1;
            if s {
                self.successes += 1;
            }
        }
        self.steps.push(f64::from(f.steps));
        self.planner.add(f);
        self.worker.add(f);
        self.verifier.add(f);
    }

    fn finish(&self, key: &str) -> GroupMetrics {
        GroupMetrics {
            key: key.to_string(),
            runs: self.runs,
            model_stack: self.model_stack.clone(),
            outcomes: [
                Outcome::Success,
                Outcome::Failure,
                Outcome::Aborted,
                Outcome::Unknown,
            ]
            .iter()
            .map(|o| {
                let n = self.outcomes.get(o).copied().unwrap_or(0);
                (o.as_str().to_string(), n)
            })
            .collect(),
            success_rate: Rate::new(self.successes, self.known),
            steps: self.steps.finish(),
            planner: self.planner.finish(),
            worker: self.worker.finish(),
            verifier: self.verifier.finish(),
        }
    }
}

fn finish_all(map: &BTreeMap<String, GroupAgg>) -> Vec<GroupMetrics> {
    map.iter().map(|(k, g)| g.finish(k)).collect()
}

/// Accumulates role metrics over runs; see the crate docs for the calling pattern.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccumulator {
    opts: MetricsOptions,
    seen: HashSet<String>,
    overall: GroupAgg,
    by_config: BTreeMap<String, GroupAgg>,
    by_prompt: BTreeMap<String, GroupAgg>,
    by_goal_family: BTreeMap<String, GroupAgg>,
    by_split: BTreeMap<String, GroupAgg>,
    rows: Vec<RunRow>,
    rows_omitted: u64,
    skipped: Vec<SkippedRun>,
    coverage: crate::coverage::CoverageAcc,
}

impl MetricsAccumulator {
    pub fn new(opts: MetricsOptions) -> Self {
        MetricsAccumulator {
            opts,
            ..Default::default()
        }
    }

    /// Counts one run. `split` is the dataset split the run was assigned to, if any. A run id
    /// seen before is not counted twice (it is listed in `skipped_runs`).
    pub fn add_run(&mut self, session: &Session, events: &[Event], split: Option<&str>) {
        if !self.seen.insert(session.run_id.clone()) {
            tracing::warn!(run_id = %session.run_id, "run seen twice; counted once");
            self.add_skipped(&session.run_id, "duplicate run id: already counted");
            return;
        }
        self.coverage.add(session);
        let f = extract(session, events, split, self.opts.known_tools.as_ref());
        self.overall.add(&f);
        let config = self.by_config.entry(f.config_hash.clone()).or_default();
        if config.model_stack.is_none() {
            config.model_stack = Some(f.model_stack.clone());
        }
        config.add(&f);
        self.by_prompt
            .entry(f.prompt_hash.clone())
            .or_default()
            .add(&f);
        self.by_goal_family
            .entry(f.goal_family.clone())
            .or_default()
            .add(&f);
        self.by_split.entry(f.split.clone()).or_default().add(&f);
        if self.rows.len() < self.opts.max_run_rows {
            self.rows.push(row(&f));
        } else {
            self.rows_omitted += 1;
        }
    }

    /// Records a run that could not be read, so the report says what it left out.
    pub fn add_skipped(&mut self, run: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(SkippedRun {
            run: run.into(),
            reason: reason.into(),
        });
    }

    /// Runs counted so far.
    pub fn runs(&self) -> u64 {
        self.overall.runs
    }

    pub fn finish(self) -> MetricsReport {
        let configs = finish_all(&self.by_config);
        let mut warnings = Vec::new();
        let requested = self.opts.baseline.as_deref().and_then(|want| {
            let found = configs.iter().find(|g| g.key == want);
            if found.is_none() {
                warnings.push(format!(
                    "baseline config {want} has no runs; using the config with most runs"
                ));
            }
            found
        });
        let baseline = match requested {
            Some(g) => Some((g, "requested")),
            None => configs
                .iter()
                // most runs; ties go to the smallest hash so the choice is stable
                .max_by(|a, b| a.runs.cmp(&b.runs).then(b.key.cmp(&a.key)))
                .map(|g| (g, "most_runs")),
        };
        let comparisons = match baseline {
            Some((b, _)) => configs
                .iter()
                .filter(|g| g.key != b.key)
                .map(|g| compare(g, b))
                .collect(),
            None => Vec::new(),
        };
        let baseline = baseline.map(|(g, how)| Baseline {
            config_hash: g.key.clone(),
            chosen_by: how.to_string(),
        });
        let mut rows = self.rows;
        rows.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        MetricsReport {
            metrics_version: METRICS_VERSION.to_string(),
            confidence_level: 0.95,
            runs: self.overall.runs,
            skipped_runs: self.skipped,
            overall: self.overall.finish("all"),
            groups: Groups {
                config: configs,
                prompt: finish_all(&self.by_prompt),
                goal_family: finish_all(&self.by_goal_family),
                split: finish_all(&self.by_split),
            },
            baseline,
            comparisons,
            run_table: rows,
            run_table_omitted: self.rows_omitted,
            coverage: self.coverage.finish(self.opts.coverage_thin_below),
            warnings,
        }
    }
}

fn row(f: &RunFacts) -> RunRow {
    RunRow {
        run_id: f.run_id.clone(),
        trace_id: f.trace_id.clone(),
        started_at: f.started_at.clone(),
        config_hash: f.config_hash.clone(),
        prompt_hash: f.prompt_hash.clone(),
        goal_family: f.goal_family.clone(),
        split: f.split.clone(),
        outcome: f.outcome,
        steps: f.steps,
        plans: f.plans.len() as u32,
        replans: f.replans,
        tool_calls: f.tool_calls,
        tool_errors: f.tools.iter().filter(|t| !t.ok).count() as u32,
        final_verdict: f.verdicts.last().map(|v| v.verdict),
    }
}
