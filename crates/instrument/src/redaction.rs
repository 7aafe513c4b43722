//! The single boundary between the span helpers and source-side redaction: every payload,
//! goal, rendered prompt, message and error text passes through here before it becomes an
//! attribute. The policy is `traj_redact::Policy::default_source()` (secrets, cards, e-mail,
//! phone, IBAN, national ids); its name and version are recorded on every root span.

use serde_json::Value;
use std::borrow::Cow;
use std::sync::OnceLock;
use traj_redact::Policy;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(Policy::default_source)
}

/// Name recorded in `traj.redaction.policy`.
pub fn policy_name() -> &'static str {
    policy().name()
}

/// Version recorded in `traj.redaction.version`.
pub fn policy_version() -> &'static str {
    policy().version()
}

/// Redacts a JSON payload in place; returns how many values were replaced.
pub(crate) fn redact_json(v: &mut Value) -> u64 {
    policy().redact_json(v).total()
}

/// Redacts free text (goals, rendered prompts, messages). Borrowed when nothing matched.
pub(crate) fn redact_str(s: &str) -> Cow<'_, str> {
    policy().redact_str(s).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_attributes() {
        let mut v = serde_json::json!({"note": "mail alice@example.com now", "n": 3});
        assert!(redact_json(&mut v) >= 1);
        assert!(!v.to_string().contains("alice@example.com"), "{v}");
        assert_eq!(v["n"], 3);
        assert!(!redact_str("contact bob@example.org").contains("bob@example.org"));
        assert!(matches!(redact_str("nothing here"), Cow::Borrowed(_)));
        assert_eq!(policy_name(), "traj-source");
        assert!(!policy_version().is_empty());
    }
}
