//! OTLP/protobuf request decoding (gzip or plain) and per-span validation, as on the ack path:
//! after `check_request` exactly the accepted spans remain, each of them valid.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_receiver::{decode_request, decompress, Encoding};
use traj_receiver::{check_request, span_problem};

fuzz_target!(|data: &[u8]| {
    // Bit 0 of the first byte selects gzip; the rest is the body.
    let gz = data.first().is_some_and(|b| b & 1 == 1);
    let body = data.get(1..).unwrap_or_default();
    let Ok(plain) = decompress(body, gz.then_some("gzip"), 1 << 20) else { return };
    if let Ok(mut req) = decode_request(&plain, Encoding::Protobuf) {
        let check = check_request(&mut req);
        let kept: Vec<_> =
            req.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
        assert_eq!(kept.len() as u64, check.accepted);
        assert!(kept.iter().all(|s| span_problem(s).is_none()));
        assert_eq!(check.rejected == 0, check.message.is_empty());
    }
});
