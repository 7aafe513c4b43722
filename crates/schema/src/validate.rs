//! Checks a run (`session.json` + `events.jsonl`) against schema v2 and reports every
//! violation with its location (file, line, JSON path), not just the first.

use crate::event::{Event, Lineage};
use crate::session::Session;
use crate::{is_valid_run_id, time_fmt, SCHEMA_VERSION};
use std::collections::HashSet;
use std::fmt;

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `session.json:$.path` or `events.jsonl:LINE:$.path`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// What the validator found in one run.
#[derive(Debug, Clone, Default)]
pub struct RunCheck {
    pub violations: Vec<Violation>,
    pub events: u64,
    /// Events with a parent present in the run or the explicit root marker.
    pub events_with_valid_lineage: u64,
    pub session: Option<Session>,
}

impl RunCheck {
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

fn v(location: String, message: impl Into<String>) -> Violation {
    Violation {
        location,
        message: message.into(),
    }
}

/// Validates the text of `session.json` and `events.jsonl` of one run.
pub fn validate_run(session_text: &str, events_text: &str) -> RunCheck {
    let mut out = RunCheck::default();
    let session = check_session(session_text, &mut out.violations);

    let mut events: Vec<(usize, Event)> = Vec::new();
    for (i, line) in events_text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        out.events += 1;
        let de = &mut serde_json::Deserializer::from_str(line);
        match serde_path_to_error::deserialize::<_, Event>(de) {
            Ok(e) => events.push((lineno, e)),
            Err(err) => out.violations.push(v(
                format!("events.jsonl:{lineno}:$.{}", err.path()),
                err.inner().to_string(),
            )),
        }
    }

    let ids: HashSet<&str> = events.iter().map(|(_, e)| e.event_id.as_str()).collect();
    let mut seen = HashSet::new();
    for (lineno, e) in &events {
        let at = |p: &str| format!("events.jsonl:{lineno}:$.{p}");
        if e.schema_version != SCHEMA_VERSION {
            out.violations.push(v(
                at("schema_version"),
                format!("expected \"2\", found {:?}", e.schema_version),
            ));
        }
        if let Some(s) = &session {
            if e.run_id != s.run_id {
                out.violations.push(v(
                    at("run_id"),
                    format!("{} differs from the session's {}", e.run_id, s.run_id),
                ));
            }
        }
        if !seen.insert(e.event_id.as_str()) {
            out.violations.push(v(
                at("event_id"),
                format!("duplicate event id {}", e.event_id),
            ));
        }
        if time_fmt::unix_nanos_from_rfc3339(&e.timestamp).is_none() {
            out.violations.push(v(
                at("timestamp"),
                format!("not RFC 3339: {:?}", e.timestamp),
            ));
        }
        let lineage_ok = match (e.lineage, &e.parent_event_id) {
            (Lineage::Root, None) => true,
            (Lineage::Parent, Some(p)) => {
                if ids.contains(p.as_str()) && p != &e.event_id {
                    true
                } else {
                    out.violations.push(v(
                        at("parent_event_id"),
                        format!("parent {p} is not an event of this run"),
                    ));
                    false
                }
            }
            (Lineage::Broken, None) => {
                if e.missing_parent_span_id.is_none() {
                    out.violations.push(v(
                        at("missing_parent_span_id"),
                        "broken lineage must name the missing span",
                    ));
                }
                false
            }
            (l, p) => {
                out.violations.push(v(
                    at("lineage"),
                    format!("lineage {l:?} contradicts parent_event_id {p:?}"),
                ));
                false
            }
        };
        if lineage_ok {
            out.events_with_valid_lineage += 1;
        }
    }
    let roots: Vec<usize> = events
        .iter()
        .filter(|(_, e)| e.lineage == Lineage::Root)
        .map(|(l, _)| *l)
        .collect();
    if roots.len() > 1 {
        let lines: Vec<String> = roots.iter().take(5).map(|l| l.to_string()).collect();
        out.violations.push(v(
            format!("events.jsonl:{}:$.lineage", roots[1]),
            format!(
                "{} root events (lines {}{}); a run has exactly one",
                roots.len(),
                lines.join(", "),
                if roots.len() > 5 { ", ..." } else { "" }
            ),
        ));
    }
    if let Some(s) = &session {
        if s.lineage.events != out.events {
            out.violations.push(v(
                "session.json:$.lineage.events".into(),
                format!(
                    "says {} events, events.jsonl has {}",
                    s.lineage.events, out.events
                ),
            ));
        }
    }
    out.session = session;
    out
}

fn check_session(text: &str, violations: &mut Vec<Violation>) -> Option<Session> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let s: Session = match serde_path_to_error::deserialize(de) {
        Ok(s) => s,
        Err(err) => {
            violations.push(v(
                format!("session.json:$.{}", err.path()),
                err.inner().to_string(),
            ));
            return None;
        }
    };
    let at = |p: &str| format!("session.json:$.{p}");
    if s.schema_version != SCHEMA_VERSION {
        violations.push(v(
            at("schema_version"),
            format!("expected \"2\", found {:?}", s.schema_version),
        ));
    }
    if !is_valid_run_id(&s.run_id) {
        violations.push(v(
            at("run_id"),
            format!("not 32 lowercase hex digits: {:?}", s.run_id),
        ));
    }
    if s.trace_id != s.run_id {
        violations.push(v(
            at("trace_id"),
            "run_id must be derived from (equal to) the trace id",
        ));
    }
    for (field, value) in [
        ("started_at", &s.started_at),
        ("finished_at", &s.finished_at),
    ] {
        if time_fmt::unix_nanos_from_rfc3339(value).is_none() {
            violations.push(v(at(field), format!("not RFC 3339: {value:?}")));
        }
    }
    for (field, value) in [
        ("config_hash", &s.config_hash),
        ("prompt_hash", &s.prompt_hash),
        ("toolset_hash", &s.toolset_hash),
    ] {
        if !value.is_empty() && !value.starts_with("sha256:") {
            violations.push(v(
                at(field),
                format!("expected sha256:<hex>, found {value:?}"),
            ));
        }
    }
    if let Some(success) = s.summary.success {
        if success != (s.summary.outcome == crate::Outcome::Success) {
            violations.push(v(at("summary.success"), "contradicts summary.outcome"));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use crate::session::*;

    const RUN: &str = "0af7651916cd43dd8448eb211c80319c";

    fn session(events: u64) -> Session {
        Session {
            schema_version: "2".into(),
            run_id: RUN.into(),
            trace_id: RUN.into(),
            goal: "sum the column".into(),
            goal_family: "arith".into(),
            task_id: None,
            seed: Some(7),
            seed_kind: None,
            started_at: "2026-11-26T00:00:00Z".into(),
            finished_at: "2026-11-26T00:00:01Z".into(),
            duration_ms: 1000.0,
            service_name: "agent".into(),
            source: "traj".into(),
            model_stack: Default::default(),
            runtime_config: Default::default(),
            data_governance: Default::default(),
            summary: Summary {
                outcome: Outcome::Success,
                success: Some(true),
                ..Default::default()
            },
            config_hash: "sha256:00".into(),
            prompt_hash: "sha256:01".into(),
            toolset_hash: "sha256:02".into(),
            lineage: LineageStats {
                events,
                ..Default::default()
            },
            root_span_seen: true,
            warnings: Vec::new(),
        }
    }

    fn event(id: &str, parent: Option<&str>, lineage: Lineage) -> Event {
        Event {
            schema_version: "2".into(),
            run_id: RUN.into(),
            trace_id: RUN.into(),
            span_id: "b7ad6b7169203331".into(),
            step: 0,
            event_id: id.into(),
            timestamp: "2026-11-26T00:00:00.5Z".into(),
            time_unix_nano: 0,
            role: Role::Worker,
            parent_event_id: parent.map(String::from),
            lineage,
            missing_parent_span_id: None,
            source: "traj".into(),
            payload: Payload::EpisodeEnd(EpisodeEnd {
                outcome: Outcome::Success,
                steps: 1,
                failure_class: None,
            }),
        }
    }

    fn lines(events: &[Event]) -> String {
        events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn a_good_run_is_valid() {
        let s = serde_json::to_string(&session(2)).unwrap();
        let e = lines(&[
            event("a", None, Lineage::Root),
            event("b", Some("a"), Lineage::Parent),
        ]);
        let check = validate_run(&s, &e);
        assert!(check.is_valid(), "{:?}", check.violations);
        assert_eq!(check.events_with_valid_lineage, 2);
    }

    #[test]
    fn every_violation_is_reported_with_its_location() {
        let mut bad = session(3);
        bad.run_id = "../../etc".into();
        let s = serde_json::to_string(&bad).unwrap();
        let mut e = lines(&[
            event("a", None, Lineage::Root),
            event("b", Some("zz"), Lineage::Parent),
        ]);
        e.push_str("{\"not\": \"an event\"}\n");
        let check = validate_run(&s, &e);
        let locs: Vec<&str> = check
            .violations
            .iter()
            .map(|v| v.location.as_str())
            .collect();
        assert!(locs.contains(&"session.json:$.run_id"), "{locs:?}");
        assert!(
            locs.contains(&"events.jsonl:2:$.parent_event_id"),
            "{locs:?}"
        );
        assert!(
            locs.iter().any(|l| l.starts_with("events.jsonl:3:")),
            "{locs:?}"
        );
        assert_eq!(check.events_with_valid_lineage, 1);
    }

    #[test]
    fn a_run_with_two_roots_is_invalid() {
        let evs = vec![
            event("a", None, Lineage::Root),
            event("b", None, Lineage::Root),
        ];
        let check = validate_run(&serde_json::to_string(&session(2)).unwrap(), &lines(&evs));
        assert!(!check.is_valid());
        assert!(
            check
                .violations
                .iter()
                .any(|x| x.message.contains("2 root events")),
            "{:?}",
            check.violations
        );
    }

    #[test]
    fn broken_lineage_must_name_the_missing_span() {
        let s = serde_json::to_string(&session(1)).unwrap();
        let mut e = event("a", None, Lineage::Broken);
        let check = validate_run(&s, &lines(&[e.clone()]));
        assert!(!check.is_valid());
        e.missing_parent_span_id = Some("00f067aa0ba902b7".into());
        let check = validate_run(&s, &lines(&[e]));
        assert!(check.is_valid(), "{:?}", check.violations);
        assert_eq!(check.events_with_valid_lineage, 0);
    }
}
