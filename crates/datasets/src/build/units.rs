//! Split units: goal families joined by near-duplicate goals, so that no goal and none of its
//! near-duplicates is in two splits. Joins are bounded: a link that would make a unit larger than
//! `split.max_unit_share` of the runs is not made; the near-duplicate runs on the far side of it
//! are cut from the build instead (and reported), so templated goals cannot chain a whole corpus
//! into one unit and leave the evaluation splits empty.

use super::scan::RunKey;
use crate::config::SplitConfig;
use crate::minhash::UnionFind;
use crate::split::UnitProfile;
use serde::Serialize;
use std::collections::BTreeMap;

/// Two goal families put in one unit, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyJoin {
    pub families: [String; 2],
    /// A run of each family whose goals are near-duplicates of each other.
    pub example_runs: [String; 2],
    /// Runs of the near-duplicate cluster that made the link.
    pub cluster_runs: u64,
}

/// A link not made because the joined unit would have been too large.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusedJoin {
    pub families: [String; 2],
    pub example_runs: [String; 2],
    /// Runs the joined unit would have held, and the cap.
    pub unit_runs: u64,
    pub max_unit_runs: u64,
}

/// A run left out so that its near-duplicates stay in one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutRun {
    pub run_id: String,
    pub family: String,
    /// A run of the cluster that was kept (in another unit).
    pub near_duplicate_of: String,
}

/// The units of a build and how they came to be.
pub(crate) struct UnitPlan {
    /// Per kept run: its unit, or `None` when cut.
    pub unit_of_run: Vec<Option<usize>>,
    pub units: Vec<UnitProfile>,
    /// Families of each unit, sorted.
    pub unit_families: Vec<Vec<String>>,
    pub joins: Vec<FamilyJoin>,
    pub refused: Vec<RefusedJoin>,
    pub cuts: Vec<CutRun>,
    pub max_unit_runs: u64,
}

/// A near-duplicate cluster that spans several families.
struct CrossCluster {
    members: Vec<usize>,
    /// (family index, runs of the cluster in it), most runs first.
    families: Vec<(usize, u64)>,
}

/// Decides the units: families first, then bounded joins along cross-family near-duplicate
/// clusters (largest cluster first), then cuts where a cluster still spans units.
pub(crate) fn plan_units(kept: &[RunKey], clusters: &[usize], cfg: &SplitConfig) -> UnitPlan {
    let families: Vec<&str> = {
        let mut f: Vec<&str> = kept.iter().map(|k| k.family.as_str()).collect();
        f.sort_unstable();
        f.dedup();
        f
    };
    let fam_of: Vec<usize> = kept
        .iter()
        .map(|k| families.binary_search(&k.family.as_str()).unwrap_or(0))
        .collect();
    let mut fam_runs = vec![0u64; families.len()];
    for &f in &fam_of {
        fam_runs[f] += 1;
    }
    let max_unit_runs = ((cfg.max_unit_share * kept.len() as f64).floor() as u64).max(1);
    let cross = cross_family_clusters(clusters, &fam_of);

    // Joins, bounded by the cap; unit sizes live at the union-find roots.
    let mut uf = UnionFind::new(families.len());
    let mut size = fam_runs.clone();
    let (mut joins, mut refused) = (Vec::new(), Vec::new());
    let example = |c: &CrossCluster, fam: usize| -> String {
        c.members
            .iter()
            .find(|&&m| fam_of[m] == fam)
            .map(|&m| kept[m].dir.run_id.clone())
            .unwrap_or_default()
    };
    for c in &cross {
        let base = c.families[0].0;
        for &(f, _) in &c.families[1..] {
            let (rb, rf) = (uf.find(base), uf.find(f));
            if rb == rf {
                continue;
            }
            let pair = [families[base].to_string(), families[f].to_string()];
            let example_runs = [example(c, base), example(c, f)];
            let joined = size[rb] + size[rf];
            if joined <= max_unit_runs {
                uf.union(rb, rf);
                size[uf.find(rb)] = joined;
                joins.push(FamilyJoin {
                    families: pair,
                    example_runs,
                    cluster_runs: c.members.len() as u64,
                });
            } else {
                refused.push(RefusedJoin {
                    families: pair,
                    example_runs,
                    unit_runs: joined,
                    max_unit_runs,
                });
            }
        }
    }

    // Cuts: a cluster still spanning units keeps the unit holding most of its runs.
    let mut cut = vec![false; kept.len()];
    let mut cuts = Vec::new();
    for c in &cross {
        let mut per_unit: BTreeMap<usize, u64> = BTreeMap::new();
        for &m in &c.members {
            *per_unit.entry(uf.find(fam_of[m])).or_default() += 1;
        }
        if per_unit.len() < 2 {
            continue;
        }
        let keep = per_unit
            .iter()
            .max_by_key(|(u, n)| (**n, std::cmp::Reverse(**u)))
            .map(|(u, _)| *u)
            .unwrap_or(0);
        let kept_example = c
            .members
            .iter()
            .find(|&&m| uf.find(fam_of[m]) == keep)
            .map(|&m| kept[m].dir.run_id.clone())
            .unwrap_or_default();
        for &m in &c.members {
            if uf.find(fam_of[m]) != keep {
                cut[m] = true;
                cuts.push(CutRun {
                    run_id: kept[m].dir.run_id.clone(),
                    family: kept[m].family.clone(),
                    near_duplicate_of: kept_example.clone(),
                });
            }
        }
    }

    // Compact unit ids (by smallest family index) and their profiles.
    let roots: Vec<usize> = (0..families.len()).map(|f| uf.find(f)).collect();
    let mut root_ids: Vec<usize> = roots.clone();
    root_ids.sort_unstable();
    root_ids.dedup();
    let unit_of_fam: Vec<usize> = roots
        .iter()
        .map(|r| root_ids.binary_search(r).unwrap_or(0))
        .collect();
    let mut units = vec![UnitProfile::default(); root_ids.len()];
    let mut unit_families = vec![Vec::new(); root_ids.len()];
    for (f, name) in families.iter().enumerate() {
        unit_families[unit_of_fam[f]].push(name.to_string());
    }
    let mut unit_of_run = Vec::with_capacity(kept.len());
    for (i, k) in kept.iter().enumerate() {
        if cut[i] {
            unit_of_run.push(None);
            continue;
        }
        let u = unit_of_fam[fam_of[i]];
        let p = &mut units[u];
        p.runs += 1;
        let classes = k.classes();
        p.classes.resize(classes.len(), 0);
        for (x, n) in p.classes.iter_mut().zip(classes) {
            *x += n;
        }
        unit_of_run.push(Some(u));
    }
    UnitPlan {
        unit_of_run,
        units,
        unit_families,
        joins,
        refused,
        cuts,
        max_unit_runs,
    }
}

/// The near-duplicate clusters with runs in more than one family, largest first (ties by their
/// representative, so the order does not depend on anything but the inputs).
fn cross_family_clusters(clusters: &[usize], fam_of: &[usize]) -> Vec<CrossCluster> {
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in clusters.iter().enumerate() {
        members.entry(c).or_default().push(i);
    }
    let mut out: Vec<(usize, CrossCluster)> = members
        .into_iter()
        .filter_map(|(rep, members)| {
            let mut per: BTreeMap<usize, u64> = BTreeMap::new();
            for &m in &members {
                *per.entry(fam_of[m]).or_default() += 1;
            }
            if per.len() < 2 {
                return None;
            }
            let mut families: Vec<(usize, u64)> = per.into_iter().collect();
            families.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Some((rep, CrossCluster { members, families }))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.members
            .len()
            .cmp(&a.1.members.len())
            .then(a.0.cmp(&b.0))
    });
    out.into_iter().map(|(_, c)| c).collect()
}
