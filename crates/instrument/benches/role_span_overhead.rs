//! Caller-thread cost of one role span (a planner step with input and output recorded, ended),
//! with the OTLP exporter on versus plain `tracing` with no subscriber, and the drop count of the
//! exporter afterwards. Harness-less: prints ns per role span. Run:
//! `cargo bench -p traj-instrument --bench role_span_overhead` (`SPANS=` and `REPS=` to change
//! the size). The collector is a minimal OTLP/HTTP sink on 127.0.0.1 that acknowledges every
//! request, so the exporter's send path is real but the receiver's work is not measured.
//! Two figures per configuration: wall-clock ns and on-CPU ns of the calling thread
//! (`/proc/thread-self/schedstat`), the second being robust to other load on the machine.
//! The bench binary uses mimalloc, as an agent binary should (`docs/benchmarks.md` has the
//! glibc-malloc figures too).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use traj_instrument::{build, ExportConfig, Protocol, RunInfo, RunSpan};
use traj_schema::event::{Outcome, PlanStep, PlannerInput, PlannerOutput};

/// Serves one keep-alive connection: reads each POST and answers `200` with an empty (valid)
/// `ExportTraceServiceResponse`. Counts requests.
fn serve(stream: TcpStream, requests: Arc<AtomicU64>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        requests.fetch_add(1, Ordering::Relaxed);
        out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )?;
    }
}

fn sink() -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let c = counted.clone();
            std::thread::spawn(move || serve(s, c));
        }
    });
    (format!("http://{addr}/v1/traces"), requests)
}

fn planner_io(step: u32) -> (PlannerInput, PlannerOutput) {
    let input = PlannerInput {
        goal: "Compute the total of the amount column in data/orders.csv".into(),
        observation: serde_json::json!({"files": ["data/orders.csv", "README.md"], "cwd": "/tmp/task"}),
        history: vec![format!("step {step}: read_file data/orders.csv -> 24 rows")],
        tool_mask: BTreeMap::from([("read_file".into(), true), ("calc".into(), true)]),
        replan_reason: None,
    };
    let output = PlannerOutput {
        plan: vec![
            PlanStep {
                index: 0,
                description: "read the csv".into(),
                tool: Some("read_file".into()),
            },
            PlanStep {
                index: 1,
                description: "sum the column".into(),
                tool: Some("calc".into()),
            },
        ],
        rationale: "read then sum".into(),
        confidence: Some(0.8),
        llm_calls: Vec::new(),
    };
    (input, output)
}

/// Nanoseconds this thread has spent on a CPU (first field of `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `n` planner spans under one run span; returns (wall, on-CPU) ns per role span on this thread.
fn role_spans(n: u32, io: &(PlannerInput, PlannerOutput)) -> (f64, f64) {
    let run = RunSpan::start(RunInfo {
        agent_name: "bench".into(),
        goal: io.0.goal.clone(),
        ..Default::default()
    });
    let cpu0 = thread_cpu_ns();
    let t = Instant::now();
    for step in 0..n {
        let p = run.planner(step);
        p.input(&io.0).output(&io.1);
        drop(p);
    }
    let wall = t.elapsed().as_nanos() as f64 / f64::from(n);
    let cpu = (thread_cpu_ns() - cpu0) as f64 / f64::from(n);
    run.finish(Outcome::Success, None);
    (wall, cpu)
}

/// Medians of the wall and CPU figures.
fn median(v: Vec<(f64, f64)>) -> (f64, f64) {
    let mid = |mut x: Vec<f64>| {
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    (
        mid(v.iter().map(|p| p.0).collect()),
        mid(v.iter().map(|p| p.1).collect()),
    )
}

fn main() {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let spans = env("SPANS", 10_000);
    let reps = env("REPS", 7);
    let io = planner_io(0);

    // Plain `tracing`, no subscriber: the helpers still serialize and redact their payloads.
    role_spans(spans, &io);
    let plain = median((0..reps).map(|_| role_spans(spans, &io)).collect());

    let (endpoint, requests) = sink();
    let guard = build(ExportConfig {
        endpoint: Some(endpoint),
        protocol: Some(Protocol::HttpProtobuf),
        max_queue_size: 1 << 20,
        ..ExportConfig::default()
    })
    .unwrap();
    let exported = tracing::dispatcher::with_default(guard.dispatch(), || {
        role_spans(spans, &io);
        median((0..reps).map(|_| role_spans(spans, &io)).collect())
    });
    let stats = guard.shutdown().unwrap();
    println!(
        "role span (planner, input+output, ended), ns wall / on-CPU: no subscriber {:.0} / {:.0}, \
         exporter on {:.0} / {:.0}, overhead {:.0} / {:.0}; spans ended {} exported {} dropped {} \
         failed {} in {} requests",
        plain.0,
        plain.1,
        exported.0,
        exported.1,
        exported.0 - plain.0,
        exported.1 - plain.1,
        stats.ended,
        stats.exported,
        stats.dropped,
        stats.failed,
        requests.load(Ordering::Relaxed)
    );
    assert_eq!(stats.dropped + stats.failed, 0, "{stats:?}");
}
