//! Pass 2 of a build: each kept run read again, converted into the rows of every view, checked
//! against the formats' rules, redacted and appended to its split's files.

use super::quarantine::quarantine_unreadable;
use super::{io_at, BuildError, BuildInputs, Progress};
use crate::output::{AtomicFile, Written};
use crate::redact::redact_row;
use crate::report::Report;
use crate::rows::{Format, View};
use crate::runview::RunIndex;
use crate::split::Split;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traj_runs::{read_run, RunDir};

/// The path of a view's rows in a split, and of its OpenAI metadata sidecar.
pub(crate) fn view_path(out: &Path, split: Split, view: View) -> PathBuf {
    out.join(split.as_str())
        .join(format!("{}.jsonl", view.as_str()))
}

pub(crate) fn sidecar_path(out: &Path, split: Split, view: View) -> PathBuf {
    out.join(split.as_str())
        .join(format!("{}.metadata.jsonl", view.as_str()))
}

/// The open row files of every (split, view) the format writes.
struct Outputs {
    files: BTreeMap<(Split, View), AtomicFile>,
    sidecars: BTreeMap<(Split, View), AtomicFile>,
}

impl Outputs {
    fn open(out: &Path, format: Format) -> Result<Outputs, BuildError> {
        let mut files = BTreeMap::new();
        let mut sidecars = BTreeMap::new();
        for split in Split::ALL {
            for &view in View::for_format(format) {
                let p = view_path(out, split, view);
                files.insert((split, view), AtomicFile::create(&p).map_err(io_at(&p))?);
                if format == Format::Openai {
                    let p = sidecar_path(out, split, view);
                    sidecars.insert((split, view), AtomicFile::create(&p).map_err(io_at(&p))?);
                }
            }
        }
        Ok(Outputs { files, sidecars })
    }

    /// Appends a row; false when the format does not write the view.
    fn write(
        &mut self,
        split: Split,
        view: View,
        row: &Value,
        side: Option<&Value>,
    ) -> Result<bool, BuildError> {
        let Some(f) = self.files.get_mut(&(split, view)) else {
            return Ok(false);
        };
        f.write_json_line(row).map_err(io_at(f.path()))?;
        if let (Some(m), Some(f)) = (side, self.sidecars.get_mut(&(split, view))) {
            f.write_json_line(m).map_err(io_at(f.path()))?;
        }
        Ok(true)
    }

    fn commit(self) -> Result<Vec<Written>, BuildError> {
        let mut out = Vec::new();
        for f in self.files.into_values().chain(self.sidecars.into_values()) {
            let p = f.path().to_path_buf();
            out.push(f.commit().map_err(io_at(&p))?);
        }
        Ok(out)
    }
}

/// Converts the kept runs (with their splits) and writes every row; returns the role metrics
/// of the converted runs. Rows that break the formats' rules are dropped with a warning.
pub(crate) fn convert_runs(
    inputs: &BuildInputs,
    runs: &[(&RunDir, Split)],
    progress: &Progress,
    rep: &mut Report,
    written: &mut Vec<Written>,
) -> Result<traj_metrics::MetricsReport, BuildError> {
    let cfg = &inputs.config;
    let mut outputs = Outputs::open(&inputs.out, inputs.format)?;
    // Role metrics of the kept runs per split (traj-metrics, streaming; no run table kept).
    let mut metrics = traj_metrics::MetricsAccumulator::new(traj_metrics::MetricsOptions {
        max_run_rows: 0,
        ..Default::default()
    });
    for (n, &(dir, split)) in runs.iter().enumerate() {
        progress.at("convert", n, runs.len());
        let run = match read_run(dir) {
            Ok(r) => r,
            Err(e) => {
                let e = super::fatal_read_error(e)?;
                tracing::warn!(run_id = %dir.run_id, "quarantined (changed since pass 1): {e}");
                rep.quarantine
                    .push(quarantine_unreadable(inputs, dir, &e, written)?);
                continue;
            }
        };
        let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
        rep.record_run(split, &idx);
        metrics.add_run(&run.session, &run.events, Some(split.as_str()));
        let mut rows = crate::views::run_rows(&idx, &cfg.prefs, &cfg.rows);
        let derived = crate::reward_rows::derive(&idx, &rows);
        rows.extend(derived);
        for row in rows {
            if let Err(e) = row.check() {
                tracing::warn!(run_id = %dir.run_id, view = row.view.as_str(), "row dropped: {e}");
                rep.add_warning(
                    &dir.run_id,
                    &format!("{} row dropped: {e}", row.view.as_str()),
                );
                continue;
            }
            let (mut value, mut side) = row.render(inputs.format);
            redact_row(&mut value, inputs.redactor, &mut rep.pii.counts);
            if let Some(s) = side.as_mut() {
                redact_row(s, inputs.redactor, &mut rep.pii.counts);
            }
            if outputs.write(split, row.view, &value, side.as_ref())? {
                rep.record_row(split, &row);
            }
        }
    }
    progress.at("convert", runs.len(), runs.len());
    written.extend(outputs.commit()?);
    Ok(metrics.finish())
}
