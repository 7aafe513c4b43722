//! The build configuration (`--config FILE`): split ratios, near-duplicate search, quality
//! policy and preference-pair options. Its canonical-JSON hash goes into the manifest.

use crate::minhash::NearDupConfig;
use serde::{Deserialize, Serialize};

/// Everything that changes what a build writes, besides the inputs, seed and format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    pub split: SplitRatios,
    pub near_dup: NearDupConfig,
    pub dedup: DedupConfig,
    pub quality: QualityConfig,
    pub prefs: PrefConfig,
    pub rows: RowsConfig,
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

/// Target shares of runs per split; they need not sum to 1 (they are normalized).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitRatios {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
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

impl BuildConfig {
    /// Checks values serde cannot (ratios, band sizes).
    pub fn check(&self) -> Result<(), String> {
        let r = &self.split;
        for (name, v) in [
            ("split.train", r.train),
            ("split.validation", r.validation),
            ("split.test", r.test),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        if r.train + r.validation + r.test <= 0.0 {
            return Err("split ratios must not all be 0".into());
        }
        let n = &self.near_dup;
        if n.bands == 0 || n.rows == 0 || n.shingle_words == 0 {
            return Err("near_dup.bands, rows and shingle_words must be >= 1".into());
        }
        if !(0.0..=1.0).contains(&n.threshold) {
            return Err(format!(
                "near_dup.threshold must be in [0, 1], got {}",
                n.threshold
            ));
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
        assert!(c.check().unwrap_err().contains("split.test"));
        assert_ne!(c.hash(), h);
    }
}
