//! Verifier metrics: stop precision / recall, false stops, unnecessary replans, verdict
//! distribution, agreement with the ex-post outcome, confusion matrices.

use crate::run_facts::RunFacts;
use crate::stats::Rate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use traj_schema::Verdict;

/// The stop decision against ground truth (positive = `end`, truth = goal met at that point).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopConfusion {
    /// `end` when the goal was met.
    pub true_stop: u64,
    /// `end` when the goal was not met.
    pub false_stop: u64,
    /// `continue`/`replan` when the goal was met.
    pub missed_stop: u64,
    /// `continue`/`replan` when the goal was not met.
    pub correct_continue: u64,
}

/// Verdicts with known ground truth, split by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthCounts {
    pub goal_met: u64,
    pub goal_not_met: u64,
}

/// Verifier metrics of one group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifierMetrics {
    /// `verifier_output` events.
    pub verdicts: u64,
    /// Share of each verdict (`continue`, `replan`, `end`) among all verdicts.
    pub verdict_distribution: BTreeMap<String, Rate>,
    /// Verdicts whose run has a known outcome (the rest have no ground truth).
    pub judged_verdicts: u64,
    pub confusion: StopConfusion,
    /// verdict -> counts by ground truth (3 x 2 matrix).
    pub confusion_by_verdict: BTreeMap<String, TruthCounts>,
    /// true stops / `end` verdicts.
    pub stop_precision: Rate,
    /// true stops / moments the goal was met.
    pub stop_recall: Rate,
    /// false stops / moments the goal was not met.
    pub false_stop_rate: Rate,
    /// `replan` verdicts whose next plan equals the plan in force / `replan` verdicts followed
    /// by a plan.
    pub unnecessary_replan_rate: Rate,
    /// `replan` verdicts never followed by a plan (excluded from the rate above).
    pub replans_unresolved: u64,
    /// Runs whose last verdict matches the outcome (`end` iff success) / runs with a verdict
    /// and a known outcome.
    pub outcome_agreement: Rate,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct VerifierAgg {
    verdicts: u64,
    by_verdict: BTreeMap<Verdict, u64>,
    judged: u64,
    confusion: StopConfusion,
    by_truth: BTreeMap<Verdict, TruthCounts>,
    replans: u64,
    replans_resolved: u64,
    replans_unnecessary: u64,
    agree: u64,
    agree_known: u64,
}

impl VerifierAgg {
    pub(crate) fn add(&mut self, f: &RunFacts) {
        for v in &f.verdicts {
            self.verdicts += 1;
            *self.by_verdict.entry(v.verdict).or_default() += 1;
            if v.verdict == Verdict::Replan {
                self.replans += 1;
            }
            let Some(met) = v.goal_met else { continue };
            self.judged += 1;
            let cell = self.by_truth.entry(v.verdict).or_default();
            if met {
                cell.goal_met += 1;
            } else {
                cell.goal_not_met += 1;
            }
            let c = &mut self.confusion;
            match (v.verdict == Verdict::End, met) {
                (true, true) => c.true_stop += 1,
                (true, false) => c.false_stop += 1,
                (false, true) => c.missed_stop += 1,
                (false, false) => c.correct_continue += 1,
            }
        }
        self.replans_resolved += u64::from(f.replan_verdicts_resolved);
        self.replans_unnecessary += u64::from(f.replan_verdicts_unnecessary);
        if let (Some(last), Some(success)) = (f.verdicts.last(), f.success) {
            self.agree_known += 1;
            if (last.verdict == Verdict::End) == success {
                self.agree += 1;
            }
        }
    }

    pub(crate) fn finish(&self) -> VerifierMetrics {
        let c = self.confusion;
        let all = [Verdict::Continue, Verdict::Replan, Verdict::End];
        VerifierMetrics {
            verdicts: self.verdicts,
            verdict_distribution: all
                .iter()
                .map(|v| {
                    let n = self.by_verdict.get(v).copied().unwrap_or(0);
                    (v.as_str().to_string(), Rate::new(n, self.verdicts))
                })
                .collect(),
            judged_verdicts: self.judged,
            confusion: c,
            confusion_by_verdict: all
                .iter()
                .map(|v| {
                    let t = self.by_truth.get(v).copied().unwrap_or_default();
                    (v.as_str().to_string(), t)
                })
                .collect(),
            stop_precision: Rate::new(c.true_stop, c.true_stop + c.false_stop),
            stop_recall: Rate::new(c.true_stop, c.true_stop + c.missed_stop),
            false_stop_rate: Rate::new(c.false_stop, c.false_stop + c.correct_continue),
            unnecessary_replan_rate: Rate::new(self.replans_unnecessary, self.replans_resolved),
            replans_unresolved: self.replans - self.replans_resolved.min(self.replans),
            outcome_agreement: Rate::new(self.agree, self.agree_known),
        }
    }
}
