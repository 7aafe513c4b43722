//! OTLP/protobuf request decoding (gzip or plain) and per-span validation, as on the ack path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_receiver::body_decode::{decode_request, decompress, Encoding};
use traj_receiver::span_check::check_request;

fuzz_target!(|data: &[u8]| {
    let gz = data.first().is_some_and(|b| b & 1 == 1);
    let body = data.get(1..).unwrap_or_default();
    let Ok(plain) = decompress(body, gz.then_some("gzip"), 1 << 20) else { return };
    if let Ok(mut req) = decode_request(&plain, Encoding::Protobuf) {
        let check = check_request(&mut req);
        assert!(check.accepted + check.rejected > 0 || req.resource_spans.iter().all(|r| r.scope_spans.iter().all(|s| s.spans.is_empty())));
    }
});
