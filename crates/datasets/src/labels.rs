//! Human corrections (`--labels FILE`): JSONL rows keyed by `event_id` or `span_id` that override
//! verifier verdicts, run outcomes and worker actions. Rows they touch carry
//! `metadata.human_label = true`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use traj_schema::{Outcome, Verdict};

/// One correction, as written in the labels file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HumanLabel {
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
    /// Replaces the verdict of a verifier output (its event or its verifier span).
    #[serde(default)]
    pub verdict: Option<String>,
    /// Replaces the verifier feedback (with `verdict`).
    #[serde(default)]
    pub feedback: Option<String>,
    /// Replaces the final outcome of the run (key: its `episode_end` event or root span).
    #[serde(default)]
    pub outcome: Option<String>,
    /// Replaces fields of a worker action (`action`, `tool`, `arguments`, `reasoning`).
    #[serde(default)]
    pub action: Option<Value>,
    /// Free text kept in the report only.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct LabelError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// The corrections, indexed by key; tracks which ones were used.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_key: BTreeMap<String, HumanLabel>,
    sha256: Option<String>,
}

/// A parsed verdict override.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictOverride {
    pub verdict: Verdict,
    pub feedback: Option<String>,
}

/// Why one human label was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLabel {
    #[error("exactly one of event_id or span_id is required")]
    Target,
    #[error("a label must set verdict, outcome or action")]
    NothingSet,
    #[error("unknown verdict {0:?} (continue | replan | end)")]
    Verdict(String),
    #[error("unknown outcome {0:?} (success | failure | aborted)")]
    Outcome(String),
    #[error("action must be an object")]
    Action,
    #[error("{0} is labelled twice")]
    Twice(String),
}

impl Labels {
    /// Reads a labels file; every bad line is an error naming the file and line.
    pub fn load(path: &Path) -> Result<Labels, LabelError> {
        let err = |line: usize, message: String| LabelError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let f = File::open(path).map_err(|e| err(0, e.to_string()))?;
        let mut text = String::new();
        let mut labels = Labels::default();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| err(n, e.to_string()))?;
            text.push_str(&line);
            text.push('\n');
            if line.trim().is_empty() {
                continue;
            }
            let l: HumanLabel = serde_json::from_str(&line).map_err(|e| err(n, e.to_string()))?;
            labels.insert(l).map_err(|m| err(n, m.to_string()))?;
        }
        labels.sha256 = Some(crate::output::sha256_hex(text.as_bytes()));
        Ok(labels)
    }

    /// Adds one correction after checking it.
    pub fn insert(&mut self, l: HumanLabel) -> Result<(), BadLabel> {
        let key = match (&l.event_id, &l.span_id) {
            (Some(e), None) => format!("event:{e}"),
            (None, Some(s)) => format!("span:{s}"),
            _ => return Err(BadLabel::Target),
        };
        if l.verdict.is_none() && l.outcome.is_none() && l.action.is_none() {
            return Err(BadLabel::NothingSet);
        }
        if let Some(v) = &l.verdict {
            if Verdict::parse(v).is_none() {
                return Err(BadLabel::Verdict(v.clone()));
            }
        }
        if let Some(o) = &l.outcome {
            if Outcome::parse(o) == Outcome::Unknown && o != "unknown" {
                return Err(BadLabel::Outcome(o.clone()));
            }
        }
        if let Some(a) = &l.action {
            if !a.is_object() {
                return Err(BadLabel::Action);
            }
        }
        if self.by_key.insert(key.clone(), l).is_some() {
            return Err(BadLabel::Twice(key));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// sha256 of the labels file text (for the manifest).
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    fn lookup(&self, event_id: &str, span_id: &str) -> Option<(&str, &HumanLabel)> {
        let ek = format!("event:{event_id}");
        if let Some((k, l)) = self.by_key.get_key_value(&ek) {
            return Some((k.as_str(), l));
        }
        let sk = format!("span:{span_id}");
        self.by_key.get_key_value(&sk).map(|(k, l)| (k.as_str(), l))
    }

    /// The verdict override for a verifier output event, and the key that matched.
    pub fn verdict_for(&self, event_id: &str, span_id: &str) -> Option<(String, VerdictOverride)> {
        let (k, l) = self.lookup(event_id, span_id)?;
        let verdict = Verdict::parse(l.verdict.as_deref()?)?;
        Some((
            k.to_string(),
            VerdictOverride {
                verdict,
                feedback: l.feedback.clone(),
            },
        ))
    }

    /// The outcome override for a run's end event.
    pub fn outcome_for(&self, event_id: &str, span_id: &str) -> Option<(String, Outcome)> {
        let (k, l) = self.lookup(event_id, span_id)?;
        Some((k.to_string(), Outcome::parse(l.outcome.as_deref()?)))
    }

    /// The action override (an object of replaced fields) for a worker action event.
    pub fn action_for(&self, event_id: &str, span_id: &str) -> Option<(String, Value)> {
        let (k, l) = self.lookup(event_id, span_id)?;
        Some((k.to_string(), l.action.clone()?))
    }

    /// Keys of all corrections (to report the ones nothing matched).
    pub fn keys(&self) -> BTreeSet<String> {
        self.by_key.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn loads_and_looks_up_by_event_or_span() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.jsonl");
        let mut f = File::create(&p).unwrap();
        writeln!(
            f,
            r#"{{"event_id": "e1", "verdict": "end", "feedback": "done"}}"#
        )
        .unwrap();
        writeln!(f).unwrap();
        writeln!(f, r#"{{"span_id": "s2", "outcome": "failure"}}"#).unwrap();
        drop(f);
        let l = Labels::load(&p).unwrap();
        assert_eq!(l.len(), 2);
        let (k, v) = l.verdict_for("e1", "zz").unwrap();
        assert_eq!(k, "event:e1");
        assert_eq!(v.verdict, Verdict::End);
        assert_eq!(l.outcome_for("x", "s2").unwrap().1, Outcome::Failure);
        assert!(l.verdict_for("x", "s2").is_none());
        assert!(l.sha256().is_some());
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.jsonl");
        std::fs::write(
            &p,
            "{\"event_id\": \"a\", \"verdict\": \"end\"}\n{\"event_id\": \"b\", \"verdict\": \"maybe\"}\n",
        )
        .unwrap();
        let e = Labels::load(&p).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().contains("labels.jsonl:2: unknown verdict"),
            "{e}"
        );
        std::fs::write(&p, "{\"verdict\": \"end\"}\n").unwrap();
        assert!(Labels::load(&p)
            .unwrap_err()
            .message
            .contains("exactly one"));
    }
}
