//! `traj-redact`: the redaction policy engine that runs at the source (before payloads become
//! span attributes), optionally in the receiver (before raw storage) and in dataset builds.
//!
//! No regex: every detector is a small hand-rolled byte scanner, linear in the input. When
//! nothing matches, [`Policy::redact_str`] returns `Cow::Borrowed` and allocates nothing.
//! See `docs/redaction.md` for the detectors' heuristics and the placeholder format.

mod detect;
mod kind;
mod matcher;
mod policy;
mod text;

pub use kind::{Counts, PiiKind};
pub use policy::{
    PlaceholderStyle, Policy, PolicyConfig, PolicyError, RedactMemo, DETECTORS_VERSION, MAX_PASSES,
    MEMO_MIN_LEN,
};
