//! Span-tree assembly on arbitrary decoded spans: any parents, cycles, links, attributes; every
//! assembled run must serialize and pass the schema validator.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use traj_assemble::{assemble, split_by_trace, MappingRules};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = ExportTraceServiceRequest::decode(data) else { return };
    let rules = MappingRules::default();
    for (trace_id, spans) in split_by_trace(req).traces {
        let run = assemble(trace_id, &spans, &rules);
        let session = serde_json::to_string(&run.session).expect("session serializes");
        let events: String = run
            .events
            .iter()
            .map(|e| serde_json::to_string(e).expect("event serializes") + "\n")
            .collect();
        let check = traj_schema::validate::validate_run(&session, &events);
        assert!(check.is_valid(), "assembled run is invalid: {:?}", check.violations);
    }
});
