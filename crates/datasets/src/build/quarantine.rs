//! Quarantine: a run that cannot be used keeps its evidence under `OUT/quarantine/<run_id>/`
//! with the reason, and the build goes on.

use super::{io_at, BuildError, BuildInputs};
use crate::output::{write_file, Written};
use serde_json::{json, Value};
use traj_runs::{RunDir, RunReadError};

/// A run that could not be used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Quarantined {
    pub run_id: String,
    /// `<run_id>/<file>` (relative to its `--runs` directory).
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
    /// Where the evidence is under the output directory.
    pub copied_to: String,
}

/// Copies the evidence of a quarantined run under `OUT/quarantine/<run_id>/` and writes the reason.
pub(super) fn quarantine(
    inputs: &BuildInputs,
    dir: &RunDir,
    file: &str,
    line: Option<usize>,
    reason: String,
    written: &mut Vec<Written>,
) -> Result<Quarantined, BuildError> {
    let qdir = inputs.out.join("quarantine").join(&dir.run_id);
    let mut copied = Vec::new();
    for name in [traj_runs::SESSION_FILE, traj_runs::EVENTS_FILE] {
        let src = dir.path.join(name);
        let Ok(meta) = std::fs::metadata(&src) else {
            continue;
        };
        if meta.len() <= inputs.config.quality.quarantine_copy_max_bytes {
            let bytes = std::fs::read(&src).map_err(io_at(&src))?;
            let dst = qdir.join(name);
            written.push(write_file(&dst, &bytes).map_err(io_at(&dst))?);
            copied.push(name);
        }
    }
    let q = Quarantined {
        run_id: dir.run_id.clone(),
        file: format!("{}/{file}", dir.run_id),
        line,
        reason,
        copied_to: format!("quarantine/{}/", dir.run_id),
    };
    let mut doc = serde_json::to_value(&q).unwrap_or(Value::Null);
    doc["copied_files"] = json!(copied);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    let dst = qdir.join("reason.json");
    written.push(write_file(&dst, text.as_bytes()).map_err(io_at(&dst))?);
    Ok(q)
}

/// Quarantines a run that could not be read (its file, line and message name the cause).
pub(super) fn quarantine_unreadable(
    inputs: &BuildInputs,
    dir: &RunDir,
    e: &RunReadError,
    written: &mut Vec<Written>,
) -> Result<Quarantined, BuildError> {
    let file = e
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    quarantine(inputs, dir, &file, e.line, e.message.clone(), written)
}
