//! `traj-datasets`: turns assembled runs into role datasets — planner / worker / verifier SFT,
//! verifier preference pairs, worker recovery cases, KTO and stepwise rows — with a second
//! redaction pass, quality checks and quarantine, dedup, near-duplicate-aware leak-free splits
//! with bounded joins, class-balance checks and rebalancing, a report, a dataset card and a
//! manifest.
//! See `docs/datasets.md` for the formats and the labelling rules.

pub mod balance;
pub mod build;
pub mod card;
pub mod checks;
pub mod config;
pub mod labels;
pub mod llm_rows;
pub mod minhash;
pub mod output;
pub mod prefs;
pub mod quality;
pub mod redact;
pub mod report;
mod report_markdown;
pub mod reward_rows;
pub mod rng;
pub mod rows;
pub mod runview;
pub mod split;
pub mod synth;
pub mod views;

pub use build::{build, BuildError, BuildInputs, BuildSummary, Quarantined};
pub use checks::{Check, Severity};
pub use config::BuildConfig;
pub use labels::{HumanLabel, LabelError, Labels};
pub use redact::Redactor;
pub use report::Report;
pub use rows::{Format, Row, View};
pub use split::Split;
pub use synth::generate_corpus;

/// The redaction policy of dataset builds (`traj-dataset`: every detector of `traj-redact`).
pub fn dataset_redaction_policy() -> traj_redact::Policy {
    traj_redact::Policy::default_dataset()
}
