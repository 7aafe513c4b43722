//! Near-duplicate goal detection: MinHash signatures over word shingles (hand-rolled, seeded)
//! and LSH banding to find candidate pairs, confirmed by estimated Jaccard similarity and merged
//! into clusters with a union-find. Clusters are what the split keeps together.

use crate::rng::{hash_bytes, SplitMix64};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Parameters of the near-duplicate search (part of the build config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearDupConfig {
    /// Words per shingle (goals shorter than this are one shingle).
    pub shingle_words: usize,
    /// LSH bands; `bands * rows` is the signature length.
    pub bands: usize,
    pub rows: usize,
    /// Estimated Jaccard similarity at or above which two goals are near-duplicates.
    pub threshold: f64,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        // 16 bands x 8 rows: the S-curve's midpoint is (1/16)^(1/8) ~ 0.71, matching the threshold.
        Self {
            shingle_words: 3,
            bands: 16,
            rows: 8,
            threshold: 0.7,
        }
    }
}

/// Normalized goal text: lowercase, every non-alphanumeric character a space, whitespace
/// collapsed. `goal_hash` is defined on this text.
pub fn normalize_goal(goal: &str) -> String {
    let mapped: String = goal
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The word shingles of a normalized text (deduplicated, sorted).
pub fn shingles(normalized: &str, k: usize) -> Vec<String> {
    let words: Vec<&str> = normalized.split_whitespace().collect();
    let k = k.max(1);
    let mut out: Vec<String> = if words.len() <= k {
        vec![words.join(" ")]
    } else {
        words.windows(k).map(|w| w.join(" ")).collect()
    };
    out.sort();
    out.dedup();
    out
}

/// A seeded family of hash functions; the same seed gives the same signatures.
#[derive(Debug, Clone)]
pub struct MinHasher {
    seeds: Vec<u64>,
    config: NearDupConfig,
}

impl MinHasher {
    pub fn new(config: &NearDupConfig, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x6D69_6E68_6173_6821);
        let n = config.bands.max(1) * config.rows.max(1);
        Self {
            seeds: (0..n).map(|_| rng.next_u64()).collect(),
            config: config.clone(),
        }
    }

    /// MinHash signature of a (raw) goal text.
    pub fn signature(&self, goal: &str) -> Vec<u64> {
        let sh = shingles(&normalize_goal(goal), self.config.shingle_words);
        self.seeds
            .iter()
            .map(|s| {
                sh.iter()
                    .map(|x| hash_bytes(x.as_bytes(), *s))
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }
}

/// Fraction of equal positions: the MinHash estimate of Jaccard similarity.
pub fn estimated_jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len() as f64
}

/// Union-find over `0..n` with path halving; the smaller index becomes the root, so cluster
/// representatives do not depend on merge order.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }
}

/// Near-duplicate clusters of the given signatures: `result[i]` is the smallest index of the
/// cluster of item `i`. Pairs are candidates when any LSH band matches, and merged when their
/// estimated Jaccard similarity reaches the threshold. Builds use the spilled variant; this
/// in-memory one is the reference the tests check it against.
#[cfg(test)]
pub fn near_duplicate_clusters(signatures: &[Vec<u64>], config: &NearDupConfig) -> Vec<usize> {
    let mut uf = UnionFind::new(signatures.len());
    let rows = config.rows.max(1);
    for band in 0..config.bands.max(1) {
        let mut buckets: BTreeMap<&[u64], Vec<usize>> = BTreeMap::new();
        for (i, sig) in signatures.iter().enumerate() {
            let lo = band * rows;
            if let Some(slice) = sig.get(lo..lo + rows) {
                buckets.entry(slice).or_default().push(i);
            }
        }
        for members in buckets.values() {
            let first = members[0];
            for &other in &members[1..] {
                if estimated_jaccard(&signatures[first], &signatures[other]) >= config.threshold {
                    uf.union(first, other);
                } else {
                    // The band matched but the whole signature does not: check against every
                    // member, since similarity is not transitive.
                    for &m in members {
                        if m != other
                            && estimated_jaccard(&signatures[m], &signatures[other])
                                >= config.threshold
                        {
                            uf.union(m, other);
                        }
                    }
                }
            }
        }
    }
    (0..signatures.len()).map(|i| uf.find(i)).collect()
}

/// [`near_duplicate_clusters`] over signatures spilled to `file` (each `sig_len` little-endian
/// u64s, back to back; run `i` is record `records[i]`), so peak memory does not grow with the
/// signatures (1 KiB per run by default): each band is read sequentially into its buckets (
/// `rows` values per run), and only the members of a bucket with more than one run have their
/// full signature read back. Same clusters as the in-memory version.
pub fn near_duplicate_clusters_spilled(
    file: &std::fs::File,
    records: &[usize],
    sig_len: usize,
    config: &NearDupConfig,
) -> std::io::Result<Vec<usize>> {
    use std::io::{BufReader, Read, Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    // Full signature of the i-th clustered record.
    let read_full = |i: usize| -> std::io::Result<Vec<u64>> {
        let rec = records[i];
        let mut b = vec![0u8; sig_len * 8];
        file.read_exact_at(&mut b, (rec * sig_len * 8) as u64)?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    };
    let mut uf = UnionFind::new(records.len());
    let rows = config.rows.max(1);
    let n_records = records.iter().copied().max().map_or(0, |m| m + 1);
    // Position of each record in `records` (+1; 0 = not clustered), so that band slices are
    // kept for the clustered records only.
    let mut slot = vec![0u32; n_records];
    for (i, &rec) in records.iter().enumerate() {
        slot[rec] = u32::try_from(i + 1).unwrap_or(0);
    }
    for band in 0..config.bands.max(1) {
        let lo = band * rows;
        if lo + rows > sig_len {
            continue;
        }
        // Band slices of the clustered records, read in one sequential pass.
        let mut slices: Vec<u64> = vec![0; records.len() * rows];
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut sig = vec![0u8; sig_len * 8];
        for &at in &slot {
            r.read_exact(&mut sig)?;
            let Some(i) = (at as usize).checked_sub(1) else {
                continue;
            };
            let band = sig[lo * 8..(lo + rows) * 8].chunks_exact(8);
            for (dst, c) in slices[i * rows..(i + 1) * rows].iter_mut().zip(band) {
                *dst = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            }
        }
        let mut buckets: BTreeMap<&[u64], Vec<usize>> = BTreeMap::new();
        for i in 0..records.len() {
            buckets
                .entry(&slices[i * rows..(i + 1) * rows])
                .or_default()
                .push(i);
        }
        for members in buckets.values().filter(|m| m.len() > 1) {
            link_bucket(members, &read_full, config.threshold, &mut uf)?;
        }
    }
    Ok((0..records.len()).map(|i| uf.find(i)).collect())
}

/// Buckets up to this size have their members' full signatures read once and held (4 MiB at
/// most with the default 128 values); larger ones are read back a signature at a time.
const MAX_HELD_MEMBERS: usize = 4096;

/// Links the members of one LSH bucket whose estimated similarity reaches the threshold: each
/// member is compared with the first, and, when not similar to it, with every other member.
fn link_bucket(
    members: &[usize],
    read_full: &dyn Fn(usize) -> std::io::Result<Vec<u64>>,
    threshold: f64,
    uf: &mut UnionFind,
) -> std::io::Result<()> {
    let held: Vec<Vec<u64>> = if members.len() <= MAX_HELD_MEMBERS {
        members
            .iter()
            .map(|&i| read_full(i))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let sig_of = |x: usize| -> std::io::Result<std::borrow::Cow<'_, [u64]>> {
        match held.get(x) {
            Some(s) => Ok(std::borrow::Cow::Borrowed(s.as_slice())),
            None => Ok(std::borrow::Cow::Owned(read_full(members[x])?)),
        }
    };
    let first = sig_of(0)?;
    for (j, &other) in members.iter().enumerate().skip(1) {
        let sig = sig_of(j)?;
        if estimated_jaccard(&first, &sig) >= threshold {
            uf.union(members[0], other);
            continue;
        }
        for (x, &m) in members.iter().enumerate() {
            if x != j && estimated_jaccard(&sig_of(x)?, &sig) >= threshold {
                uf.union(m, other);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_punctuation_and_spacing() {
        assert_eq!(
            normalize_goal("  Sum the COLUMN, in data.csv! "),
            "sum the column in data csv"
        );
    }

    #[test]
    fn near_duplicates_cluster_and_different_goals_do_not() {
        let cfg = NearDupConfig::default();
        let mh = MinHasher::new(&cfg, 42);
        let goals = [
            "Find every TODO comment in the src directory and count them by file please",
            "find every todo comment in the src directory and count them by file, please!",
            "Find every TODO comment in the src directory and count them by file please now",
            "Convert 12 miles to kilometres and round the result to two decimals",
        ];
        let sigs: Vec<_> = goals.iter().map(|g| mh.signature(g)).collect();
        assert_eq!(estimated_jaccard(&sigs[0], &sigs[1]), 1.0);
        let c = near_duplicate_clusters(&sigs, &cfg);
        assert_eq!(c[0], 0);
        assert_eq!(c[1], 0);
        assert_eq!(c[2], 0, "one extra word keeps it a near-duplicate");
        assert_eq!(c[3], 3);
    }

    #[test]
    fn spilled_clusters_equal_in_memory_clusters() {
        use std::io::Write;
        let cfg = NearDupConfig::default();
        let h = MinHasher::new(&cfg, 7);
        let words = [
            "sum", "the", "column", "of", "sales", "csv", "report", "total", "amount",
        ];
        let goals: Vec<String> = (0..300usize)
            .map(|i| {
                (0..8)
                    .map(|j| words[(i * 7 + j * (i % 5 + 1)) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
                    + &format!(" {}", i % 40)
            })
            .collect();
        let sigs: Vec<Vec<u64>> = goals.iter().map(|g| h.signature(g)).collect();
        let mut file = tempfile::tempfile().unwrap();
        for s in &sigs {
            for v in s {
                file.write_all(&v.to_le_bytes()).unwrap();
            }
        }
        // A subset, as after exact dedup: every third run left out.
        let records: Vec<usize> = (0..sigs.len()).filter(|i| i % 3 != 1).collect();
        let subset: Vec<Vec<u64>> = records.iter().map(|&i| sigs[i].clone()).collect();
        let mem = near_duplicate_clusters(&subset, &cfg);
        let spilled =
            near_duplicate_clusters_spilled(&file, &records, sigs[0].len(), &cfg).unwrap();
        assert_eq!(mem, spilled);
        assert!(
            mem.iter().enumerate().any(|(i, &c)| c != i),
            "the fixture has near-duplicates"
        );
    }

    #[test]
    fn signatures_depend_on_the_seed_only() {
        let cfg = NearDupConfig::default();
        let a = MinHasher::new(&cfg, 1).signature("a b c d");
        assert_eq!(a, MinHasher::new(&cfg, 1).signature("a b c d"));
        assert_ne!(a, MinHasher::new(&cfg, 2).signature("a b c d"));
        assert_eq!(a.len(), cfg.bands * cfg.rows);
    }
}
