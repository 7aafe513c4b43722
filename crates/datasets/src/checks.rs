//! The named checks of a build, each with its threshold from the config: splits that came out
//! empty or thin (errors: the CLI exits non-zero unless `split.allow_thin_splits`), split shares
//! far from their targets, near-duplicate cuts, and the class balance of every view and split.

use crate::config::BuildConfig;
use crate::report::Report;
use crate::rows::View;
use crate::split::Split;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `split_empty`, `split_thin`, `split_share`, `near_duplicate_cuts`, `majority_share`,
    /// `one_class`, `min_class_count`.
    pub name: &'static str,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    pub value: f64,
    pub threshold: f64,
    pub message: String,
}

/// Every check of the report; the failed ones are returned.
pub fn run_checks(rep: &Report, cfg: &BuildConfig) -> Vec<Check> {
    let mut out = Vec::new();
    split_checks(rep, cfg, &mut out);
    balance_checks(rep, cfg, &mut out);
    out
}

fn split_checks(rep: &Report, cfg: &BuildConfig, out: &mut Vec<Check>) {
    let hard = if cfg.split.allow_thin_splits {
        Severity::Warning
    } else {
        Severity::Error
    };
    let targets = cfg.split.targets();
    let kept = rep.runs.kept.max(1) as f64;
    for (s, split) in Split::ALL.iter().enumerate() {
        if targets[s] <= 0.0 {
            continue;
        }
        let runs = rep.splits.get(split.as_str()).map_or(0, |st| st.runs);
        if runs == 0 {
            out.push(Check {
                name: "split_empty",
                severity: hard,
                split: Some(split.as_str().into()),
                view: None,
                value: 0.0,
                threshold: 1.0,
                message: format!(
                    "{} has no runs although its target share is {:.2}: {} split unit(s) for {} runs (see split_units)",
                    split.as_str(),
                    targets[s],
                    rep.split_units.units.len(),
                    rep.runs.kept
                ),
            });
            continue;
        }
        let share = runs as f64 / kept;
        if share < 0.5 * targets[s] {
            out.push(Check {
                name: "split_share",
                severity: Severity::Warning,
                split: Some(split.as_str().into()),
                view: None,
                value: share,
                threshold: 0.5 * targets[s],
                message: format!(
                    "{} holds {:.3} of the runs, less than half its target {:.2}",
                    split.as_str(),
                    share,
                    targets[s]
                ),
            });
        }
        for view in View::ALL {
            let rows_anywhere: u64 = rep.rows.values().filter_map(|m| m.get(view.as_str())).sum();
            let rows = rep.rows_in(*split, view);
            let min = cfg.split.min_rows_per_view;
            if rows_anywhere > 0 && rows < min {
                out.push(Check {
                    name: "split_thin",
                    severity: hard,
                    split: Some(split.as_str().into()),
                    view: Some(view.as_str().into()),
                    value: rows as f64,
                    threshold: min as f64,
                    message: format!(
                        "{} has {rows} {} rows (minimum {min}; {rows_anywhere} in all splits)",
                        split.as_str(),
                        view.as_str()
                    ),
                });
            }
        }
    }
    let cut = rep.runs.cut_near_duplicates;
    if cut > 0 && cut as f64 > 0.05 * (rep.runs.kept + cut) as f64 {
        out.push(Check {
            name: "near_duplicate_cuts",
            severity: Severity::Warning,
            split: None,
            view: None,
            value: cut as f64 / (rep.runs.kept + cut) as f64,
            threshold: 0.05,
            message: format!(
                "{cut} runs were left out to keep near-duplicate goals in one split (over 5%); raise split.max_unit_share or give templated goals their own goal family"
            ),
        });
    }
}

fn balance_checks(rep: &Report, cfg: &BuildConfig, out: &mut Vec<Check>) {
    let b = &cfg.balance;
    for (view, by_split) in &rep.balance.classes {
        let seen: std::collections::BTreeSet<&String> =
            by_split.values().flat_map(|m| m.keys()).collect();
        if seen.len() < 2 {
            continue;
        }
        for (split, counts) in by_split {
            let total: u64 = counts.values().sum();
            if total == 0 {
                continue;
            }
            let at = |name, severity, value, threshold, message| Check {
                name,
                severity,
                split: Some(split.clone()),
                view: Some(view.clone()),
                value,
                threshold,
                message,
            };
            let (top, top_n) = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(c, n)| (c.as_str(), *n))
                .unwrap_or(("", 0));
            let share = top_n as f64 / total as f64;
            let one_class = counts.values().filter(|n| **n > 0).count() == 1;
            if one_class {
                out.push(at(
                    "one_class",
                    Severity::Warning,
                    1.0,
                    seen.len() as f64,
                    format!("{view} in {split}: every row is `{top}` ({total} rows); the view has {} classes", seen.len()),
                ));
            } else if share > b.max_majority_share {
                out.push(at(
                    "majority_share",
                    Severity::Warning,
                    share,
                    b.max_majority_share,
                    format!(
                        "{view} in {split}: `{top}` holds {:.1}% of {total} rows (over {:.0}%)",
                        share * 100.0,
                        b.max_majority_share * 100.0
                    ),
                ));
            }
            for class in &seen {
                let n = counts.get(*class).copied().unwrap_or(0);
                // A class missing from a one-class split is already named by `one_class`.
                if n < b.min_class_count && !(one_class && n == 0) {
                    out.push(at(
                        "min_class_count",
                        Severity::Warning,
                        n as f64,
                        b.min_class_count as f64,
                        format!(
                            "{view} in {split}: class `{class}` has {n} rows (minimum {})",
                            b.min_class_count
                        ),
                    ));
                }
            }
        }
    }
}
