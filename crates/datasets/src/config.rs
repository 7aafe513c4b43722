//! The build configuration (`--config FILE`): split ratios, near-duplicate search, quality
//! policy and preference-pair options. Its canonical-JSON hash goes into the manifest.

use crate::minhash::NearDupConfig;
use serde::{Deserialize, Serialize};

/// Everything that changes what a build writes, besides the inputs, seed and format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    pub split: SplitConfig,
    pub near_dup: NearDupConfig,
    pub dedup: DedupConfig,
    pub quality: QualityConfig,
    pub prefs: PrefConfig,
    pub rows: RowsConfig,
    pub balance: BalanceConfig,
}

/// How rows are made from the recorded LLM conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RowsConfig {
    /// `step` (one multi-turn row per step) or `call` (one row per LLM call).
    pub llm_rows: crate::llm_rows::LlmRows,
    /// The synthetic side of a verifier preference pair, when the recorded answer was plain text:
    /// `{verdict}` and `{feedback}` are filled in (a JSON answer is mirrored key for key instead).
    pub synthetic_verdict_template: String,
}

impl Default for RowsConfig {
    fn default() -> Self {
        Self {
            llm_rows: crate::llm_rows::LlmRows::Step,
            synthetic_verdict_template: "{verdict}: {feedback}".into(),
        }
    }
}

/// How runs are split: target shares (they need not sum to 1; they are normalized), how far
/// near-duplicate goals may join goal families, and what a split must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
    /// Largest share of the kept runs one split unit (goal families joined by near-duplicate
    /// goals) may reach. A near-duplicate link that would make a unit larger is cut instead:
    /// the cluster's runs outside the unit holding most of them are left out (and reported).
    /// The default, about a third, leaves at least three units wherever joins are the cause.
    pub max_unit_share: f64,
    /// Keep each split's outcome and verdict mix close to the corpus's when assigning units
    /// (stratified grouped assignment); off: sizes only.
    pub stratify: bool,
    /// A split with a target share above 0 must hold at least this many rows of every view that
    /// has rows at all; fewer fails the build (`split_thin`), unless `allow_thin_splits`.
    pub min_rows_per_view: u64,
    /// Report empty or thin splits as warnings instead of failing the build.
    pub allow_thin_splits: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
            max_unit_share: 0.34,
            stratify: true,
            min_rows_per_view: 1,
            allow_thin_splits: false,
        }
    }
}

impl SplitConfig {
    /// The target shares in split order, normalized to sum to 1.
    pub fn targets(&self) -> [f64; 3] {
        let raw = [self.train, self.validation, self.test];
        let sum: f64 = raw.iter().sum();
        raw.map(|r| if sum > 0.0 { r / sum } else { 0.0 })
    }
}

/// Class-balance checks on every view and split, and opt-in rebalancing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalanceConfig {
    /// Warn (`majority_share`) when one class holds more than this share of a view's rows in a split.
    pub max_majority_share: f64,
    /// Warn (`min_class_count`) when a class seen in the view has fewer rows than this in a split.
    pub min_class_count: u64,
    /// `none`, `downsample` (the majority class is cut to `max_majority_share`, rows chosen by
    /// seed) or `weight` (every row gets `metadata.balance.sample_weight`, classes weighted equally).
    pub rebalance: Rebalance,
    /// Views to rebalance (empty: every view with classes).
    pub views: Vec<String>,
    /// Splits to rebalance (default: train only; evaluation splits keep the real mix).
    pub splits: Vec<String>,
}

/// Opt-in rebalancing of the class mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rebalance {
    None,
    Downsample,
    Weight,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            max_majority_share: 0.9,
            min_class_count: 1,
            rebalance: Rebalance::None,
            views: Vec::new(),
            splits: vec!["train".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop runs whose `(goal_hash, key_steps_hash, final_outcome)` was already kept.
    pub enabled: bool,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// What to do with a run whose events have broken lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenLineagePolicy {
    /// Quarantine the run (default): rows would carry incomplete lineage.
    Quarantine,
    /// Keep the run, count it in the report.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    pub broken_lineage: BrokenLineagePolicy,
    /// Quarantine runs whose source reported dropped spans (incomplete runs).
    pub quarantine_dropped_spans: bool,
    /// Copy quarantined input files under `OUT/quarantine/<run_id>/` up to this size each;
    /// larger files are only referenced.
    pub quarantine_copy_max_bytes: u64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            broken_lineage: BrokenLineagePolicy::Quarantine,
            quarantine_dropped_spans: true,
            quarantine_copy_max_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefConfig {
    /// Rule `confirmed_stop`: a correct `end` (goal met, run succeeded) also yields a pair with a
    /// synthesized `continue` as the rejected side.
    pub synthesize_rejected_for_confirmed_stop: bool,
}

impl Default for PrefConfig {
    fn default() -> Self {
        Self {
            synthesize_rejected_for_confirmed_stop: true,
        }
    }
}

/// A value of a [`BuildConfig`] that deserializes but makes no sense (see [`BuildConfig::check`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} must be a finite number >= 0, got {value}")]
    NegativeOrNotFinite { key: &'static str, value: f64 },
    #[error("split ratios must not all be 0")]
    AllSplitRatiosZero,
    #[error("{key} must be in {range}, got {value}")]
    OutOfRange {
        key: &'static str,
        range: &'static str,
        value: f64,
    },
    #[error("{key}: unknown {what} {value:?}")]
    Unknown {
        key: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("near_dup.bands, rows and shingle_words must be >= 1")]
    EmptyNearDupSketch,
}

impl BuildConfig {
    /// Checks values serde cannot (ratios, band sizes).
    pub fn check(&self) -> Result<(), ConfigError> {
        let r = &self.split;
        for (key, value) in [
            ("split.train", r.train),
            ("split.validation", r.validation),
            ("split.test", r.test),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(ConfigError::NegativeOrNotFinite { key, value });
            }
        }
        if r.train + r.validation + r.test <= 0.0 {
            return Err(ConfigError::AllSplitRatiosZero);
        }
        if !(r.max_unit_share > 0.0 && r.max_unit_share <= 1.0) {
            return Err(ConfigError::OutOfRange {
                key: "split.max_unit_share",
                range: "(0, 1]",
                value: r.max_unit_share,
            });
        }
        let b = &self.balance;
        if !(b.max_majority_share > 0.0 && b.max_majority_share <= 1.0) {
            return Err(ConfigError::OutOfRange {
                key: "balance.max_majority_share",
                range: "(0, 1]",
                value: b.max_majority_share,
            });
        }
        for v in &b.views {
            if crate::rows::View::parse(v).is_none() {
                return Err(ConfigError::Unknown {
                    key: "balance.views",
                    what: "view",
                    value: v.clone(),
                });
            }
        }
        for sp in &b.splits {
            if crate::split::Split::parse(sp).is_none() {
                return Err(ConfigError::Unknown {
                    key: "balance.splits",
                    what: "split",
                    value: sp.clone(),
                });
            }
        }
        let n = &self.near_dup;
        if n.bands == 0 || n.rows == 0 || n.shingle_words == 0 {
            return Err(ConfigError::EmptyNearDupSketch);
        }
        if !(0.0..=1.0).contains(&n.threshold) {
            return Err(ConfigError::OutOfRange {
                key: "near_dup.threshold",
                range: "[0, 1]",
                value: n.threshold,
            });
        }
        Ok(())
    }

    /// `sha256:<hex>` of the canonical JSON of the config.
    pub fn hash(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        traj_schema::hashing::hash_json(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_fills_defaults_and_unknown_keys_fail() {
        let c: BuildConfig = serde_json::from_str(r#"{"split": {"train": 0.7}}"#).unwrap();
        assert_eq!(c.split.train, 0.7);
        assert_eq!(c.split.test, 0.1);
        assert!(c.dedup.enabled);
        assert!(serde_json::from_str::<BuildConfig>(r#"{"splitt": {}}"#).is_err());
    }

    #[test]
    fn bad_values_are_refused_and_hash_tracks_content() {
        let mut c = BuildConfig::default();
        assert!(c.check().is_ok());
        let h = c.hash();
        c.split.test = -1.0;
        let err = c.check().unwrap_err();
        assert_eq!(
            err,
            ConfigError::NegativeOrNotFinite {
                key: "split.test",
                value: -1.0
            }
        );
        assert_eq!(
            err.to_string(),
            "split.test must be a finite number >= 0, got -1"
        );
        assert_ne!(c.hash(), h);
    }
}
