//! The converter's readers: `session.json` + `events.jsonl` text (split at the first NUL byte)
//! through the validator, and, when they parse, through the dataset views.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_datasets::config::PrefConfig;
use traj_datasets::Labels;
use traj_datasets::RunIndex;
use traj_schema::{Event, Session};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (session_text, events_text) = text.split_once('\0').unwrap_or((text, ""));
    let _ = traj_schema::validate::validate_run(session_text, events_text);
    let Ok(session) = serde_json::from_str::<Session>(session_text) else { return };
    let events: Vec<Event> = events_text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let idx = RunIndex::new(&session, &events, &Labels::default());
    let _ = traj_datasets::run_rows(&idx, &PrefConfig::default(), &traj_datasets::config::RowsConfig::default());
});
