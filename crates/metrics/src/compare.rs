//! Compares each config with the baseline config: per-metric differences with 95 % intervals,
//! flagged when the interval excludes zero.

use crate::report::{ConfigComparison, GroupMetrics, MetricDiff};
use crate::stats::{diff_means, diff_rates, Mean, Rate};

enum Stat {
    Rate(Rate),
    Mean(Mean),
}

impl Stat {
    fn value_n(&self) -> (Option<f64>, u64) {
        match self {
            Stat::Rate(r) => (r.value, r.den),
            Stat::Mean(m) => (m.value, m.n),
        }
    }
}

struct Spec {
    metric: &'static str,
    role: &'static str,
    label: &'static str,
    higher_is_better: bool,
    get: fn(&GroupMetrics) -> Stat,
}

const SPECS: &[Spec] = &[
    Spec {
        metric: "run.success_rate",
        role: "run",
        label: "Success rate",
        higher_is_better: true,
        get: |g| Stat::Rate(g.success_rate),
    },
    Spec {
        metric: "run.steps",
        role: "run",
        label: "Steps per run",
        higher_is_better: false,
        get: |g| Stat::Mean(g.steps),
    },
    Spec {
        metric: "planner.plan_validity",
        role: "planner",
        label: "Plan validity",
        higher_is_better: true,
        get: |g| Stat::Rate(g.planner.plan_validity),
    },
    Spec {
        metric: "planner.replan_share",
        role: "planner",
        label: "Runs with a replan",
        higher_is_better: false,
        get: |g| Stat::Rate(g.planner.replan_share),
    },
    Spec {
        metric: "planner.mean_plan_length",
        role: "planner",
        label: "Plan length",
        higher_is_better: false,
        get: |g| Stat::Mean(g.planner.mean_plan_length),
    },
    Spec {
        metric: "worker.tool_success",
        role: "worker",
        label: "Tool success",
        higher_is_better: true,
        get: |g| Stat::Rate(g.worker.tool_success),
    },
    Spec {
        metric: "worker.recovery_rate",
        role: "worker",
        label: "Recovery after failure",
        higher_is_better: true,
        get: |g| Stat::Rate(g.worker.recovery_rate),
    },
    Spec {
        metric: "worker.error_recurrence",
        role: "worker",
        label: "Error recurrence",
        higher_is_better: false,
        get: |g| Stat::Rate(g.worker.error_recurrence),
    },
    Spec {
        metric: "worker.steps_per_success",
        role: "worker",
        label: "Steps per successful run",
        higher_is_better: false,
        get: |g| Stat::Mean(g.worker.steps_per_success),
    },
    Spec {
        metric: "worker.tool_calls_per_success",
        role: "worker",
        label: "Tool calls per successful run",
        higher_is_better: false,
        get: |g| Stat::Mean(g.worker.tool_calls_per_success),
    },
    Spec {
        metric: "verifier.stop_precision",
        role: "verifier",
        label: "Stop precision",
        higher_is_better: true,
        get: |g| Stat::Rate(g.verifier.stop_precision),
    },
    Spec {
        metric: "verifier.stop_recall",
        role: "verifier",
        label: "Stop recall",
        higher_is_better: true,
        get: |g| Stat::Rate(g.verifier.stop_recall),
    },
    Spec {
        metric: "verifier.false_stop_rate",
        role: "verifier",
        label: "False-stop rate",
        higher_is_better: false,
        get: |g| Stat::Rate(g.verifier.false_stop_rate),
    },
    Spec {
        metric: "verifier.unnecessary_replan_rate",
        role: "verifier",
        label: "Unnecessary replans",
        higher_is_better: false,
        get: |g| Stat::Rate(g.verifier.unnecessary_replan_rate),
    },
    Spec {
        metric: "verifier.outcome_agreement",
        role: "verifier",
        label: "Agreement with outcome",
        higher_is_better: true,
        get: |g| Stat::Rate(g.verifier.outcome_agreement),
    },
];

/// Compares `group` with `baseline` on every headline metric.
pub fn compare(group: &GroupMetrics, baseline: &GroupMetrics) -> ConfigComparison {
    let metrics = SPECS
        .iter()
        .map(|s| {
            let a = (s.get)(group);
            let b = (s.get)(baseline);
            let diff = match (&a, &b) {
                (Stat::Rate(x), Stat::Rate(y)) => diff_rates(x, y),
                (Stat::Mean(x), Stat::Mean(y)) => diff_means(x, y),
                _ => None,
            };
            let assessment = match diff {
                None => "insufficient_data",
                Some(d) if !d.significant => "no_significant_difference",
                Some(d) if (d.value > 0.0) == s.higher_is_better => "better",
                Some(_) => "worse",
            };
            let (value, n) = a.value_n();
            let (baseline_value, baseline_n) = b.value_n();
            MetricDiff {
                metric: s.metric.to_string(),
                role: s.role.to_string(),
                label: s.label.to_string(),
                kind: match a {
                    Stat::Rate(_) => "rate",
                    Stat::Mean(_) => "mean",
                }
                .to_string(),
                higher_is_better: s.higher_is_better,
                value,
                n,
                baseline_value,
                baseline_n,
                diff,
                assessment: assessment.to_string(),
            }
        })
        .collect();
    ConfigComparison {
        config_hash: group.key.clone(),
        baseline_config_hash: baseline.key.clone(),
        runs: group.runs,
        baseline_runs: baseline.runs,
        metrics,
    }
}
