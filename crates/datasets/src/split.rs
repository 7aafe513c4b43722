//! Train / validation / test assignment of split units (goal families, joined by near-duplicate
//! goals; see `build::units`). Units never cross splits. They go, largest first, to the split
//! that brings the run shares closest to the targets and, when stratifying, each split's class
//! mix (outcomes, verdicts) closest to the corpus's; equal-size units are ordered by seed. A
//! split with a target above 0 is never left without a unit while another split holds two.

use crate::config::SplitConfig;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What the assignment knows of a unit: its runs, and its runs' counts per class (any fixed
/// indexing of the classes, the same for every unit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitProfile {
    pub runs: u64,
    pub classes: Vec<u64>,
}

/// Chi-square-like distance of `got` from `want`, summed over the splits with a target.
fn deviation(got: &[f64; 3], want: &[f64; 3], active: &[bool; 3]) -> f64 {
    (0..3)
        .filter(|&s| active[s])
        .map(|s| (got[s] - want[s]).powi(2) / want[s].max(1.0))
        .sum()
}

/// Assigns each unit to a split. Deterministic from `seed`; a split with target 0 gets nothing.
pub fn assign_units(units: &[UnitProfile], cfg: &SplitConfig, seed: u64) -> Vec<Split> {
    let target = cfg.targets();
    let active = target.map(|t| t > 0.0);
    let n_classes = units.iter().map(|u| u.classes.len()).max().unwrap_or(0);
    let total: f64 = units.iter().map(|u| u.runs).sum::<u64>() as f64;
    let class_totals: Vec<f64> = (0..n_classes)
        .map(|c| units.iter().map(|u| class(u, c)).sum())
        .collect();
    let want_runs = target.map(|t| t * total);
    let want_class: Vec<[f64; 3]> = class_totals.iter().map(|n| target.map(|t| t * n)).collect();

    let mut order: Vec<usize> = (0..units.len()).collect();
    SplitMix64::new(seed ^ 0x0053_504c_4954).shuffle(&mut order);
    order.sort_by(|a, b| units[*b].runs.cmp(&units[*a].runs)); // stable: seed orders equal sizes

    let mut runs = [0f64; 3];
    let mut classes = vec![[0f64; 3]; n_classes];
    let mut out = vec![Split::Train; units.len()];
    for u in order {
        let unit = &units[u];
        let mut best: Option<(f64, usize)> = None;
        for s in (0..3).filter(|&s| active[s]) {
            let mut trial = runs;
            trial[s] += unit.runs as f64;
            let mut cost = deviation(&trial, &want_runs, &active);
            if cfg.stratify {
                for (c, got) in classes.iter().enumerate() {
                    let mut t = *got;
                    t[s] += class(unit, c);
                    cost += deviation(&t, &want_class[c], &active);
                }
            }
            if best.is_none_or(|(c, _)| cost < c - 1e-9) {
                best = Some((cost, s));
            }
        }
        let s = best.map(|(_, s)| s).unwrap_or(0);
        runs[s] += unit.runs as f64;
        for (c, got) in classes.iter_mut().enumerate() {
            got[s] += class(unit, c);
        }
        out[u] = Split::ALL[s];
    }
    fill_empty_splits(units, &active, &mut out);
    out
}

fn class(u: &UnitProfile, c: usize) -> f64 {
    u.classes.get(c).copied().unwrap_or(0) as f64
}

/// Moves the smallest unit of the split holding the most units into each split with a target
/// that got none (possible when a few large units meet small targets).
fn fill_empty_splits(units: &[UnitProfile], active: &[bool; 3], out: &mut [Split]) {
    for empty in (0..3).filter(|&s| active[s]) {
        let count = |out: &[Split], s: usize| out.iter().filter(|x| **x == Split::ALL[s]).count();
        if count(out, empty) > 0 {
            continue;
        }
        let Some(donor) = (0..3)
            .filter(|&s| count(out, s) > 1)
            .max_by_key(|&s| (count(out, s), std::cmp::Reverse(s)))
        else {
            return;
        };
        let smallest = (0..units.len())
            .filter(|&u| out[u] == Split::ALL[donor])
            .min_by_key(|&u| (units[u].runs, u));
        if let Some(u) = smallest {
            out[u] = Split::ALL[empty];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(sizes: &[u64]) -> Vec<UnitProfile> {
        sizes
            .iter()
            .map(|&runs| UnitProfile {
                runs,
                classes: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn six_equal_families_fill_every_split() {
        let got = assign_units(&sized(&[20; 6]), &SplitConfig::default(), 1);
        let count = |s| got.iter().filter(|x| **x == s).count();
        assert_eq!(
            (
                count(Split::Train),
                count(Split::Validation),
                count(Split::Test)
            ),
            (4, 1, 1)
        );
    }

    #[test]
    fn many_families_approach_the_ratios_and_zero_ratio_gets_nothing() {
        let sizes: Vec<u64> = (0..100).map(|i| 1 + (i % 7)).collect();
        let got = assign_units(&sized(&sizes), &SplitConfig::default(), 3);
        let share = |s| {
            sizes
                .iter()
                .zip(&got)
                .filter(|(_, x)| **x == s)
                .map(|(n, _)| *n)
                .sum::<u64>() as f64
                / sizes.iter().sum::<u64>() as f64
        };
        assert!((share(Split::Train) - 0.8).abs() < 0.02);
        assert!((share(Split::Test) - 0.1).abs() < 0.02);
        let r = SplitConfig {
            train: 0.5,
            validation: 0.0,
            test: 0.5,
            ..Default::default()
        };
        assert!(!assign_units(&sized(&sizes), &r, 3).contains(&Split::Validation));
    }

    #[test]
    fn same_seed_same_assignment() {
        let units = sized(&[3, 3, 3, 3, 2, 2, 1, 1, 1, 1]);
        let r = SplitConfig::default();
        assert_eq!(assign_units(&units, &r, 9), assign_units(&units, &r, 9));
    }

    #[test]
    fn a_few_large_units_still_fill_every_split() {
        // Greedy alone puts 45 + 45 in train and leaves a target without a unit.
        let got = assign_units(&sized(&[45, 45, 5]), &SplitConfig::default(), 1);
        for s in Split::ALL {
            assert!(got.contains(&s), "{s:?} empty: {got:?}");
        }
    }

    #[test]
    fn stratifying_keeps_each_splits_class_mix_near_the_corpus() {
        // 40 units of 10 runs: half all-success, half all-failure. Sizes alone cannot tell them
        // apart; stratified, each split's success share stays near one half.
        let units: Vec<UnitProfile> = (0..40)
            .map(|i| UnitProfile {
                runs: 10,
                classes: if i < 20 { vec![10, 0] } else { vec![0, 10] },
            })
            .collect();
        let share = |cfg: &SplitConfig, s: Split| {
            let got = assign_units(&units, cfg, 5);
            let (mut ok, mut all) = (0, 0);
            for (u, x) in units.iter().zip(&got) {
                if *x == s {
                    ok += u.classes[0];
                    all += u.runs;
                }
            }
            ok as f64 / all as f64
        };
        let strat = SplitConfig::default();
        for s in Split::ALL {
            assert!(
                (share(&strat, s) - 0.5).abs() <= 0.25,
                "{s:?}: {}",
                share(&strat, s)
            );
        }
        assert!((share(&strat, Split::Train) - 0.5).abs() < 0.05);
    }
}
