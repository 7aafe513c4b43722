//! `traj-datasets`: turns assembled runs into role datasets — planner / worker / verifier SFT,
//! verifier preference pairs, worker recovery cases, KTO and stepwise rows — with a second
//! redaction pass, quality checks and quarantine, dedup, near-duplicate-aware leak-free splits
//! with bounded joins, class-balance checks and rebalancing, a report, a dataset card and a
//! manifest.
//! See `docs/datasets.md` for the formats and the labelling rules.

// Public modules: the build configuration (every type a `BuildConfig` field holds) and the
// synthetic run generator the tests, the benchmarks and `traj bench` / `traj demo` use.
pub mod config;
pub mod synth;

// Everything else is reached through the re-exports below.
mod balance;
mod build;
mod card;
mod checks;
mod compact;
mod labels;
mod llm_rows;
mod minhash;
mod output;
mod par;
mod prefs;
mod quality;
mod redact;
mod report;
mod report_markdown;
mod reward_rows;
mod rng;
mod rows;
mod runview;
mod split;
mod views;

pub use build::{build, BuildError, BuildInputs, BuildSummary, Quarantined};
pub use checks::{Check, Severity};
pub use config::{BuildConfig, ConfigError};
pub use labels::{BadLabel, HumanLabel, LabelError, Labels};
pub use minhash::NearDupConfig;
pub use output::sha256_hex;
pub use redact::Redactor;
pub use report::Report;
pub use rows::{Completion, Format, Msg, Row, RowError, TurnError, View};
pub use runview::RunIndex;
pub use split::Split;
pub use synth::generate_corpus;
pub use views::run_rows;

/// The redaction policy of dataset builds (`traj-dataset`: every detector of `traj-redact`).
pub fn dataset_redaction_policy() -> traj_redact::Policy {
    traj_redact::Policy::default_dataset()
}
