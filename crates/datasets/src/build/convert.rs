//! Pass 2 of a build: each kept run read again, converted into the rows of every view, checked
//! against the formats' rules, redacted and serialized on worker threads (`par`), then applied in
//! run order on the calling thread: report counts, role metrics, appended to its split's files.

use super::quarantine::quarantine_unreadable;
use super::{io_at, BuildError, BuildInputs, Progress};
use crate::compact::{RunEntry, RunList};
use crate::output::{AtomicFile, Written};
use crate::redact::{redact_row, RedactMemo};
use crate::report::{Report, RowFacts, RunFacts};
use crate::rows::{Format, Row, View};
use crate::runview::RunIndex;
use crate::split::Split;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traj_runs::{read_run, LoadedRun, RunDir, RunReadError};

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

    /// Appends a row (one serialized line, and its sidecar line); false when the format does not write the view.
    fn write(
        &mut self,
        split: Split,
        view: View,
        line: &[u8],
        side: Option<&[u8]>,
    ) -> Result<bool, BuildError> {
        let Some(f) = self.files.get_mut(&(split, view)) else {
            return Ok(false);
        };
        f.write_line(line).map_err(io_at(f.path()))?;
        if let (Some(m), Some(f)) = (side, self.sidecars.get_mut(&(split, view))) {
            f.write_line(m).map_err(io_at(f.path()))?;
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

/// One kept run converted on a worker thread: everything the report, the metrics and the row
/// files take from it, applied in run order by [`apply_converted`].
enum Converted {
    /// The run changed since pass 1 and cannot be read any more.
    Unreadable(RunReadError),
    Run(Box<ConvertedRun>),
}

struct ConvertedRun {
    /// Kept for the role metrics (added in run order on the applying thread).
    run: LoadedRun,
    facts: RunFacts,
    rows: Vec<RowOut>,
    /// Second-pass redaction counts of the run's rows, by kind.
    pii: BTreeMap<String, u64>,
}

/// A row of the run: dropped (with the warning), or rendered, redacted and serialized.
enum RowOut {
    Dropped(String),
    Line {
        facts: RowFacts,
        line: Vec<u8>,
        side: Option<Vec<u8>>,
    },
}

/// Converts the kept runs (with their splits) and writes every row; returns the role metrics
/// of the converted runs. Rows that break the formats' rules are dropped with a warning. Runs
/// are converted on `inputs.threads` worker threads; results are applied in run order, so the
/// files and the report are the same bytes for any thread count.
pub(crate) fn convert_runs(
    inputs: &BuildInputs,
    dirs: &RunList,
    runs: &[(&RunEntry, Split)],
    progress: &Progress,
    rep: &mut Report,
    written: &mut Vec<Written>,
) -> Result<traj_metrics::MetricsReport, BuildError> {
    let mut outputs = Outputs::open(&inputs.out, inputs.format)?;
    // Role metrics of the kept runs per split (traj-metrics, streaming; no run table kept).
    let mut metrics = traj_metrics::MetricsAccumulator::new(traj_metrics::MetricsOptions {
        max_run_rows: 0,
        ..Default::default()
    });
    crate::par::ordered_map_with(
        runs,
        inputs.threads(),
        RedactMemo::default,
        |memo, _, &(e, _)| convert_run(inputs, &dirs.dir_of(e), memo),
        |n, converted| {
            progress.at("convert", n, runs.len());
            let (e, split) = runs[n];
            let target = Target {
                dir: &dirs.dir_of(e),
                split,
                outputs: &mut outputs,
                metrics: &mut metrics,
            };
            apply_converted(inputs, target, converted, rep, written)
        },
    )?;
    progress.at("convert", runs.len(), runs.len());
    written.extend(outputs.commit()?);
    Ok(metrics.finish())
}

/// Reads one run and converts it into checked, rendered and redacted row lines.
fn convert_run(inputs: &BuildInputs, dir: &RunDir, memo: &mut RedactMemo) -> Converted {
    let run = match read_run(dir) {
        Ok(r) => r,
        Err(e) => return Converted::Unreadable(e),
    };
    let idx = RunIndex::new(&run.session, &run.events, &inputs.labels);
    let cfg = &inputs.config;
    let mut rows = crate::views::run_rows(&idx, &cfg.prefs, &cfg.rows);
    let derived = crate::reward_rows::derive(&idx, &rows);
    rows.extend(derived);
    let mut pii = BTreeMap::new();
    let rows = rows
        .iter()
        .map(|row| render_row(inputs, &dir.run_id, row, &mut pii, memo))
        .collect();
    let facts = RunFacts::of(&idx);
    drop(idx);
    Converted::Run(Box::new(ConvertedRun {
        run,
        facts,
        rows,
        pii,
    }))
}

/// Checks, renders, redacts and serializes one row.
fn render_row(
    inputs: &BuildInputs,
    run_id: &str,
    row: &Row,
    pii: &mut BTreeMap<String, u64>,
    memo: &mut RedactMemo,
) -> RowOut {
    if let Err(e) = row.check() {
        tracing::warn!(run_id = %run_id, view = row.view.as_str(), "row dropped: {e}");
        return RowOut::Dropped(format!("{} row dropped: {e}", row.view.as_str()));
    }
    let (mut value, mut side) = row.render(inputs.format);
    redact_row(&mut value, inputs.redactor, pii, memo);
    if let Some(s) = side.as_mut() {
        redact_row(s, inputs.redactor, pii, memo);
    }
    RowOut::Line {
        facts: RowFacts::of(row),
        line: json_line(&value),
        side: side.as_ref().map(json_line),
    }
}

/// A JSON value as one line of bytes (`to_vec` of a `Value` cannot fail).
fn json_line(v: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Where one converted run goes.
struct Target<'a, 'o> {
    dir: &'a RunDir,
    split: Split,
    outputs: &'o mut Outputs,
    metrics: &'o mut traj_metrics::MetricsAccumulator,
}

/// Applies one converted run, in run order: quarantine, report counts, metrics, row files.
fn apply_converted(
    inputs: &BuildInputs,
    t: Target,
    converted: Converted,
    rep: &mut Report,
    written: &mut Vec<Written>,
) -> Result<(), BuildError> {
    let c = match converted {
        Converted::Run(c) => c,
        Converted::Unreadable(e) => {
            let e = super::fatal_read_error(e)?;
            tracing::warn!(run_id = %t.dir.run_id, "quarantined (changed since pass 1): {e}");
            let q = quarantine_unreadable(inputs, t.dir, &e, written)?;
            rep.quarantine.push(q);
            return Ok(());
        }
    };
    rep.record_run(t.split, &c.facts);
    t.metrics
        .add_run(&c.run.session, &c.run.events, Some(t.split.as_str()));
    for (kind, n) in c.pii {
        *rep.pii.counts.entry(kind).or_insert(0) += n;
    }
    for row in c.rows {
        match row {
            RowOut::Dropped(warning) => rep.add_warning(&t.dir.run_id, &warning),
            RowOut::Line { facts, line, side } => {
                if t.outputs
                    .write(t.split, facts.view, &line, side.as_deref())?
                {
                    rep.record_row(t.split, &facts);
                }
            }
        }
    }
    Ok(())
}
