//! Quality checks of one run (missing keys, broken lineage, inconsistent ids) and the per-run
//! shape used to find schema drift across runs and agent configs.

use crate::config::{BrokenLineagePolicy, QualityConfig};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use traj_schema::{is_valid_run_id, Event, Lineage, Session};

/// What the checks found in one run. Any `hard` finding quarantines the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub hard: Vec<String>,
    pub warnings: Vec<String>,
    pub broken_lineage_events: u64,
}

/// Checks one run read from directory `dir_run_id`.
pub fn check_run(
    dir_run_id: &str,
    session: &Session,
    events: &[Event],
    cfg: &QualityConfig,
) -> Findings {
    let mut f = Findings::default();
    if session.run_id != dir_run_id || !is_valid_run_id(&session.run_id) {
        f.hard.push(format!(
            "session.json: run_id {:?} does not match the directory {dir_run_id}",
            session.run_id
        ));
    }
    // The run format version (`schema_version`) is checked by `traj_runs::read_run`, which
    // reads only runs of the version this build knows.
    for (key, value) in [
        ("goal", &session.goal),
        ("goal_family", &session.goal_family),
    ] {
        if value.trim().is_empty() {
            f.hard.push(format!("session.json: missing key {key}"));
        }
    }
    for (key, value) in [
        ("config_hash", &session.config_hash),
        ("prompt_hash", &session.prompt_hash),
        ("toolset_hash", &session.toolset_hash),
    ] {
        if value.is_empty() {
            f.warnings.push(format!("session.json: missing key {key}"));
        }
    }
    if cfg.quarantine_dropped_spans && session.summary.spans_dropped_at_source > 0 {
        f.hard.push(format!(
            "session.json: the source dropped {} spans (incomplete run)",
            session.summary.spans_dropped_at_source
        ));
    }
    if !session.root_span_seen {
        f.warnings
            .push("session.json: root span never arrived (outcome unknown)".into());
    }
    if events.is_empty() {
        f.hard.push("events.jsonl: no events".into());
    }

    let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    if ids.len() != events.len() {
        f.hard.push(format!(
            "events.jsonl: {} duplicate event ids",
            events.len() - ids.len()
        ));
    }
    let mut dangling = Vec::new();
    for (n, e) in events.iter().enumerate() {
        let line = n + 1;
        if e.run_id != session.run_id {
            f.hard.push(format!(
                "events.jsonl:{line}: run_id {} differs from the session's",
                e.run_id
            ));
            break;
        }
        match (&e.lineage, &e.parent_event_id) {
            (Lineage::Broken, _) => f.broken_lineage_events += 1,
            (Lineage::Parent, Some(p)) if !ids.contains(p.as_str()) => {
                dangling.push(format!("events.jsonl:{line}: parent {p} is not in the run"));
            }
            (Lineage::Parent, None) => {
                dangling.push(format!(
                    "events.jsonl:{line}: lineage parent without parent_event_id"
                ));
            }
            _ => {}
        }
    }
    if let Some(first) = dangling.first() {
        f.hard.push(format!(
            "broken lineage: {} events whose parent is not in the run (first: {first})",
            dangling.len()
        ));
    }
    if f.broken_lineage_events > 0 {
        let msg = format!(
            "broken lineage: {} events whose parent span never arrived",
            f.broken_lineage_events
        );
        match cfg.broken_lineage {
            BrokenLineagePolicy::Quarantine => f.hard.push(msg),
            BrokenLineagePolicy::Keep => f.warnings.push(msg),
        }
    }
    f
}

/// Null, or an empty string, array or object.
pub fn is_empty_value(v: &Value) -> bool {
    kind(v) == "missing"
}

/// The kind of a JSON value, for drift detection. Missing, null and empty values are one kind.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "missing",
        Value::String(s) if s.is_empty() => "missing",
        Value::Array(a) if a.is_empty() => "missing",
        Value::Object(o) if o.is_empty() => "missing",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The shape of a run: `event_type.field` (and `session.runtime_config.key`,
/// `session.model_stack.role`) -> the kinds of values seen. An event type or field never seen
/// in a run is absent from its shape.
pub type Shape = BTreeMap<String, BTreeSet<&'static str>>;

/// Computes the shape of one run.
pub fn shape(session: &Session, events: &[Event]) -> Shape {
    let mut s: Shape = BTreeMap::new();
    let mut key = String::new();
    for e in events {
        let et = e.event_type().as_str();
        add_kind(&mut s, et, "present");
        if let Ok(Value::Object(v)) = serde_json::to_value(&e.payload) {
            if let Some(Value::Object(p)) = v.get("payload") {
                for (k, val) in p {
                    key.clear();
                    key.push_str(et);
                    key.push('.');
                    key.push_str(k);
                    add_kind(&mut s, &key, kind(val));
                }
            }
        }
    }
    for (k, v) in &session.runtime_config.extra {
        add_kind(&mut s, &format!("session.runtime_config.{k}"), kind(v));
    }
    for role in session.model_stack.keys() {
        add_kind(&mut s, &format!("session.model_stack.{role}"), "present");
    }
    s
}

/// Adds a kind to a field of a shape (the key is copied only the first time it is seen).
fn add_kind(s: &mut Shape, key: &str, kind: &'static str) {
    match s.get_mut(key) {
        Some(kinds) => {
            kinds.insert(kind);
        }
        None => {
            s.insert(key.to_owned(), BTreeSet::from([kind]));
        }
    }
}

/// One field whose presence or type differs between agent configs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// `event_type.field` or `session.*`.
    pub field: String,
    /// config hash -> kinds seen (`absent` when the field never appeared in runs of that config
    /// that had the event type).
    pub by_config: BTreeMap<String, Vec<String>>,
}

/// Accumulates run shapes per config hash and reports the fields that drift between configs.
#[derive(Debug, Clone, Default)]
pub struct DriftTracker {
    per_config: BTreeMap<String, Shape>,
}

impl DriftTracker {
    pub fn add(&mut self, config_hash: &str, shape: &Shape) {
        if !self.per_config.contains_key(config_hash) {
            self.per_config
                .insert(config_hash.to_owned(), Shape::default());
        }
        let Some(merged) = self.per_config.get_mut(config_hash) else {
            return;
        };
        for (k, kinds) in shape {
            match merged.get_mut(k) {
                Some(m) => m.extend(kinds.iter().copied()),
                None => {
                    merged.insert(k.clone(), kinds.clone());
                }
            }
        }
    }

    /// Fields whose kinds differ between configs (only compared where the owning event type,
    /// or the session, is present in both).
    pub fn drifts(&self) -> Vec<Drift> {
        if self.per_config.len() < 2 {
            return Vec::new();
        }
        let fields: BTreeSet<&String> = self
            .per_config
            .values()
            .flat_map(|s| s.keys())
            .filter(|k| k.contains('.'))
            .collect();
        let mut out = Vec::new();
        for field in fields {
            let owner = field.split('.').next().unwrap_or("");
            let mut by_config = BTreeMap::new();
            for (cfg, shape) in &self.per_config {
                if owner != "session" && !shape.contains_key(owner) {
                    continue;
                }
                let kinds: Vec<String> = match shape.get(field.as_str()) {
                    Some(k) => k.iter().map(|s| s.to_string()).collect(),
                    None => vec!["absent".to_string()],
                };
                by_config.insert(cfg.clone(), kinds);
            }
            let distinct: BTreeSet<Vec<String>> = by_config
                .values()
                .map(|k| {
                    k.iter()
                        .map(|x| {
                            if x == "absent" {
                                "missing".to_string()
                            } else {
                                x.clone()
                            }
                        })
                        .collect()
                })
                .collect();
            if distinct.len() > 1 {
                out.push(Drift {
                    field: field.clone(),
                    by_config,
                });
            }
        }
        out
    }
}
