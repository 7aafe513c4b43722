//! `traj validate DIR [DIR..]`: checks every run under `DIR/runs/*` (or `DIR/*` when DIR holds
//! run directories) against schema v2, prints each violation with its location and the totals.
//! Exit status 1 when any run is invalid (or none was found).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use traj_runs::{EVENTS_FILE, SESSION_FILE};
use traj_schema::validate::validate_run;

#[derive(clap::Args)]
pub struct Args {
    /// Data directories (holding `runs/`) or runs directories (holding `<run_id>/`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Print only the totals and the invalid runs' violations, not one line per valid run.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    runs: u64,
    runs_valid: u64,
    events: u64,
    events_valid_lineage: u64,
}

/// Validates one run directory; returns its violations as printable lines.
fn check_run(dir: &Path, totals: &mut Totals) -> Vec<String> {
    let mut problems = Vec::new();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !traj_schema::is_valid_run_id(&name) {
        problems.push(format!(
            "{}: directory name is not a run id (32 lowercase hex digits)",
            dir.display()
        ));
    }
    let read = |file: &str, problems: &mut Vec<String>| -> String {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", dir.join(file).display()));
                String::new()
            }
        }
    };
    let session = read(SESSION_FILE, &mut problems);
    let events = read(EVENTS_FILE, &mut problems);
    if let Err(e) = traj_runs::check_run_format(&session) {
        // The fields of another format version cannot be judged by this build's schema.
        problems.push(format!("{}/{SESSION_FILE}: {e}", dir.display()));
        return problems;
    }
    let check = validate_run(&session, &events);
    totals.events += check.events;
    totals.events_valid_lineage += check.events_with_valid_lineage;
    if let Some(s) = &check.session {
        if s.run_id != name && traj_schema::is_valid_run_id(&s.run_id) {
            problems.push(format!(
                "{}: session.json:$.run_id {} differs from the directory name",
                dir.display(),
                s.run_id
            ));
        }
    }
    for v in &check.violations {
        problems.push(format!("{}/{v}", dir.display()));
    }
    problems
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut totals = Totals::default();
    for dir in &args.dirs {
        let runs = traj_runs::find_run_dirs(dir)
            .with_context(|| format!("cannot list the runs of {}", dir.display()))?;
        for run in runs {
            totals.runs += 1;
            let problems = check_run(&run, &mut totals);
            if problems.is_empty() {
                totals.runs_valid += 1;
                if !args.quiet {
                    println!("ok      {}", run.display());
                }
            } else {
                println!("INVALID {} ({} violations)", run.display(), problems.len());
                for p in problems {
                    println!("  {p}");
                }
            }
        }
    }
    let pct = if totals.events == 0 {
        100.0
    } else {
        100.0 * totals.events_valid_lineage as f64 / totals.events as f64
    };
    println!(
        "runs: {}  valid: {}  invalid: {}  events: {}  events with valid lineage: {} ({pct:.1}%)",
        totals.runs,
        totals.runs_valid,
        totals.runs - totals.runs_valid,
        totals.events,
        totals.events_valid_lineage,
    );
    if totals.runs == 0 {
        eprintln!("traj validate: no runs found");
        return Ok(ExitCode::from(1));
    }
    Ok(if totals.runs_valid == totals.runs {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "0af7651916cd43dd8448eb211c80319c";

    fn session_json(run_id: &str, events: u64) -> String {
        serde_json::json!({
            "schema_version": "2", "run_id": run_id, "trace_id": run_id, "goal": "g",
            "goal_family": "f", "seed": null, "started_at": "2026-11-26T00:00:00Z",
            "finished_at": "2026-11-26T00:00:01Z", "duration_ms": 1000.0, "service_name": "a",
            "source": "traj", "model_stack": {}, "runtime_config": {},
            "data_governance": {"redaction_policy": "", "redaction_version": "", "pii_scan_status": ""},
            "summary": {"outcome": "success", "success": true, "step_count": 0, "llm_calls": 0,
                "tool_calls": 0, "tool_errors": 0, "input_tokens": 0, "output_tokens": 0,
                "cost_estimate_usd": 0.0, "spans_dropped_at_source": 0},
            "config_hash": "", "prompt_hash": "", "toolset_hash": "",
            "lineage": {"spans": 1, "events": events, "root_events": 0, "parented_events": 0,
                "orphan_events": 0, "unmapped_spans": 0, "duplicate_spans": 0},
            "root_span_seen": true
        })
        .to_string()
    }

    #[test]
    fn finds_runs_in_a_data_dir_and_reports_violations() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        let good = runs.join(RUN);
        std::fs::create_dir_all(&good).unwrap();
        std::fs::write(good.join(SESSION_FILE), session_json(RUN, 0)).unwrap();
        std::fs::write(good.join(EVENTS_FILE), "").unwrap();
        let bad = runs.join("not-a-run");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(SESSION_FILE), session_json(RUN, 3)).unwrap();
        std::fs::create_dir_all(runs.join("empty")).unwrap();

        let dirs = traj_runs::find_run_dirs(tmp.path()).unwrap();
        assert_eq!(dirs, vec![good.clone(), bad.clone()]);
        let mut totals = Totals::default();
        assert!(check_run(&good, &mut totals).is_empty());
        let problems = check_run(&bad, &mut totals);
        let all = problems.join("\n");
        assert!(all.contains("directory name is not a run id"), "{all}");
        assert!(all.contains("events.jsonl"), "{all}");
        assert!(all.contains("session.json:$.lineage.events"), "{all}");
        // The runs dir itself works too.
        assert_eq!(traj_runs::find_run_dirs(&runs).unwrap().len(), 2);
    }

    #[test]
    fn a_newer_run_format_is_named_not_reported_field_by_field() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join(RUN);
        std::fs::create_dir_all(&run).unwrap();
        let mut s: serde_json::Value = serde_json::from_str(&session_json(RUN, 0)).unwrap();
        s["schema_version"] = "3".into();
        s.as_object_mut().unwrap().remove("summary");
        std::fs::write(run.join(SESSION_FILE), s.to_string()).unwrap();
        std::fs::write(run.join(EVENTS_FILE), "").unwrap();
        let problems = check_run(&run, &mut Totals::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(
                "session.json: schema_version \"3\" is newer than this build reads (\"2\")"
            ),
            "{problems:?}"
        );
    }
}
