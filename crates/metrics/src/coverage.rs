//! Collection coverage (the seed plan's "matrix coverage with fixed and random seeds"): runs per
//! configuration × goal family × seed kind, with the empty and thin cells named, so a data team
//! sees which parts of the matrix were never (or barely) collected.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use traj_schema::Session;

/// Seed kind of runs that did not record `traj.seed_kind`.
pub const UNRECORDED: &str = "unrecorded";

/// Cells beyond this many are counted but not listed (configs × families × kinds can explode).
const MAX_LISTED_CELLS: usize = 5_000;

/// One cell of the coverage matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageCell {
    pub config_hash: String,
    pub goal_family: String,
    /// `fixed`, `random` or `unrecorded`.
    pub seed_kind: String,
    pub runs: u64,
    /// `ok`, `thin` (fewer than `thin_below` runs) or `empty`.
    pub status: String,
}

/// The coverage matrix of a set of runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub configs: Vec<String>,
    pub goal_families: Vec<String>,
    /// Always `fixed` and `random` (the plan asks for both), plus `unrecorded` when runs lack it.
    pub seed_kinds: Vec<String>,
    /// A cell with fewer runs than this (but at least one) is thin.
    pub thin_below: u64,
    pub cells: Vec<CoverageCell>,
    /// Cells of the product not listed in `cells` (past the listing cap).
    pub cells_omitted: u64,
    pub empty_cells: u64,
    pub thin_cells: u64,
}

/// Counts runs per cell.
#[derive(Debug, Clone, Default)]
pub struct CoverageAcc {
    runs: BTreeMap<(String, String, String), u64>,
}

impl CoverageAcc {
    pub fn add(&mut self, s: &Session) {
        let kind = s.seed_kind.map(|k| k.as_str()).unwrap_or(UNRECORDED);
        *self
            .runs
            .entry((
                s.config_hash.clone(),
                s.goal_family.clone(),
                kind.to_owned(),
            ))
            .or_default() += 1;
    }

    /// The full product of seen configs, families and kinds, each cell classified.
    pub fn finish(&self, thin_below: u64) -> Coverage {
        let configs: BTreeSet<&str> = self.runs.keys().map(|k| k.0.as_str()).collect();
        let families: BTreeSet<&str> = self.runs.keys().map(|k| k.1.as_str()).collect();
        let mut kinds = vec!["fixed".to_owned(), "random".to_owned()];
        if self.runs.keys().any(|k| k.2 == UNRECORDED) {
            kinds.push(UNRECORDED.to_owned());
        }
        let mut cov = Coverage {
            configs: configs.iter().map(|s| s.to_string()).collect(),
            goal_families: families.iter().map(|s| s.to_string()).collect(),
            seed_kinds: kinds.clone(),
            thin_below,
            ..Default::default()
        };
        for c in &configs {
            for f in &families {
                for k in &kinds {
                    let runs = self
                        .runs
                        .get(&(c.to_string(), f.to_string(), k.clone()))
                        .copied()
                        .unwrap_or(0);
                    let status = match runs {
                        0 => "empty",
                        n if n < thin_below => "thin",
                        _ => "ok",
                    };
                    match status {
                        "empty" => cov.empty_cells += 1,
                        "thin" => cov.thin_cells += 1,
                        _ => {}
                    }
                    if cov.cells.len() < MAX_LISTED_CELLS {
                        cov.cells.push(CoverageCell {
                            config_hash: c.to_string(),
                            goal_family: f.to_string(),
                            seed_kind: k.clone(),
                            runs,
                            status: status.to_owned(),
                        });
                    } else {
                        cov.cells_omitted += 1;
                    }
                }
            }
        }
        cov
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::RunBuilder;
    use traj_schema::{Outcome, SeedKind, Verdict};

    fn session(n: u64, config: &str, family: &str, kind: Option<SeedKind>) -> Session {
        let (mut s, _) = RunBuilder::new(n)
            .verdict(Verdict::End)
            .finish(Outcome::Success);
        s.config_hash = config.into();
        s.goal_family = family.into();
        s.seed_kind = kind;
        s
    }

    #[test]
    fn empty_and_thin_cells_are_named() {
        let mut acc = CoverageAcc::default();
        for n in 0..5 {
            acc.add(&session(n, "c1", "fam-a", Some(SeedKind::Fixed)));
        }
        acc.add(&session(9, "c1", "fam-a", Some(SeedKind::Random)));
        acc.add(&session(10, "c2", "fam-b", None));
        let cov = acc.finish(3);
        assert_eq!(cov.seed_kinds, ["fixed", "random", "unrecorded"]);
        // 2 configs x 2 families x 3 kinds.
        assert_eq!(cov.cells.len(), 12);
        let cell = |c: &str, f: &str, k: &str| {
            cov.cells
                .iter()
                .find(|x| x.config_hash == c && x.goal_family == f && x.seed_kind == k)
                .cloned()
                .unwrap()
        };
        assert_eq!(cell("c1", "fam-a", "fixed").status, "ok");
        assert_eq!(cell("c1", "fam-a", "random").status, "thin");
        assert_eq!(cell("c1", "fam-b", "fixed").status, "empty");
        assert_eq!(cell("c2", "fam-b", "unrecorded").runs, 1);
        assert_eq!(cov.thin_cells, 2);
        assert_eq!(cov.empty_cells, 12 - 3);
    }
}
