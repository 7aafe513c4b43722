//! Replays the committed `redact` fuzz corpus (`tests/fuzz/corpus/redact/`) as an ordinary test:
//! redacting any corpus text twice gives the same result as redacting it once.

use std::path::PathBuf;
use traj_redact::Policy;

#[test]
fn redact_corpus_is_idempotent() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus/redact");
    let policy = Policy::default_dataset();
    let (mut texts, mut changed) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        texts += 1;
        let (once, _) = policy.redact_str(text);
        let (twice, counts) = policy.redact_str(&once);
        assert_eq!(
            once,
            twice,
            "{}: second pass found {counts:?}",
            path.display()
        );
        changed += usize::from(once != text);
    }
    assert!(
        texts >= 100,
        "only {texts} UTF-8 inputs in {}",
        dir.display()
    );
    assert!(changed > 0, "no corpus input was redacted at all");
}
