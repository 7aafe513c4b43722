//! Planner metrics: plan validity, replans, downstream success uplift, plan length.

use crate::run_facts::RunFacts;
use crate::stats::{diff_rates, Diff, Mean, MeanAcc, Rate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Planner metrics of one group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerMetrics {
    /// `planner_output` events seen.
    pub plans: u64,
    /// Valid plans / plans (non-empty, unique step indices, every tool available).
    pub plan_validity: Rate,
    /// Invalid plans by reason (a plan may count under several).
    pub invalid_reasons: BTreeMap<String, u64>,
    /// Plans whose tool references could not be checked (no tool mask, no known toolset).
    pub plans_with_unchecked_tools: u64,
    /// Replans (planner outputs after the first) per run that planned at all.
    pub replans_per_run: Mean,
    /// Runs with at least one replan / runs that planned.
    pub replan_share: Rate,
    /// Success rate of runs that kept their first plan (known outcome only).
    pub success_kept_first_plan: Rate,
    /// Success rate of runs that replanned (known outcome only).
    pub success_replanned: Rate,
    /// `success_kept_first_plan - success_replanned`, Newcombe interval.
    pub downstream_success_uplift: Option<Diff>,
    /// Steps per plan, over all plans.
    pub mean_plan_length: Mean,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PlannerAgg {
    plans: u64,
    valid: u64,
    unchecked: u64,
    reasons: BTreeMap<&'static str, u64>,
    runs_planned: u64,
    runs_replanned: u64,
    replans_per_run: MeanAcc,
    kept_success: u64,
    kept_known: u64,
    replanned_success: u64,
    replanned_known: u64,
    plan_len: MeanAcc,
}

impl PlannerAgg {
    pub(crate) fn add(&mut self, f: &RunFacts) {
        for p in &f.plans {
            self.plans += 1;
            if p.valid() {
                self.valid += 1;
            }
            if !p.tools_checked {
                self.unchecked += 1;
            }
            for r in &p.reasons {
                *self.reasons.entry(r.as_str()).or_default() += 1;
            }
            self.plan_len.push(p.len as f64);
        }
        if f.plans.is_empty() {
            return;
        }
        self.runs_planned += 1;
        self.replans_per_run.push(f.replans as f64);
        let replanned = f.replans > 0;
        if replanned {
            self.runs_replanned += 1;
        }
        if let Some(s) = f.success {
            let (succ, known) = if replanned {
                (&mut self.replanned_success, &mut self.replanned_known)
            } else {
                (&mut self.kept_success, &mut self.kept_known)
            };
            *known += 1;
            if s {
                *succ += 1;
            }
        }
    }

    pub(crate) fn finish(&self) -> PlannerMetrics {
        let kept = Rate::new(self.kept_success, self.kept_known);
        let replanned = Rate::new(self.replanned_success, self.replanned_known);
        PlannerMetrics {
            plans: self.plans,
            plan_validity: Rate::new(self.valid, self.plans),
            invalid_reasons: self
                .reasons
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            plans_with_unchecked_tools: self.unchecked,
            replans_per_run: self.replans_per_run.finish(),
            replan_share: Rate::new(self.runs_replanned, self.runs_planned),
            downstream_success_uplift: diff_rates(&kept, &replanned),
            success_kept_first_plan: kept,
            success_replanned: replanned,
            mean_plan_length: self.plan_len.finish(),
        }
    }
}
