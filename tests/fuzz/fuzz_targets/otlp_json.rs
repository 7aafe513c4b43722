//! OTLP/JSON request decoding and per-span validation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use traj_receiver::body_decode::{decode_request, Encoding};
use traj_receiver::span_check::check_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut req) = decode_request(data, Encoding::Json) {
        let _ = check_request(&mut req);
    }
});
