//! The second-pass redaction of dataset rows: every string of every row except the lineage
//! identifiers (ids and hashes that traj generated) goes through a [`Redactor`]; the build
//! counts what it replaced by kind. [`traj_redact::Policy`] is the real one.

use serde_json::Value;
use std::collections::BTreeMap;
pub use traj_redact::RedactMemo;

/// Redacts strings in place and counts replacements by kind (`email`, `api_key`, ...). Shared by
/// the build's worker threads, hence `Sync`.
pub trait Redactor: Sync {
    fn name(&self) -> String;
    fn version(&self) -> String;
    fn redact_value(&self, value: &mut Value, counts: &mut BTreeMap<String, u64>);

    /// [`Redactor::redact_value`] with texts seen before answered from `memo` (same result);
    /// by default the memo is not used.
    fn redact_value_memo(
        &self,
        value: &mut Value,
        counts: &mut BTreeMap<String, u64>,
        memo: &mut RedactMemo,
    ) {
        let _ = memo;
        self.redact_value(value, counts);
    }
}

impl Redactor for traj_redact::Policy {
    fn name(&self) -> String {
        traj_redact::Policy::name(self).to_string()
    }

    fn version(&self) -> String {
        traj_redact::Policy::version(self).to_string()
    }

    fn redact_value(&self, value: &mut Value, counts: &mut BTreeMap<String, u64>) {
        add_counts(counts, &self.redact_json(value));
    }

    fn redact_value_memo(
        &self,
        value: &mut Value,
        counts: &mut BTreeMap<String, u64>,
        memo: &mut RedactMemo,
    ) {
        add_counts(counts, &self.redact_json_memo(value, memo));
    }
}

fn add_counts(counts: &mut BTreeMap<String, u64>, c: &traj_redact::Counts) {
    for (kind, n) in c.iter() {
        *counts.entry(kind.as_str().to_string()).or_insert(0) += n;
    }
}

/// Metadata keys that hold traj-generated identifiers, never free text: left unredacted so
/// lineage stays joinable (a 32-digit hex id would otherwise look like a secret).
pub const LINEAGE_KEYS: &[&str] = &[
    "run_id",
    "trace_id",
    "span_ids",
    "event_ids",
    "goal_hash",
    "config_hash",
    "prompt_hash",
    "toolset_hash",
];

/// Redacts a rendered row (TRL or OpenAI) or a metadata sidecar line in place. `memo` holds the
/// results of texts already seen by this redactor (rows repeat tool schemas and prompts).
pub fn redact_row(
    row: &mut Value,
    r: &dyn Redactor,
    counts: &mut BTreeMap<String, u64>,
    memo: &mut RedactMemo,
) {
    let Value::Object(map) = row else {
        r.redact_value_memo(row, counts, memo);
        return;
    };
    let is_metadata_line = map.contains_key("run_id") && map.contains_key("event_ids");
    for (k, v) in map.iter_mut() {
        if is_metadata_line {
            if !LINEAGE_KEYS.contains(&k.as_str()) {
                r.redact_value_memo(v, counts, memo);
            }
        } else if k == "metadata" {
            if let Value::Object(meta) = v {
                for (mk, mv) in meta.iter_mut() {
                    if !LINEAGE_KEYS.contains(&mk.as_str()) {
                        r.redact_value_memo(mv, counts, memo);
                    }
                }
            }
        } else {
            r.redact_value_memo(v, counts, memo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_is_redacted_and_lineage_ids_are_kept() {
        let policy = traj_redact::Policy::default_dataset();
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let mut row = json!({
            "messages": [{"role": "user", "content": "mail alice@example.com please"}],
            "metadata": {"run_id": id, "event_ids": [id], "labels": {"feedback": "call +1 415 555 0100"}},
        });
        let mut counts = BTreeMap::new();
        redact_row(&mut row, &policy, &mut counts, &mut RedactMemo::default());
        let text = row.to_string();
        assert!(!text.contains("alice@example.com"), "{text}");
        assert_eq!(row["metadata"]["run_id"], id);
        assert_eq!(counts.get("email"), Some(&1));
    }

    #[test]
    fn the_memo_gives_the_same_rows_and_counts_as_no_memo() {
        let policy = traj_redact::Policy::default_dataset();
        let long = "please mail alice@example.com the report, and call +1 415 555 0100 after";
        let clean = "a long tool description without anything personal in it at all";
        let row = json!({
            "messages": [{"role": "user", "content": long}, {"role": "assistant", "content": clean}],
            "tools": [{"description": clean}, {"description": long}],
            "metadata": {"run_id": "4bf92f3577b34da6a3ce929d0e0e4736", "event_ids": [], "note": long},
        });
        let (mut plain, mut plain_counts) = (BTreeMap::new(), Vec::new());
        let mut memo = RedactMemo::default();
        let mut memo_counts = BTreeMap::new();
        for _ in 0..3 {
            let mut a = row.clone();
            redact_row(&mut a, &policy, &mut plain, &mut RedactMemo::default());
            let mut b = row.clone();
            redact_row(&mut b, &policy, &mut memo_counts, &mut memo);
            assert_eq!(a, b);
            plain_counts.push(a);
        }
        assert_eq!(plain, memo_counts);
        assert_eq!(plain.get("email"), Some(&9));
    }
}
