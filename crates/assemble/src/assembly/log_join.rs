//! Log records joined to the spans they name (content some instrumentations send as OTLP logs).

use super::tree::Tree;
use crate::log_record::LogEntry;
use crate::warnings::Warnings;
use std::collections::HashMap;
use traj_schema::Role;

/// The trace's log records by the node of the span they name, each list in time order. Records
/// naming no span, a span that never arrived, or a span that is not an LLM call are counted in a
/// warning (they stay in raw storage).
pub(super) fn join_logs<'l>(
    tree: &Tree,
    logs: &'l [LogEntry],
    w: &mut Warnings,
) -> Vec<Vec<&'l LogEntry>> {
    let idx = tree.idx;
    let mut out: Vec<Vec<&'l LogEntry>> = vec![Vec::new(); idx.nodes.len()];
    let (mut no_span, mut not_llm) = (0u64, 0u64);
    let mut missing: HashMap<[u8; 8], u64> = HashMap::new();
    for l in logs {
        let Some(sid) = l.span_id() else {
            no_span += 1;
            continue;
        };
        match idx.by_id.get(&sid) {
            Some(&i) if tree.role(i) == Some(Role::Llm) => out[i].push(l),
            Some(_) => not_llm += 1,
            None => *missing.entry(sid).or_default() += 1,
        }
    }
    for list in &mut out {
        list.sort_by_key(|l| {
            (
                l.record
                    .time_unix_nano
                    .max(l.record.observed_time_unix_nano),
                l.record.event_name.clone(),
            )
        });
    }
    if no_span > 0 {
        w.push(format!(
            "{no_span} log records name no span; not joined (kept in raw storage)"
        ));
    }
    if not_llm > 0 {
        w.push(format!(
            "{not_llm} log records belong to spans that are not LLM calls; not used"
        ));
    }
    let mut missing: Vec<_> = missing.into_iter().collect();
    missing.sort();
    for (sid, count) in missing {
        w.push(format!(
            "{count} log records name span {} that never arrived; not joined (kept in raw storage)",
            hex::encode(sid)
        ));
    }
    out
}
