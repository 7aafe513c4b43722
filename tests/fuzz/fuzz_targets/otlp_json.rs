//! OTLP/JSON request decoding and per-span validation: no panic on any JSON, and after
//! `check_request` exactly the accepted spans remain, each of them valid.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_receiver::{decode_request, Encoding};
use traj_receiver::{check_request, span_problem};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut req) = decode_request(data, Encoding::Json) {
        let check = check_request(&mut req);
        let kept: Vec<_> =
            req.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
        assert_eq!(kept.len() as u64, check.accepted);
        assert!(kept.iter().all(|s| span_problem(s).is_none()));
        assert_eq!(check.rejected == 0, check.message.is_empty());
    }
});
