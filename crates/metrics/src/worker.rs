//! Worker metrics: tool success (overall and per tool), action efficiency, error recurrence and
//! recovery after a failure.

use crate::run_facts::RunFacts;
use crate::stats::{Mean, MeanAcc, Rate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Error class used when a failed tool result names none.
pub const UNCLASSIFIED_ERROR: &str = "unclassified";

/// Worker metrics of one group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    /// `worker_tool_call` events.
    pub tool_calls: u64,
    /// Tool results with status `ok` / tool results (every attempt counts).
    pub tool_success: Rate,
    pub tool_success_by_tool: BTreeMap<String, Rate>,
    /// Steps (cycles) per successful run.
    pub steps_per_success: Mean,
    /// Tool calls per successful run.
    pub tool_calls_per_success: Mean,
    /// Failed tool results.
    pub failures: u64,
    /// Failures by error class.
    pub error_classes: BTreeMap<String, u64>,
    /// Failures whose error class already occurred earlier in the same run / failures.
    pub error_recurrence: Rate,
    /// Runs where some error class occurred twice or more / runs with a failure.
    pub runs_with_recurrence: Rate,
    /// Failures whose next tool result in the run is `ok` / failures.
    pub recovery_rate: Rate,
    /// Successful runs / runs with a failure (known outcome only).
    pub success_after_failure: Rate,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerAgg {
    tool_calls: u64,
    results: u64,
    ok: u64,
    by_tool: BTreeMap<String, (u64, u64)>,
    steps_per_success: MeanAcc,
    calls_per_success: MeanAcc,
    failures: u64,
    classes: BTreeMap<String, u64>,
    recurrent: u64,
    runs_failed: u64,
    runs_recurrent: u64,
    recovered: u64,
    failed_known: u64,
    failed_succeeded: u64,
}

impl WorkerAgg {
    pub(crate) fn add(&mut self, f: &RunFacts) {
        self.tool_calls += u64::from(f.tool_calls);
        let mut seen_classes = BTreeSet::new();
        let mut run_failures = 0u64;
        let mut run_recurrent = false;
        for (i, t) in f.tools.iter().enumerate() {
            self.results += 1;
            let entry = self.by_tool.entry(t.tool.clone()).or_default();
            entry.1 += 1;
            if t.ok {
                self.ok += 1;
                entry.0 += 1;
                continue;
            }
            self.failures += 1;
            run_failures += 1;
            let class = t
                .error_class
                .as_deref()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or(UNCLASSIFIED_ERROR);
            *self.classes.entry(class.to_string()).or_default() += 1;
            if !seen_classes.insert(class) {
                self.recurrent += 1;
                run_recurrent = true;
            }
            if f.tools.get(i + 1).is_some_and(|next| next.ok) {
                self.recovered += 1;
            }
        }
        if run_failures > 0 {
            self.runs_failed += 1;
            if run_recurrent {
                self.runs_recurrent += 1;
            }
            if let Some(s) = f.success {
                self.failed_known += 1;
                if s {
                    self.failed_succeeded += 1;
                }
            }
        }
        if f.success == Some(true) {
            self.steps_per_success.push(f64::from(f.steps));
            self.calls_per_success.push(f64::from(f.tool_calls));
        }
    }

    pub(crate) fn finish(&self) -> WorkerMetrics {
        WorkerMetrics {
            tool_calls: self.tool_calls,
            tool_success: Rate::new(self.ok, self.results),
            tool_success_by_tool: self
                .by_tool
                .iter()
                .map(|(k, (ok, n))| (k.clone(), Rate::new(*ok, *n)))
                .collect(),
            steps_per_success: self.steps_per_success.finish(),
            tool_calls_per_success: self.calls_per_success.finish(),
            failures: self.failures,
            error_classes: self.classes.clone(),
            error_recurrence: Rate::new(self.recurrent, self.failures),
            runs_with_recurrence: Rate::new(self.runs_recurrent, self.runs_failed),
            recovery_rate: Rate::new(self.recovered, self.failures),
            success_after_failure: Rate::new(self.failed_succeeded, self.failed_known),
        }
    }
}
