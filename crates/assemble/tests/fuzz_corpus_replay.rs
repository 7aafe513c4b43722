//! Replays the committed `assemble` fuzz corpus (`tests/fuzz/corpus/assemble/`) as an ordinary
//! test, so CI checks the fuzz target's property without running libFuzzer: every decodable input
//! assembles into runs that serialize and pass the schema validator.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::path::PathBuf;
use traj_assemble::{assemble, split_by_trace, MappingRules};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

#[test]
fn assemble_corpus_yields_only_valid_runs() {
    let rules = MappingRules::default();
    let (mut decoded, mut runs) = (0, 0);
    for (path, data) in corpus("assemble") {
        let Ok(req) = ExportTraceServiceRequest::decode(data.as_slice()) else {
            continue;
        };
        decoded += 1;
        for (trace_id, spans) in split_by_trace(req).traces {
            let run = assemble(trace_id, &spans, &rules);
            let session = serde_json::to_string(&run.session).unwrap();
            let events: String = run
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let check = traj_schema::validate::validate_run(&session, &events);
            assert!(
                check.is_valid(),
                "{}: assembled run is invalid: {:?}",
                path.display(),
                check.violations
            );
            runs += 1;
        }
    }
    // The seeds alone (10 demo traces) decode and assemble; an empty replay would prove nothing.
    assert!(
        decoded >= 10 && runs >= 10,
        "decoded {decoded} inputs, {runs} runs"
    );
}
