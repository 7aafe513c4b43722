//! Class balance: what label each view's rows are balanced on (one definition, used by the
//! report, the checks and rebalancing), and the opt-in rebalancing of the written files
//! (down-sampling the majority class, or a weight per row), deterministic by seed.

use crate::build::{io_at, BuildError, BuildInputs};
use crate::config::Rebalance;
use crate::output::{AtomicFile, Written};
use crate::report::Report;
use crate::rng::hash_bytes;
use crate::rows::{Format, View};
use crate::split::Split;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The label a row of `view` is balanced on, read from its metadata: planner rows by the run's
/// outcome, worker rows by their tool status, verifier rows by their verdict, preference pairs
/// by their rule, recovery cases by their kind, KTO rows by desirability, stepwise rows by
/// whether every step was good.
pub fn class_of(view: View, metadata: &Value) -> String {
    let l = &metadata["labels"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    };
    match view {
        View::PlannerSft => text(&l["final_outcome"]),
        View::WorkerSft => text(&l["tool_status"]),
        View::VerifierSft => text(&l["verdict"]),
        View::VerifierPrefPairs => text(&l["rule"]),
        View::WorkerRecoveryCases => text(&l["recovery_kind"]),
        View::VerifierKto | View::WorkerKto => text(&l["desirable"]),
        View::WorkerPrm => text(&l["all_steps_good"]),
    }
}

/// The class mix of every view and split, and what rebalancing did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BalanceReport {
    /// What each view is balanced on.
    pub label_of_view: BTreeMap<String, &'static str>,
    /// view -> split -> class -> rows (after rebalancing).
    pub classes: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    pub rebalanced: Vec<Rebalanced>,
}

/// Rebalancing of one view in one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rebalanced {
    pub view: String,
    pub split: String,
    /// `downsample` or `weight`.
    pub method: String,
    pub before: BTreeMap<String, u64>,
    pub after: BTreeMap<String, u64>,
    /// Weight per class (`weight`), or keep rate per class (`downsample`).
    pub factor: BTreeMap<String, f64>,
}

impl BalanceReport {
    pub fn new() -> BalanceReport {
        let label_of_view = View::ALL
            .iter()
            .map(|v| {
                let what = match v {
                    View::PlannerSft => "labels.final_outcome",
                    View::WorkerSft => "labels.tool_status",
                    View::VerifierSft => "labels.verdict",
                    View::VerifierPrefPairs => "labels.rule",
                    View::WorkerRecoveryCases => "labels.recovery_kind",
                    View::VerifierKto | View::WorkerKto => "labels.desirable",
                    View::WorkerPrm => "labels.all_steps_good",
                };
                (v.as_str().to_owned(), what)
            })
            .collect();
        BalanceReport {
            label_of_view,
            ..Default::default()
        }
    }

    pub fn count(&mut self, view: View, split: Split, class: String) {
        *self
            .classes
            .entry(view.as_str().to_owned())
            .or_default()
            .entry(split.as_str().to_owned())
            .or_default()
            .entry(class)
            .or_default() += 1;
    }

    /// The class counts of a view in a split (empty when it has no rows).
    pub fn of(&self, view: &str, split: &str) -> BTreeMap<String, u64> {
        self.classes
            .get(view)
            .and_then(|s| s.get(split))
            .cloned()
            .unwrap_or_default()
    }
}

/// What to do with each class of one (view, split).
enum Plan {
    /// Keep at most this many rows of the class (the ones with the smallest seeded hash).
    Downsample {
        class: String,
        keep: u64,
        rate: f64,
    },
    Weight(BTreeMap<String, f64>),
}

/// The plan for one (view, split) under the config, or why there is none.
fn plan_for(
    counts: &BTreeMap<String, u64>,
    method: Rebalance,
    max_share: f64,
) -> Result<Option<Plan>, &'static str> {
    let total: u64 = counts.values().sum();
    if total == 0 || method == Rebalance::None {
        return Ok(None);
    }
    if counts.len() < 2 {
        return Err("one class only: nothing to balance against");
    }
    match method {
        Rebalance::None => Ok(None),
        Rebalance::Weight => {
            let k = counts.len() as f64;
            Ok(Some(Plan::Weight(
                counts
                    .iter()
                    .map(|(c, n)| (c.clone(), total as f64 / (k * *n as f64)))
                    .collect(),
            )))
        }
        Rebalance::Downsample => {
            let (class, majority) = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(c, n)| (c.clone(), *n))
                .unwrap_or_default();
            let others = total - majority;
            if majority as f64 <= max_share * total as f64 {
                return Ok(None);
            }
            // Largest m with m / (m + others) <= max_share.
            let keep = if max_share >= 1.0 {
                majority
            } else {
                ((max_share * others as f64) / (1.0 - max_share)).floor() as u64
            };
            let keep = keep.clamp(1, majority);
            Ok(Some(Plan::Downsample {
                class,
                keep,
                rate: keep as f64 / majority as f64,
            }))
        }
    }
}

/// Rewrites the files of every (view, split) the config rebalances; updates the row counts,
/// the class mix and `written`.
pub(crate) fn rebalance_outputs(
    inputs: &BuildInputs,
    rep: &mut Report,
    written: &mut [Written],
) -> Result<(), BuildError> {
    let b = &inputs.config.balance;
    if b.rebalance == Rebalance::None {
        return Ok(());
    }
    let views: Vec<View> = View::for_format(inputs.format)
        .iter()
        .copied()
        .filter(|v| b.views.is_empty() || b.views.iter().any(|x| x == v.as_str()))
        .collect();
    let splits: BTreeSet<&str> = b.splits.iter().map(String::as_str).collect();
    for split in Split::ALL
        .into_iter()
        .filter(|s| splits.contains(s.as_str()))
    {
        for &view in &views {
            let before = rep.balance.of(view.as_str(), split.as_str());
            let plan = match plan_for(&before, b.rebalance, b.max_majority_share) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(why) => {
                    rep.add_warning(
                        "",
                        &format!(
                            "rebalance {} {}: not rebalanced ({why})",
                            view.as_str(),
                            split.as_str()
                        ),
                    );
                    continue;
                }
            };
            let done = rewrite(inputs, view, split, &plan, written)?;
            let factor = match &plan {
                Plan::Weight(w) => w.clone(),
                Plan::Downsample { class, rate, .. } => before
                    .keys()
                    .map(|c| (c.clone(), if c == class { *rate } else { 1.0 }))
                    .collect(),
            };
            if let Some(m) = rep.rows.get_mut(split.as_str()) {
                m.insert(view.as_str().to_owned(), done.values().sum());
            }
            rep.balance
                .classes
                .entry(view.as_str().to_owned())
                .or_default()
                .insert(split.as_str().to_owned(), done.clone());
            rep.balance.rebalanced.push(Rebalanced {
                view: view.as_str().to_owned(),
                split: split.as_str().to_owned(),
                method: match plan {
                    Plan::Weight(_) => "weight".into(),
                    Plan::Downsample { .. } => "downsample".into(),
                },
                before,
                after: done,
                factor,
            });
        }
    }
    Ok(())
}

/// A written row and its OpenAI metadata line, if any.
struct WrittenRow {
    row: Value,
    side: Option<Value>,
}

impl WrittenRow {
    fn metadata(&self) -> &Value {
        self.side.as_ref().unwrap_or(&self.row["metadata"])
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, BuildError> {
    let f = std::fs::File::open(path).map_err(io_at(path))?;
    BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io_at(path))
}

/// Applies a plan to one view's file (and its OpenAI sidecar, line for line); returns the
/// class counts written.
fn rewrite(
    inputs: &BuildInputs,
    view: View,
    split: Split,
    plan: &Plan,
    written: &mut [Written],
) -> Result<BTreeMap<String, u64>, BuildError> {
    let rows_path = crate::build::view_path(&inputs.out, split, view);
    let side_path = crate::build::sidecar_path(&inputs.out, split, view);
    let openai = inputs.format == Format::Openai;
    let rows = read_lines(&rows_path)?;
    let sides = if openai {
        read_lines(&side_path)?
    } else {
        Vec::new()
    };
    let parse = |line: &str, path: &Path| -> Result<Value, BuildError> {
        serde_json::from_str(line).map_err(|e| BuildError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
    };
    let mut parsed: Vec<WrittenRow> = Vec::with_capacity(rows.len());
    for (i, line) in rows.iter().enumerate() {
        let side = match sides.get(i) {
            Some(s) => Some(parse(s, &side_path)?),
            None => None,
        };
        parsed.push(WrittenRow {
            row: parse(line, &rows_path)?,
            side,
        });
    }
    let keep = kept_lines(inputs.seed, view, split, plan, &parsed);
    let mut out_rows = AtomicFile::create(&rows_path).map_err(io_at(&rows_path))?;
    let mut out_side = if openai {
        Some(AtomicFile::create(&side_path).map_err(io_at(&side_path))?)
    } else {
        None
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (i, WrittenRow { mut row, mut side }) in parsed.into_iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let meta = side.as_mut().unwrap_or(&mut row["metadata"]);
        let class = class_of(view, meta);
        let note = match plan {
            Plan::Weight(w) => {
                json!({"method": "weight", "class": class, "sample_weight": w.get(&class).copied().unwrap_or(1.0)})
            }
            Plan::Downsample { class: c, rate, .. } => {
                json!({"method": "downsample", "class": class, "keep_rate": if *c == class { *rate } else { 1.0 }})
            }
        };
        if let Some(m) = meta.as_object_mut() {
            m.insert("balance".into(), note);
        }
        *counts.entry(class).or_default() += 1;
        out_rows.write_json_line(&row).map_err(io_at(&rows_path))?;
        if let (Some(f), Some(s)) = (out_side.as_mut(), side.as_ref()) {
            f.write_json_line(s).map_err(io_at(&side_path))?;
        }
    }
    let mut commit = |f: AtomicFile, p: &Path| -> Result<(), BuildError> {
        let w = f.commit().map_err(io_at(p))?;
        if let Some(slot) = written.iter_mut().find(|x| x.path == w.path) {
            *slot = w;
        }
        Ok(())
    };
    commit(out_rows, &rows_path)?;
    if let Some(f) = out_side {
        commit(f, &side_path)?;
    }
    Ok(counts)
}

/// Which lines survive: every line, except for down-sampling, where the majority class keeps
/// the `keep` lines with the smallest hash of (seed, view, split, line number).
fn kept_lines(
    seed: u64,
    view: View,
    split: Split,
    plan: &Plan,
    parsed: &[WrittenRow],
) -> Vec<bool> {
    let mut keep = vec![true; parsed.len()];
    let Plan::Downsample { class, keep: n, .. } = plan else {
        return keep;
    };
    let salt = hash_bytes(
        format!("{}/{}", view.as_str(), split.as_str()).as_bytes(),
        seed ^ 0x5245_4241_4c41_4e43,
    );
    let mut majority: Vec<(u64, usize)> = parsed
        .iter()
        .enumerate()
        .filter(|(_, r)| class_of(view, r.metadata()) == *class)
        .map(|(i, _)| (hash_bytes(&(i as u64).to_le_bytes(), salt), i))
        .collect();
    majority.sort_unstable();
    for &(_, i) in majority.iter().skip(*n as usize) {
        keep[i] = false;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    #[test]
    fn downsampling_cuts_the_majority_to_the_share() {
        let c = counts(&[("continue", 95), ("end", 3), ("replan", 2)]);
        let Ok(Some(Plan::Downsample { class, keep, .. })) =
            plan_for(&c, Rebalance::Downsample, 0.6)
        else {
            panic!("expected a downsample plan");
        };
        assert_eq!(class, "continue");
        // 7 / (7 + 5) <= 0.6 < 8 / 13
        assert_eq!(keep, 7);
        assert!(matches!(
            plan_for(&counts(&[("a", 5), ("b", 5)]), Rebalance::Downsample, 0.6),
            Ok(None)
        ));
        assert!(plan_for(&counts(&[("a", 5)]), Rebalance::Weight, 0.6).is_err());
    }

    #[test]
    fn weights_make_classes_count_equally() {
        let c = counts(&[("a", 90), ("b", 10)]);
        let Ok(Some(Plan::Weight(w))) = plan_for(&c, Rebalance::Weight, 0.9) else {
            panic!("expected weights");
        };
        assert!((w["a"] * 90.0 - w["b"] * 10.0).abs() < 1e-9);
        assert!((w["a"] * 90.0 + w["b"] * 10.0 - 100.0).abs() < 1e-9);
    }
}
