//! Replays the committed `run_reader` fuzz corpus (`tests/fuzz/corpus/run_reader/`; each input is
//! `session.json` NUL `events.jsonl`) as an ordinary test: the validator and the dataset views take
//! every input without panicking, and every run the validator accepts parses and yields rows.

use std::path::PathBuf;
use traj_datasets::config::PrefConfig;
use traj_datasets::Labels;
use traj_datasets::RunIndex;
use traj_schema::{Event, Session};

#[test]
fn run_reader_corpus_reads_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus/run_reader");
    let (mut valid, mut rows) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let (session_text, events_text) = text.split_once('\0').unwrap_or((text, ""));
        let is_valid = traj_schema::validate::validate_run(session_text, events_text).is_valid();
        let session = serde_json::from_str::<Session>(session_text);
        assert!(
            !is_valid || session.is_ok(),
            "{}: valid run whose session.json does not parse",
            path.display()
        );
        let Ok(session) = session else { continue };
        let events: Vec<Event> = events_text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let idx = RunIndex::new(&session, &events, &Labels::default());
        let n = traj_datasets::run_rows(
            &idx,
            &PrefConfig::default(),
            &traj_datasets::config::RowsConfig::default(),
        )
        .len();
        if is_valid {
            valid += 1;
            rows += n;
        }
    }
    // The 10 demo runs among the seeds are valid and produce training rows.
    assert!(valid >= 10 && rows > 0, "{valid} valid runs, {rows} rows");
}
