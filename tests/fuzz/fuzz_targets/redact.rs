//! Redaction on arbitrary text: never panics, output is valid UTF-8, redacting twice is stable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_redact::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let policy = Policy::default_dataset();
    let (once, _) = policy.redact_str(text);
    let (twice, counts) = policy.redact_str(&once);
    assert_eq!(once, twice, "redaction is not idempotent (second pass found {:?})", counts);
});
