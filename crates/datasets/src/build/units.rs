//! Split units: goal families joined by near-duplicate goals, so that no goal and none of its
//! near-duplicates is in two splits. Joins are bounded: a link that would make a unit larger than
//! `split.max_unit_share` of the runs is not made; the near-duplicate runs on the far side of it
//! are cut from the build instead (and reported), so templated goals cannot chain a whole corpus
//! into one unit and leave the evaluation splits empty.

use super::scan::{KeyNames, RunKey};
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
pub(crate) fn plan_units(
    kept: &[RunKey],
    names: &KeyNames,
    clusters: &[usize],
    cfg: &SplitConfig,
) -> UnitPlan {
    let families: Vec<&str> = {
        let mut f: Vec<&str> = kept.iter().map(|k| names.family(k)).collect();
        f.sort_unstable();
        f.dedup();
        f
    };
    let fam_of: Vec<usize> = kept
        .iter()
        .map(|k| families.binary_search(&names.family(k)).unwrap_or(0))
        .collect();
    let max_unit_runs = ((cfg.max_unit_share * kept.len() as f64).floor() as u64).max(1);
    let cross = cross_family_clusters(clusters, &fam_of);
    let run_id = |m: usize| names.name(&kept[m]).to_string();
    let ctx = Families {
        names: &families,
        fam_of: &fam_of,
        run_id: &run_id,
    };
    let (mut uf, joins, refused) = join_families(&ctx, &cross, max_unit_runs);
    let (cut, cuts) = cut_spanning_clusters(&ctx, &cross, &mut uf);
    let p = unit_profiles(&ctx, &mut uf, kept, &cut);
    UnitPlan {
        unit_of_run: p.unit_of_run,
        units: p.units,
        unit_families: p.unit_families,
        joins,
        refused,
        cuts,
        max_unit_runs,
    }
}

/// The families of the kept runs, and how to name a run.
struct Families<'a> {
    names: &'a [&'a str],
    fam_of: &'a [usize],
    run_id: &'a dyn Fn(usize) -> String,
}

impl Families<'_> {
    /// A run of the cluster in family `fam`.
    fn example(&self, c: &CrossCluster, fam: usize) -> String {
        c.members
            .iter()
            .find(|&&m| self.fam_of[m] == fam)
            .map(|&m| (self.run_id)(m))
            .unwrap_or_default()
    }
}

/// Joins families along each cross-family cluster while the joined unit stays within the cap;
/// unit sizes live at the union-find roots.
fn join_families(
    f: &Families,
    cross: &[CrossCluster],
    max_unit_runs: u64,
) -> (UnionFind, Vec<FamilyJoin>, Vec<RefusedJoin>) {
    let mut uf = UnionFind::new(f.names.len());
    let mut size = vec![0u64; f.names.len()];
    for &fam in f.fam_of {
        size[fam] += 1;
    }
    let (mut joins, mut refused) = (Vec::new(), Vec::new());
    for c in cross {
        let base = c.families[0].0;
        for &(fam, _) in &c.families[1..] {
            let (rb, rf) = (uf.find(base), uf.find(fam));
            if rb == rf {
                continue;
            }
            let pair = [f.names[base].to_string(), f.names[fam].to_string()];
            let example_runs = [f.example(c, base), f.example(c, fam)];
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
    (uf, joins, refused)
}

/// A cluster still spanning units keeps the unit holding most of its runs; its other runs are
/// cut. Returns the cut flag of every kept run and the cut runs.
fn cut_spanning_clusters(
    f: &Families,
    cross: &[CrossCluster],
    uf: &mut UnionFind,
) -> (Vec<bool>, Vec<CutRun>) {
    let mut cut = vec![false; f.fam_of.len()];
    let mut cuts = Vec::new();
    for c in cross {
        let mut per_unit: BTreeMap<usize, u64> = BTreeMap::new();
        for &m in &c.members {
            *per_unit.entry(uf.find(f.fam_of[m])).or_default() += 1;
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
            .find(|&&m| uf.find(f.fam_of[m]) == keep)
            .map(|&m| (f.run_id)(m))
            .unwrap_or_default();
        for &m in &c.members {
            if uf.find(f.fam_of[m]) != keep {
                cut[m] = true;
                cuts.push(CutRun {
                    run_id: (f.run_id)(m),
                    family: f.names[f.fam_of[m]].to_owned(),
                    near_duplicate_of: kept_example.clone(),
                });
            }
        }
    }
    (cut, cuts)
}

/// The final units: profiles, families, and the unit of every kept run.
struct Profiles {
    units: Vec<UnitProfile>,
    unit_families: Vec<Vec<String>>,
    unit_of_run: Vec<Option<usize>>,
}

/// Compact unit ids (by smallest family index), each unit's families and class profile, and
/// the unit of every kept run (`None` when cut).
fn unit_profiles(f: &Families, uf: &mut UnionFind, kept: &[RunKey], cut: &[bool]) -> Profiles {
    let roots: Vec<usize> = (0..f.names.len()).map(|fam| uf.find(fam)).collect();
    let mut root_ids: Vec<usize> = roots.clone();
    root_ids.sort_unstable();
    root_ids.dedup();
    let unit_of_fam: Vec<usize> = roots
        .iter()
        .map(|r| root_ids.binary_search(r).unwrap_or(0))
        .collect();
    let mut units = vec![UnitProfile::default(); root_ids.len()];
    let mut unit_families = vec![Vec::new(); root_ids.len()];
    for (fam, name) in f.names.iter().enumerate() {
        unit_families[unit_of_fam[fam]].push(name.to_string());
    }
    let mut unit_of_run = Vec::with_capacity(kept.len());
    for (i, k) in kept.iter().enumerate() {
        if cut[i] {
            unit_of_run.push(None);
            continue;
        }
        let u = unit_of_fam[f.fam_of[i]];
        let p = &mut units[u];
        p.runs += 1;
        let classes = k.classes();
        p.classes.resize(classes.len(), 0);
        for (x, n) in p.classes.iter_mut().zip(classes) {
            *x += n;
        }
        unit_of_run.push(Some(u));
    }
    Profiles {
        units,
        unit_families,
        unit_of_run,
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
