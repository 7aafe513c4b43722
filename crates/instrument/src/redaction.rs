//! The single boundary between the span helpers and source-side redaction: every payload,
//! goal and rendered prompt passes through here before it becomes an attribute.
//!
//! Until the `traj-redact` crate lands this is the identity with policy `none` (recorded as
//! such on the root span, so downstream knows the source did not redact). Swapping in
//! `traj_redact::Policy::default_source()` only changes this file.

use serde_json::Value;
use std::borrow::Cow;

/// Name recorded in `traj.redaction.policy`.
pub fn policy_name() -> &'static str {
    "none"
}

/// Version recorded in `traj.redaction.version`.
pub fn policy_version() -> &'static str {
    "0"
}

/// Redacts a JSON payload in place; returns how many values were changed.
pub(crate) fn redact_json(_v: &mut Value) -> usize {
    0
}

/// Redacts free text (goals, rendered prompts, messages).
pub(crate) fn redact_str(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}
