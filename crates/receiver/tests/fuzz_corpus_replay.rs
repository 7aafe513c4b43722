//! Replays the committed `otlp_protobuf` and `otlp_json` fuzz corpora (`tests/fuzz/corpus/`) as
//! ordinary tests: decoding never panics, and after `check_request` exactly the accepted spans
//! remain, each of them valid.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::path::{Path, PathBuf};
use traj_receiver::{check_request, span_problem};
use traj_receiver::{decode_request, decompress, Encoding};

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

/// Checks the request and returns how many spans were accepted.
fn check_and_verify(path: &Path, mut req: ExportTraceServiceRequest) -> u64 {
    let check = check_request(&mut req);
    let kept: Vec<_> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(kept.len() as u64, check.accepted, "{}", path.display());
    for span in kept {
        assert_eq!(span_problem(span), None, "{}", path.display());
    }
    assert_eq!(
        check.rejected == 0,
        check.message.is_empty(),
        "{}",
        path.display()
    );
    check.accepted
}

#[test]
fn otlp_protobuf_corpus_keeps_exactly_the_valid_spans() {
    let (mut decoded, mut accepted) = (0, 0);
    for (path, data) in corpus("otlp_protobuf") {
        // Same framing as the fuzz target: bit 0 of the first byte selects gzip.
        let gz = data.first().is_some_and(|b| b & 1 == 1);
        let body = data.get(1..).unwrap_or_default();
        let Ok(plain) = decompress(body, gz.then_some("gzip"), 1 << 20) else {
            continue;
        };
        if let Ok(req) = decode_request(&plain, Encoding::Protobuf) {
            decoded += 1;
            accepted += check_and_verify(&path, req);
        }
    }
    assert!(
        decoded >= 10 && accepted >= 100,
        "decoded {decoded}, accepted {accepted}"
    );
}

#[test]
fn otlp_json_corpus_keeps_exactly_the_valid_spans() {
    let (mut decoded, mut accepted) = (0, 0);
    for (path, data) in corpus("otlp_json") {
        if let Ok(req) = decode_request(&data, Encoding::Json) {
            decoded += 1;
            accepted += check_and_verify(&path, req);
        }
    }
    assert!(
        decoded >= 10 && accepted >= 100,
        "decoded {decoded}, accepted {accepted}"
    );
}
