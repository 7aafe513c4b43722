//! The verifier labelling rules: ex-post correctness of each verdict and the preference pairs
//! (good vs bad verdict on the same state) they yield. `docs/datasets.md` states each rule.

use crate::config::PrefConfig;
use crate::runview::{RunIndex, Stage, VerifyStage};
use traj_schema::event::PlanStep;
use traj_schema::{Outcome, Verdict};

/// A verdict as the assistant would write it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictText {
    pub verdict: Verdict,
    pub feedback: String,
    pub risk_flags: Vec<String>,
}

/// Which side of a pair was synthesized (the other was recorded or human-labelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    Chosen,
    Rejected,
}

impl Synthetic {
    pub fn as_str(self) -> &'static str {
        match self {
            Synthetic::Chosen => "chosen",
            Synthetic::Rejected => "rejected",
        }
    }
}

/// One preference pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefCase {
    /// `human_correction`, `false_stop`, `needless_replan`, `missed_stop` or `confirmed_stop`.
    pub rule: &'static str,
    pub chosen: VerdictText,
    pub rejected: VerdictText,
    /// `None` when both sides are real (a human correction against the recorded verdict).
    pub synthetic: Option<Synthetic>,
}

/// Ex-post correctness of the (effective) verdict of verifier stage `i`, and the rule that decided.
pub fn judge(idx: &RunIndex, i: usize, v: &VerifyStage) -> (Option<bool>, &'static str) {
    if v.label.is_some() {
        return (Some(true), "human_label");
    }
    let Some(verdict) = v.verdict else {
        return (None, "no_verdict");
    };
    match verdict {
        Verdict::End => match idx.outcome {
            Outcome::Success => (Some(true), "stop_then_success"),
            Outcome::Failure => (Some(false), "false_stop"),
            _ => (None, "outcome_unknown"),
        },
        Verdict::Continue => {
            if goal_already_met(idx, i, v) {
                (Some(false), "missed_stop")
            } else if idx.outcome == Outcome::Success {
                (Some(true), "continue_then_success")
            } else {
                (None, "continue_then_no_success")
            }
        }
        Verdict::Replan => {
            if needless_replan(idx, i) {
                (Some(false), "needless_replan")
            } else if idx.outcome == Outcome::Success {
                (Some(true), "replan_then_success")
            } else {
                (None, "replan_then_no_success")
            }
        }
    }
}

/// The goal was already met when verifier stage `i` judged: its evidence says so
/// (`evidence.goal_met == true`), or the run succeeded and this stage saw exactly the evidence
/// (non-empty) on which the final `end` was given — nothing changed after it, so the state
/// already satisfied the checker.
pub fn goal_already_met(idx: &RunIndex, i: usize, v: &VerifyStage) -> bool {
    if v.goal_met() {
        return true;
    }
    if idx.outcome != Outcome::Success {
        return false;
    }
    let Some((_, input)) = v.input else {
        return false;
    };
    if crate::quality::is_empty_value(&input.evidence) {
        return false;
    }
    let final_end = idx
        .stages
        .iter()
        .enumerate()
        .rev()
        .find_map(|(j, s)| match s {
            Stage::Verify(f) if f.verdict == Some(Verdict::End) => Some((j, f)),
            _ => None,
        });
    match final_end {
        Some((j, f)) if j > i => f.input.is_some_and(|(_, fi)| fi.evidence == input.evidence),
        _ => false,
    }
}

/// A replan whose next plan is the same as the plan before it, in a run that then succeeded.
pub fn needless_replan(idx: &RunIndex, i: usize) -> bool {
    if idx.outcome != Outcome::Success {
        return false;
    }
    let before = idx
        .plan_before(i)
        .and_then(|p| p.output.map(|(_, o)| &o.plan));
    let after = idx
        .plan_after(i)
        .and_then(|p| p.output.map(|(_, o)| &o.plan));
    match (before, after) {
        (Some(a), Some(b)) => same_plan(a, b),
        _ => false,
    }
}

/// Plans are the same when their steps have the same tools and (normalized) descriptions.
pub fn same_plan(a: &[PlanStep], b: &[PlanStep]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.tool == y.tool
                && crate::minhash::normalize_goal(&x.description)
                    == crate::minhash::normalize_goal(&y.description)
        })
}

fn recorded(v: &VerifyStage) -> Option<VerdictText> {
    let (_, o) = v.output?;
    Some(VerdictText {
        verdict: o.verdict,
        feedback: o.feedback.clone(),
        risk_flags: o.risk_flags.clone(),
    })
}

fn effective(v: &VerifyStage) -> Option<VerdictText> {
    let mut t = recorded(v)?;
    t.verdict = v.verdict?;
    t.feedback = v.feedback.clone();
    Some(t)
}

fn synth(verdict: Verdict, feedback: &str, risk: &[&str]) -> VerdictText {
    VerdictText {
        verdict,
        feedback: feedback.to_string(),
        risk_flags: risk.iter().map(|s| s.to_string()).collect(),
    }
}

/// The preference pairs of verifier stage `i` (zero or one).
pub fn pref_cases(idx: &RunIndex, i: usize, v: &VerifyStage, cfg: &PrefConfig) -> Vec<PrefCase> {
    let (Some(rec), Some(eff)) = (recorded(v), effective(v)) else {
        return Vec::new();
    };
    if v.label.is_some() {
        if rec.verdict != eff.verdict {
            return vec![PrefCase {
                rule: "human_correction",
                chosen: eff,
                rejected: rec,
                synthetic: None,
            }];
        }
        return Vec::new();
    }
    let case = match eff.verdict {
        Verdict::End if idx.outcome == Outcome::Failure => {
            let cycle_failed = idx.cycle_works(i).iter().any(|w| w.failed());
            let chosen = if cycle_failed || !eff.risk_flags.is_empty() {
                synth(
                    Verdict::Replan,
                    "The last step failed and the goal is not met; the plan has to change.",
                    &["unverified_completion"],
                )
            } else {
                synth(
                    Verdict::Continue,
                    "The evidence does not show that the goal is met yet; keep working on the plan.",
                    &["unverified_completion"],
                )
            };
            Some(PrefCase {
                rule: "false_stop",
                chosen,
                rejected: eff,
                synthetic: Some(Synthetic::Chosen),
            })
        }
        Verdict::Replan if needless_replan(idx, i) => Some(PrefCase {
            rule: "needless_replan",
            chosen: synth(
                Verdict::Continue,
                "The plan is progressing as intended; continue with it.",
                &[],
            ),
            rejected: eff,
            synthetic: Some(Synthetic::Chosen),
        }),
        Verdict::Continue if goal_already_met(idx, i, v) => Some(PrefCase {
            rule: "missed_stop",
            chosen: synth(
                Verdict::End,
                "The evidence shows the goal is met; stop here.",
                &[],
            ),
            rejected: eff,
            synthetic: Some(Synthetic::Chosen),
        }),
        Verdict::End
            if idx.outcome == Outcome::Success
                && cfg.synthesize_rejected_for_confirmed_stop
                && is_last_verdict(idx, i) =>
        {
            Some(PrefCase {
                rule: "confirmed_stop",
                chosen: eff,
                rejected: synth(Verdict::Continue, "Keep going with the plan.", &[]),
                synthetic: Some(Synthetic::Rejected),
            })
        }
        _ => None,
    };
    case.into_iter().collect()
}

fn is_last_verdict(idx: &RunIndex, i: usize) -> bool {
    !idx.stages
        .iter()
        .skip(i + 1)
        .any(|s| matches!(s, Stage::Verify(v) if v.verdict.is_some()))
}
