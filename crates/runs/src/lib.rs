//! The run directory format on disk: `RUNS/<run_id>/session.json` + `events.jsonl`.
//!
//! Writers (the receiver) and readers (datasets, metrics, validate) share this one module so the
//! layout, the atomic-write protocol and the error locations are defined once.
//!
//! Write protocol: `events.jsonl` first, then `session.json`, each via a temp file in the run
//! directory, `fsync`, `rename`, then `fsync` of the directory. A run is complete when
//! `session.json` exists; a crash leaves either the old or the new version of each file, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use traj_schema::{is_valid_run_id, Event, Session};

/// The file of a run directory holding its [`Session`] (pretty JSON); written last, so a run is
/// complete when it exists.
pub const SESSION_FILE: &str = "session.json";
/// The file of a run directory holding its [`Event`]s, one JSON object per line.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The subdirectory of a receiver data directory that holds its runs (`DATA/runs/<run_id>/`).
pub const RUNS_SUBDIR: &str = "runs";
/// The run format version this build writes and reads: the `schema_version` of `session.json`
/// (and of every event). A run of a larger version was written by a newer traj and is refused
/// with [`RunFormatError::Newer`] before its fields are read.
pub const RUN_FORMAT_VERSION: &str = traj_schema::SCHEMA_VERSION;

/// Why a run's format version is not one this build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFormatError {
    /// Written by a newer traj: this build must not guess at its fields.
    #[error(
        "schema_version {found:?} is newer than this build reads ({RUN_FORMAT_VERSION:?}): the run \
         was written by a newer traj; read it with that version or later"
    )]
    Newer { found: String },
    /// Not a run format version at all (or an older one no release wrote).
    #[error("schema_version {found} is not a run format version this build reads ({RUN_FORMAT_VERSION:?})")]
    Unsupported { found: String },
}

/// Checks the run format version of a `session.json` text before anything else is read from it:
/// `Ok` for [`RUN_FORMAT_VERSION`], and also when the text is not a JSON object or has no
/// `schema_version` (the full parse then reports that, with its location).
pub fn check_run_format(session_text: &str) -> Result<(), RunFormatError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema_version: Option<serde_json::Value>,
    }
    let Ok(Versioned {
        schema_version: Some(v),
    }) = serde_json::from_str::<Versioned>(session_text)
    else {
        return Ok(());
    };
    let known: u64 = RUN_FORMAT_VERSION.parse().unwrap_or(0);
    match &v {
        serde_json::Value::String(s) if s == RUN_FORMAT_VERSION => Ok(()),
        serde_json::Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > known => Err(RunFormatError::Newer { found: s.clone() }),
            _ => Err(RunFormatError::Unsupported {
                found: v.to_string(),
            }),
        },
        serde_json::Value::Number(n) if n.as_u64().is_some_and(|n| n > known) => {
            Err(RunFormatError::Newer {
                found: n.to_string(),
            })
        }
        _ => Err(RunFormatError::Unsupported {
            found: v.to_string(),
        }),
    }
}

/// The runs directory of a receiver data directory (`data_dir/runs`).
pub fn runs_dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join(RUNS_SUBDIR)
}

/// The runs directory `dir` names: `dir/runs` when `dir` is a data directory holding one, else
/// `dir` itself (a runs directory holding `<run_id>/` subdirectories).
pub fn resolve_runs_dir(dir: &Path) -> PathBuf {
    let inner = runs_dir_of(dir);
    if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// The directory of run `run_id` under `runs_dir` (no check of the id; see [`write_run`]).
pub fn run_path(runs_dir: &Path, run_id: &str) -> PathBuf {
    runs_dir.join(run_id)
}

/// A problem reading one run, with the file and (for JSONL) the 1-based line.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RunReadError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    /// Set when the run's format version is not one this build reads (`message` says the same):
    /// lets a reader tell "written by a newer traj" from damaged data.
    pub format: Option<RunFormatError>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("invalid run id {0:?}: a run id is the 32-digit lowercase hex trace id")]
    InvalidRunId(String),
    #[error("run {run_id} appears in two inputs: {} and {}", first.display(), second.display())]
    DuplicateRun {
        run_id: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RunsError + '_ {
    move |source| RunsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One run directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub run_id: String,
    pub path: PathBuf,
}

/// A run read into memory.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub dir: RunDir,
    pub session: Session,
    pub events: Vec<Event>,
}

/// Whether a write waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync` files and directories: the new version survives power loss once this returns.
    #[default]
    Fsync,
    /// Atomic rename only. For derived files that can be rebuilt (the receiver re-materializes
    /// runs from its raw store), trading crash persistence of the latest version for throughput.
    RenameOnly,
}

/// Writes one run atomically (and durably) and returns its directory. The directory name comes
/// only from `session.run_id`, which must be a valid run id (hex trace id), so span content can
/// never choose a path.
pub fn write_run(
    runs_dir: &Path,
    session: &Session,
    events: &[Event],
) -> Result<PathBuf, RunsError> {
    write_run_with(runs_dir, session, events, Durability::Fsync)
}

/// Makes every run written so far under `runs_dir` durable at once (`syncfs` of its file
/// system): what [`Durability::RenameOnly`] writers call before they rely on those runs
/// surviving power loss (the receiver, before it checkpoints past them).
pub fn sync_written_runs(runs_dir: &Path) -> Result<(), RunsError> {
    let dir = std::fs::File::open(runs_dir).map_err(io_err(runs_dir))?;
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(&dir).map_err(|e| io_err(runs_dir)(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        dir.sync_all().map_err(io_err(runs_dir))
    }
}

/// [`write_run`] with a chosen [`Durability`].
pub fn write_run_with(
    runs_dir: &Path,
    session: &Session,
    events: &[Event],
    durability: Durability,
) -> Result<PathBuf, RunsError> {
    if !is_valid_run_id(&session.run_id) {
        return Err(RunsError::InvalidRunId(session.run_id.clone()));
    }
    let dir = run_path(runs_dir, &session.run_id);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;

    let mut buf = Vec::with_capacity(events.len() * 512);
    for e in events {
        serde_json::to_writer(&mut buf, e).map_err(|e| RunsError::Io {
            path: dir.join(EVENTS_FILE),
            source: io::Error::other(e),
        })?;
        buf.push(b'\n');
    }
    write_atomic_with(&dir.join(EVENTS_FILE), &buf, durability)?;

    let mut s = serde_json::to_vec_pretty(session).map_err(|e| RunsError::Io {
        path: dir.join(SESSION_FILE),
        source: io::Error::other(e),
    })?;
    s.push(b'\n');
    write_atomic_with(&dir.join(SESSION_FILE), &s, durability)?;
    if durability == Durability::Fsync {
        sync_dir(&dir)?;
        sync_dir(runs_dir)?;
    }
    Ok(dir)
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunsError> {
    write_atomic_with(path, bytes, Durability::Fsync)
}

/// [`write_atomic`] with a chosen [`Durability`].
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), RunsError> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    if durability == Durability::Fsync {
        f.sync_all().map_err(io_err(&tmp))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), RunsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Lists the runs under each directory (each holds `<run_id>/` subdirectories), merged and sorted
/// by run id. A directory whose name is not a run id, or that has no `session.json` yet (a run
/// being written), is skipped. The same run id under two inputs is an error: shards must not overlap.
pub fn list_runs(dirs: &[PathBuf]) -> Result<Vec<RunDir>, RunsError> {
    let mut out: Vec<RunDir> = Vec::new();
    for base in dirs {
        let base = resolve_runs_dir(base);
        for entry in fs::read_dir(&base).map_err(io_err(&base))? {
            let entry = entry.map_err(io_err(&base))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_valid_run_id(&name) || !entry.path().join(SESSION_FILE).is_file() {
                continue;
            }
            out.push(RunDir {
                run_id: name,
                path: entry.path(),
            });
        }
    }
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id).then_with(|| a.path.cmp(&b.path)));
    for pair in out.windows(2) {
        if pair[0].run_id == pair[1].run_id {
            return Err(RunsError::DuplicateRun {
                run_id: pair[0].run_id.clone(),
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    Ok(out)
}

/// Reads one run. The first unreadable line is reported with its file and line number.
pub fn read_run(dir: &RunDir) -> Result<LoadedRun, RunReadError> {
    read_run_files(dir).map(|(run, _)| run)
}

/// The bytes of a run's two files, as read by [`read_run_files`] (for hashing them without a
/// second read).
#[derive(Debug, Clone, Default)]
pub struct RunFiles {
    pub session: Vec<u8>,
    pub events: Vec<u8>,
}

/// What `BufRead::lines` and `read_to_string` say of bytes that are not UTF-8.
const NOT_UTF8: &str = "stream did not contain valid UTF-8";

/// Reads one run like [`read_run`] (same errors, same lines), and returns the files' bytes too.
/// Each file is read whole, once.
pub fn read_run_files(dir: &RunDir) -> Result<(LoadedRun, RunFiles), RunReadError> {
    let session_path = dir.path.join(SESSION_FILE);
    let at_session = |line: Option<usize>, message: String| RunReadError {
        file: session_path.clone(),
        line,
        message,
        format: None,
    };
    let session_bytes = fs::read(&session_path).map_err(|e| at_session(None, e.to_string()))?;
    let text =
        std::str::from_utf8(&session_bytes).map_err(|_| at_session(None, NOT_UTF8.into()))?;
    check_run_format(text).map_err(|e| RunReadError {
        file: session_path.clone(),
        line: None,
        message: e.to_string(),
        format: Some(e),
    })?;
    let session: Session =
        serde_json::from_str(text).map_err(|e| at_session(Some(e.line()), e.to_string()))?;
    let events_path = dir.path.join(EVENTS_FILE);
    let events_bytes = fs::read(&events_path).map_err(|e| RunReadError {
        file: events_path.clone(),
        line: None,
        message: e.to_string(),
        format: None,
    })?;
    let events = parse_events(&events_path, &events_bytes)?;
    let run = LoadedRun {
        dir: dir.clone(),
        session,
        events,
    };
    let files = RunFiles {
        session: session_bytes,
        events: events_bytes,
    };
    Ok((run, files))
}

/// Parses `events.jsonl` line by line (blank lines skipped), as `BufRead::lines` splits it.
fn parse_events(path: &Path, bytes: &[u8]) -> Result<Vec<Event>, RunReadError> {
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (
                rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]),
                &rest[i + 1..],
            ),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let at = |message: String| RunReadError {
            file: path.to_path_buf(),
            line: Some(line_no),
            message,
            format: None,
        };
        let line = std::str::from_utf8(line).map_err(|_| at(NOT_UTF8.into()))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str::<Event>(line).map_err(|e| at(e.to_string()))?);
    }
    Ok(events)
}

/// Every directory under the runs directory `dir` names (see [`resolve_runs_dir`]) that holds
/// `session.json` or `events.jsonl`, whatever its name, sorted. Unlike [`list_runs`], which skips
/// them, this includes half-written runs and directories not named by a run id, for a validator
/// to report.
pub fn find_run_dirs(dir: &Path) -> Result<Vec<PathBuf>, RunsError> {
    let base = resolve_runs_dir(dir);
    let mut out = Vec::new();
    for entry in fs::read_dir(&base).map_err(io_err(&base))? {
        let path = entry.map_err(io_err(&base))?.path();
        if path.is_dir() && (path.join(SESSION_FILE).exists() || path.join(EVENTS_FILE).exists()) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What a completely written run directory says it holds (its session's `lineage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenLineage {
    /// `lineage.spans`: distinct spans assembled into the run.
    pub spans: u64,
    /// `lineage.log_records` when the session records it (distinct log records assembled into
    /// the run); `None` when it does not.
    pub log_records: Option<u64>,
}

/// The lineage of the run in `run_dir`, or `None` when the run is missing, unreadable, or its
/// `events.jsonl` does not hold `lineage.events` complete lines (a torn write). Reads only the
/// lineage of `session.json` and counts lines, without parsing events.
pub fn written_lineage(run_dir: &Path) -> Option<WrittenLineage> {
    #[derive(serde::Deserialize)]
    struct Lineage {
        spans: u64,
        #[serde(default)]
        events: u64,
        #[serde(default)]
        log_records: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct SessionLineage {
        lineage: Lineage,
    }
    let text = fs::read_to_string(run_dir.join(SESSION_FILE)).ok()?;
    let s: SessionLineage = serde_json::from_str(&text).ok()?;
    let events = fs::read(run_dir.join(EVENTS_FILE)).ok()?;
    let complete_lines = events.iter().filter(|b| **b == b'\n').count() as u64;
    (complete_lines == s.lineage.events).then_some(WrittenLineage {
        spans: s.lineage.spans,
        log_records: s.lineage.log_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use traj_schema::event::{EpisodeEnd, Lineage, Payload, Role};
    use traj_schema::{Outcome, Summary};

    const RUN: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn session(run_id: &str) -> Session {
        Session {
            schema_version: "2".into(),
            run_id: run_id.into(),
            trace_id: run_id.into(),
            goal: "g".into(),
            goal_family: "f".into(),
            task_id: None,
            seed: None,
            seed_kind: None,
            started_at: "2026-11-26T00:00:00Z".into(),
            finished_at: "2026-11-26T00:00:01Z".into(),
            duration_ms: 1000.0,
            service_name: "s".into(),
            source: "traj".into(),
            model_stack: Default::default(),
            runtime_config: Default::default(),
            data_governance: Default::default(),
            summary: Summary {
                outcome: Outcome::Success,
                success: Some(true),
                ..Default::default()
            },
            config_hash: String::new(),
            prompt_hash: String::new(),
            toolset_hash: String::new(),
            lineage: Default::default(),
            root_span_seen: true,
            warnings: Vec::new(),
        }
    }

    fn end_event(run_id: &str) -> Event {
        Event {
            schema_version: "2".into(),
            run_id: run_id.into(),
            trace_id: run_id.into(),
            span_id: "00f067aa0ba902b7".into(),
            step: 0,
            event_id: "e1".into(),
            timestamp: "2026-11-26T00:00:01Z".into(),
            time_unix_nano: 1,
            role: Role::Run,
            parent_event_id: None,
            lineage: Lineage::Root,
            missing_parent_span_id: None,
            source: "traj".into(),
            payload: Payload::EpisodeEnd(EpisodeEnd {
                outcome: Outcome::Success,
                steps: 0,
                failure_class: None,
            }),
        }
    }

    #[test]
    fn write_then_read_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_run(tmp.path(), &session(RUN), &[end_event(RUN)]).unwrap();
        assert_eq!(dir, tmp.path().join(RUN));
        let runs = list_runs(&[tmp.path().to_path_buf()]).unwrap();
        assert_eq!(runs.len(), 1);
        let run = read_run(&runs[0]).unwrap();
        assert_eq!(run.session, session(RUN));
        assert_eq!(run.events, vec![end_event(RUN)]);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn path_traversal_run_ids_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in [
            "../../etc",
            "",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00000000000000000000000000000000",
        ] {
            let err = write_run(tmp.path(), &session(bad), &[]).unwrap_err();
            assert!(matches!(err, RunsError::InvalidRunId(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_line_is_reported_with_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_run(tmp.path(), &session(RUN), &[end_event(RUN)]).unwrap();
        let mut text = fs::read_to_string(dir.join(EVENTS_FILE)).unwrap();
        text.push_str("{\"truncated\": \n");
        fs::write(dir.join(EVENTS_FILE), text).unwrap();
        let err = read_run(&RunDir {
            run_id: RUN.into(),
            path: dir.clone(),
        })
        .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().contains("events.jsonl:2:"), "{err}");
    }

    #[test]
    fn shards_merge_sorted_and_overlap_is_an_error() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let other = "0af7651916cd43dd8448eb211c80319c";
        write_run(a.path(), &session(RUN), &[]).unwrap();
        write_run(b.path(), &session(other), &[]).unwrap();
        let runs = list_runs(&[a.path().into(), b.path().into()]).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            vec![other, RUN]
        );
        write_run(b.path(), &session(RUN), &[]).unwrap();
        assert!(matches!(
            list_runs(&[a.path().into(), b.path().into()]),
            Err(RunsError::DuplicateRun { .. })
        ));
    }

    #[test]
    fn half_written_runs_are_not_listed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join(RUN)).unwrap();
        fs::write(tmp.path().join(RUN).join(EVENTS_FILE), "").unwrap();
        assert!(list_runs(&[tmp.path().to_path_buf()]).unwrap().is_empty());
    }

    #[test]
    fn data_dirs_and_runs_dirs_resolve_alike() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(resolve_runs_dir(tmp.path()), tmp.path());
        let runs = runs_dir_of(tmp.path());
        fs::create_dir_all(&runs).unwrap();
        assert_eq!(resolve_runs_dir(tmp.path()), runs);
        write_run(&runs, &session(RUN), &[end_event(RUN)]).unwrap();
        fs::create_dir_all(runs.join("not-a-run")).unwrap();
        fs::write(runs.join("not-a-run").join(EVENTS_FILE), "").unwrap();
        fs::create_dir_all(runs.join("empty")).unwrap();
        assert_eq!(
            find_run_dirs(tmp.path()).unwrap(),
            vec![run_path(&runs, RUN), runs.join("not-a-run")]
        );
        assert_eq!(list_runs(&[tmp.path().into()]).unwrap().len(), 1);
    }

    #[test]
    fn written_lineage_needs_every_event_line() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = session(RUN);
        s.lineage.spans = 3;
        s.lineage.events = 1;
        s.lineage.log_records = 2;
        let dir = write_run(tmp.path(), &s, &[end_event(RUN)]).unwrap();
        assert_eq!(
            written_lineage(&dir),
            Some(WrittenLineage {
                spans: 3,
                log_records: Some(2),
            })
        );
        fs::write(dir.join(EVENTS_FILE), "").unwrap();
        assert_eq!(written_lineage(&dir), None, "a torn events.jsonl");
        assert_eq!(written_lineage(&tmp.path().join("missing")), None);
    }

    #[test]
    fn a_newer_run_format_is_a_clear_error_not_a_parse_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_run(tmp.path(), &session(RUN), &[end_event(RUN)]).unwrap();
        let run = RunDir {
            run_id: RUN.into(),
            path: dir.clone(),
        };
        let original: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join(SESSION_FILE)).unwrap()).unwrap();
        let with_version = |v: serde_json::Value| {
            let mut s = original.clone();
            s["schema_version"] = v;
            // A newer format may drop or rename any field: the version is read before them.
            s.as_object_mut().unwrap().remove("summary");
            fs::write(dir.join(SESSION_FILE), s.to_string()).unwrap();
            read_run(&run).unwrap_err()
        };
        for (v, found) in [
            (serde_json::json!("3"), "3"),
            (serde_json::json!("99"), "99"),
            (serde_json::json!(3), "3"),
        ] {
            let err = with_version(v);
            assert_eq!(
                err.format,
                Some(RunFormatError::Newer {
                    found: found.into()
                })
            );
            let text = err.to_string();
            assert!(text.contains("session.json: schema_version"), "{text}");
            assert!(
                text.contains(&format!("{found:?} is newer than this build reads (\"2\")")),
                "{text}"
            );
        }
        for v in [serde_json::json!("1"), serde_json::json!("two")] {
            let err = with_version(v.clone());
            assert!(
                matches!(err.format, Some(RunFormatError::Unsupported { .. })),
                "{v}: {err}"
            );
        }
        // The known version with the missing field is an ordinary parse failure, not a version one.
        let err = with_version(serde_json::json!("2"));
        assert_eq!(err.format, None);
        assert!(err.to_string().contains("summary"), "{err}");
        fs::write(dir.join(SESSION_FILE), original.to_string()).unwrap();
        assert!(read_run(&run).is_ok());
        assert_eq!(check_run_format("not json"), Ok(()));
    }
}
