//! Train / validation / test assignment by goal family: families joined by near-duplicate goals
//! form units that never cross splits; units go, largest first, to the split that brings the
//! shares closest to the target ratios (ties by split order; equal-size units ordered by seed).

use crate::config::SplitRatios;
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
}

/// Assigns each unit (given by its size, e.g. number of runs) to a split. Deterministic from
/// `seed`; a split with ratio 0 gets nothing.
pub fn assign_units(sizes: &[u64], ratios: &SplitRatios, seed: u64) -> Vec<Split> {
    let raw = [ratios.train, ratios.validation, ratios.test];
    let sum: f64 = raw.iter().sum();
    let target: Vec<f64> = raw
        .iter()
        .map(|r| if sum > 0.0 { r / sum } else { 0.0 })
        .collect();
    let total: f64 = sizes.iter().sum::<u64>() as f64;

    let mut order: Vec<usize> = (0..sizes.len()).collect();
    SplitMix64::new(seed ^ 0x0053_504c_4954).shuffle(&mut order);
    order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a])); // stable: seed orders equal sizes

    let mut assigned = [0f64; 3];
    let mut out = vec![Split::Train; sizes.len()];
    for u in order {
        let size = sizes[u] as f64;
        let mut best: Option<(f64, usize)> = None;
        for s in 0..3 {
            if target[s] <= 0.0 {
                continue;
            }
            let mut trial = assigned;
            trial[s] += size;
            let cost: f64 = (0..3)
                .filter(|&k| target[k] > 0.0)
                .map(|k| {
                    let want = target[k] * total;
                    (trial[k] - want).powi(2) / want.max(f64::MIN_POSITIVE)
                })
                .sum();
            if best.is_none_or(|(c, _)| cost < c - 1e-12) {
                best = Some((cost, s));
            }
        }
        let s = best.map(|(_, s)| s).unwrap_or(0);
        assigned[s] += size;
        out[u] = Split::ALL[s];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_equal_families_fill_every_split() {
        let got = assign_units(&[20; 6], &SplitRatios::default(), 1);
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
        let got = assign_units(&sizes, &SplitRatios::default(), 3);
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
        let r = SplitRatios {
            train: 0.5,
            validation: 0.0,
            test: 0.5,
        };
        assert!(!assign_units(&sizes, &r, 3).contains(&Split::Validation));
    }

    #[test]
    fn same_seed_same_assignment() {
        let sizes = [3, 3, 3, 3, 2, 2, 1, 1, 1, 1];
        let r = SplitRatios::default();
        assert_eq!(assign_units(&sizes, &r, 9), assign_units(&sizes, &r, 9));
    }
}
