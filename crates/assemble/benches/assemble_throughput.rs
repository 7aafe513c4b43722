//! Throughput of `assemble` on synthetic schema v2 runs (harness-less: prints spans/s and
//! events/s). Run: `cargo bench -p traj-assemble --bench assemble_throughput`; with
//! `CONTENT_BYTES=N` every LLM span also carries GenAI input/output messages of about N bytes
//! (what real agents send with content capture on), so their parsing is measured too.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::time::Instant;
use traj_assemble::{assemble, MappingRules, SpanRecord};

/// GenAI content of about `bytes` bytes: a system prompt, a user turn, a tool call and its
/// result in, a text answer out.
fn with_content(
    mut sp: opentelemetry_proto::tonic::trace::v1::Span,
    bytes: usize,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let filler = "lorem ipsum dolor sit amet ".repeat(bytes / 2 / 27 + 1);
    let input = serde_json::json!([
        {"role": "system", "parts": [{"type": "text", "content": "You are the worker."}]},
        {"role": "user", "parts": [{"type": "text", "content": filler}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "grep", "arguments": {"q": "x"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "found"}]}
    ]);
    let output = serde_json::json!([
        {"role": "assistant", "parts": [{"type": "text", "content": filler}], "finish_reason": "stop"}
    ]);
    sp.attributes
        .push(s("gen_ai.input.messages", &input.to_string()));
    sp.attributes
        .push(s("gen_ai.output.messages", &output.to_string()));
    sp
}

/// One run of `cycles` planner → worker (2 tool attempts, 1 LLM call) → verifier cycles.
fn big_run(cycles: u64, content: usize) -> Vec<SpanRecord> {
    let llm = |id, parent, start, end, model| {
        let sp = llm(id, parent, start, end, model);
        if content > 0 {
            with_content(sp, content)
        } else {
            sp
        }
    };
    let mut spans = vec![rec(run_span(1, 0, cycles * 1000 + 10, "success"))];
    let mut id = 2;
    let mut next = || {
        id += 1;
        id
    };
    for c in 0..cycles {
        let base = c * 1000;
        let p = next();
        spans.push(rec(planner(p, 1, c as i64, base + 1, base + 100, None)));
        spans.push(rec(llm(next(), p, base + 2, base + 90, "m-plan")));
        let w = next();
        let mut ws = worker(w, 1, c as i64, base + 110, base + 600, 1);
        ws.links.push(link(p));
        spans.push(rec(ws));
        spans.push(rec(tool(next(), w, base + 120, base + 200, 1, false)));
        spans.push(rec(tool(next(), w, base + 210, base + 300, 2, true)));
        spans.push(rec(llm(next(), w, base + 310, base + 500, "m-work")));
        let v = next();
        let mut vs = verifier(v, 1, c as i64, base + 610, base + 900, "continue");
        vs.links.push(link(w));
        vs.events
            .push(transition(base + 900, "verifying", "working", "continue"));
        spans.push(rec(vs));
        spans.push(rec(llm(next(), v, base + 620, base + 890, "m-ver")));
    }
    spans
}

fn main() {
    let rules = MappingRules::default();
    let cycles: u64 = std::env::var("CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(250);
    let content: usize = std::env::var("CONTENT_BYTES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let run = big_run(cycles, content);
    let mut shuffled = run.clone();
    shuffle(&mut shuffled, 42);
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(40);
    for (label, spans) in [("sorted", &run), ("shuffled", &shuffled)] {
        // Warm-up.
        let warm = assemble(TRACE, spans, &rules);
        let events_per_run = warm.events.len();
        let t = Instant::now();
        let mut total = 0usize;
        for _ in 0..reps {
            total += std::hint::black_box(assemble(TRACE, spans, &rules))
                .events
                .len();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label}: {} spans, {events_per_run} events per run; {:.0} spans/s, {:.0} events/s ({reps} runs in {secs:.3} s)",
            spans.len(),
            (spans.len() * reps) as f64 / secs,
            total as f64 / secs,
        );
    }
}
