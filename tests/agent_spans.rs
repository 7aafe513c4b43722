//! End-to-end check of the producer side: the example agent, instrumented only through
//! `traj-instrument`, exports schema v2 traces to a real OTLP server on 127.0.0.1 (tonic gRPC,
//! and axum HTTP/protobuf), and what arrives follows `docs/conventions.md`.

#[path = "../examples/agent/lib.rs"]
#[allow(dead_code)]
mod agent;

use agent::batch::{run_batch, Summary};
use agent::episode::{run_episode, AgentConfig, EpisodeRecord};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use traj_instrument::{ExportConfig, Protocol, TelemetryGuard};
use traj_schema::event::Outcome;
use traj_schema::keys;
use traj_schema::{ChatMessage, MessagePart};

/// Tests run one at a time: `tracing` caches callsite interest process-wide, and episodes run
/// without any subscriber on one thread while another test registers its dispatcher can leave
/// callsites cached as disabled for that dispatcher (tracing-core behaviour, not an export
/// problem). A real agent calls `init()` once, before its first span.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spans received, with the `service.name` of their resource.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut out = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Av::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push((service.clone(), s));
                }
            }
        }
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A real OTLP server on 127.0.0.1:0 (gRPC or HTTP/protobuf) running on its own runtime.
struct Collector {
    _rt: tokio::runtime::Runtime,
    endpoint: String,
    received: Received,
}

impl Collector {
    fn grpc() -> Collector {
        let rt = runtime();
        let received = Received::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = TraceServiceServer::new(received.clone());
        rt.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Collector {
            _rt: rt,
            endpoint: format!("http://{addr}"),
            received,
        }
    }

    fn http() -> Collector {
        let rt = runtime();
        let received = Received::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(req) => {
                            sink.add(req);
                            let resp = ExportTraceServiceResponse {
                                partial_success: None,
                            };
                            (
                                axum::http::StatusCode::OK,
                                [("content-type", "application/x-protobuf")],
                                resp.encode_to_vec(),
                            )
                        }
                        Err(_) => (
                            axum::http::StatusCode::BAD_REQUEST,
                            [("content-type", "text/plain")],
                            b"bad protobuf".to_vec(),
                        ),
                    }
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector {
            _rt: rt,
            endpoint: format!("http://{addr}"),
            received,
        }
    }

    fn telemetry(&self, protocol: Protocol, service: &str) -> TelemetryGuard {
        traj_instrument::build(ExportConfig {
            endpoint: Some(self.endpoint.clone()),
            protocol: Some(protocol),
            service_name: Some(service.into()),
            stderr_log_filter: None,
            ..ExportConfig::default()
        })
        .unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Av> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str(s: &Span, key: &str) -> Option<String> {
    match attr(s, key) {
        Some(Av::StringValue(v)) => Some(v.clone()),
        _ => None,
    }
}

fn attr_int(s: &Span, key: &str) -> Option<i64> {
    match attr(s, key) {
        Some(Av::IntValue(v)) => Some(*v),
        _ => None,
    }
}

fn attr_json<T: serde::de::DeserializeOwned>(s: &Span, key: &str) -> T {
    let text = attr_str(s, key).unwrap_or_else(|| panic!("{} lacks {key}", s.name));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {key}: {e}: {text}", s.name))
}

fn role(s: &Span) -> String {
    attr_str(s, keys::ROLE).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn traces(spans: &[(String, Span)]) -> BTreeMap<String, Vec<Span>> {
    let mut t: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for (_, s) in spans {
        t.entry(hex(&s.trace_id)).or_default().push(s.clone());
    }
    t
}

/// The LLM spans carry the models' real conversations: every role span's calls record their
/// system instructions, input and output messages and response; the planner's and verifier's
/// answers are their payloads; a worker step is a tool loop whose tool calls are its tool spans
/// (same call id, name and arguments), each later call carrying the earlier turns and the tool's
/// response, the last answering with the step's summary. Returns how many steps needed more than
/// one tool call.
fn check_conversations(spans: &[Span]) -> usize {
    let children = |owner: &Span, r: &str| -> Vec<&Span> {
        let mut v: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == owner.span_id && role(s) == r)
            .collect();
        v.sort_by_key(|s| s.start_time_unix_nano);
        v
    };
    let output = |l: &Span| -> ChatMessage {
        let out: Vec<ChatMessage> = attr_json(l, keys::GEN_AI_OUTPUT_MESSAGES);
        assert_eq!(out.len(), 1, "{}", l.name);
        out.into_iter().next().unwrap()
    };
    let mut loops = 0;
    for owner in spans
        .iter()
        .filter(|s| matches!(role(s).as_str(), "planner" | "worker" | "verifier"))
    {
        let llms = children(owner, "llm");
        assert!(!llms.is_empty(), "{} made no LLM call", owner.name);
        for l in &llms {
            assert!(l.end_time_unix_nano <= owner.end_time_unix_nano);
            let system: Vec<MessagePart> = attr_json(l, keys::GEN_AI_SYSTEM_INSTRUCTIONS);
            assert!(
                matches!(&system[..], [MessagePart::Text { content }] if content.starts_with("You are the "))
            );
            let input: Vec<ChatMessage> = attr_json(l, keys::GEN_AI_INPUT_MESSAGES);
            assert_eq!(input[0].role, "user");
            assert!(attr_str(l, keys::GEN_AI_RESPONSE_ID).is_some_and(|id| id.starts_with("sim-")));
            let prompt = attr_str(l, keys::PROMPT_RENDERED).unwrap();
            assert_eq!(
                attr_int(l, keys::GEN_AI_USAGE_INPUT_TOKENS),
                Some(prompt.len().div_ceil(4) as i64)
            );
        }
        let last = output(llms[llms.len() - 1]);
        assert_eq!(
            (last.role.as_str(), last.finish_reason.as_deref()),
            ("assistant", Some("stop"))
        );
        match role(owner).as_str() {
            "planner" => {
                assert_eq!(llms.len(), 1);
                let said: serde_json::Value = serde_json::from_str(&last.text()).unwrap();
                let payload: serde_json::Value = attr_json(owner, keys::PLANNER_OUTPUT);
                assert_eq!(said["plan"], payload["plan"]);
                assert_eq!(said["rationale"], payload["rationale"]);
            }
            "verifier" => {
                assert_eq!(llms.len(), 1);
                let said: serde_json::Value = serde_json::from_str(&last.text()).unwrap();
                let payload: serde_json::Value = attr_json(owner, keys::VERIFIER_OUTPUT);
                assert_eq!(
                    said["verdict"].as_str(),
                    attr_str(owner, keys::VERDICT).as_deref()
                );
                assert_eq!(said["feedback"], payload["feedback"]);
                assert_eq!(said["risk_flags"], payload["risk_flags"]);
            }
            _ => {
                let tools = children(owner, "tool");
                assert_eq!(
                    llms.len(),
                    tools.len() + 1,
                    "one model turn per tool call, one to close"
                );
                let offered: Vec<serde_json::Value> =
                    attr_json(llms[0], keys::GEN_AI_TOOL_DEFINITIONS);
                let names: Vec<&str> = offered.iter().filter_map(|t| t["name"].as_str()).collect();
                assert_eq!(names, agent::tools::tool_names());
                assert!(offered
                    .iter()
                    .all(|t| t["type"] == "function" && t["parameters"]["required"].is_array()));
                for (i, t) in tools.iter().enumerate() {
                    let call = output(llms[i]);
                    assert_eq!(call.finish_reason.as_deref(), Some("tool_call"));
                    let call_id = attr_str(t, keys::GEN_AI_TOOL_CALL_ID).unwrap();
                    match &call.parts[..] {
                        [MessagePart::ToolCall {
                            id,
                            name,
                            arguments,
                        }] => {
                            assert_eq!(id, &call_id);
                            assert_eq!(Some(name), attr_str(t, keys::GEN_AI_TOOL_NAME).as_ref());
                            let args: serde_json::Value =
                                attr_json(t, keys::GEN_AI_TOOL_CALL_ARGUMENTS);
                            assert_eq!(arguments, &args);
                        }
                        other => panic!("turn {i} is not one tool call: {other:?}"),
                    }
                    let before: Vec<ChatMessage> = attr_json(llms[i], keys::GEN_AI_INPUT_MESSAGES);
                    let after: Vec<ChatMessage> =
                        attr_json(llms[i + 1], keys::GEN_AI_INPUT_MESSAGES);
                    assert_eq!(after.len(), before.len() + 2);
                    assert_eq!(after[..before.len()], before[..]);
                    assert_eq!(
                        after[before.len()],
                        ChatMessage {
                            finish_reason: None,
                            ..call
                        }
                    );
                    let response = &after[before.len() + 1];
                    assert_eq!(response.role, "tool");
                    match &response.parts[..] {
                        [MessagePart::ToolCallResponse { id, response }] => {
                            assert_eq!(id, &call_id);
                            match attr_str(t, keys::GEN_AI_TOOL_CALL_RESULT) {
                                Some(r) => assert_eq!(
                                    response,
                                    &serde_json::from_str::<serde_json::Value>(&r).unwrap()
                                ),
                                None => assert_eq!(
                                    response["error"]["type"].as_str(),
                                    attr_str(t, keys::ERROR_TYPE).as_deref()
                                ),
                            }
                        }
                        other => panic!("not a tool response: {other:?}"),
                    }
                }
                let payload: serde_json::Value = attr_json(owner, keys::WORKER_OUTPUT);
                assert_eq!(payload["summary"].as_str(), Some(last.text().as_str()));
                if tools.len() > 1 {
                    loops += 1;
                }
            }
        }
    }
    loops
}

fn run_and_collect(
    c: &Collector,
    protocol: Protocol,
    cfg: &AgentConfig,
) -> (Vec<EpisodeRecord>, BTreeMap<String, Vec<Span>>) {
    let telemetry = c.telemetry(protocol, "agent-under-test");
    let records = run_batch(cfg, &telemetry);
    let stats = telemetry.shutdown().unwrap();
    assert_eq!(stats.lost(), 0, "{stats:?}");
    assert_eq!(stats.exported, stats.ended, "{stats:?}");
    let spans = c.received.spans();
    assert_eq!(
        spans.len() as u64,
        stats.exported,
        "collector got every exported span"
    );
    assert!(spans.iter().all(|(svc, _)| svc == "agent-under-test"));
    (records, traces(&spans))
}

#[test]
fn grpc_runs_arrive_as_complete_schema_v2_traces() {
    let _serial = serial();
    let c = Collector::grpc();
    let cfg = AgentConfig {
        tasks: 24,
        seed: 7,
        concurrency: 3,
        failure_rate: 0.8,
        ..AgentConfig::default()
    };
    let (records, traces) = run_and_collect(&c, Protocol::Grpc, &cfg);
    assert_eq!(traces.len(), records.len(), "one trace per run");

    let mut tool_errors_seen = 0u32;
    let mut tool_loops = 0;
    for rec in &records {
        let spans = traces.get(&rec.run_id).expect("trace of the run");
        tool_loops += check_conversations(spans);
        let ids: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
        let roots: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "{}: exactly one root", rec.run_id);
        let root = roots[0];
        assert_eq!(role(root), "run");
        assert_eq!(attr_str(root, keys::SCHEMA_VERSION).as_deref(), Some("2"));
        for k in [keys::CONFIG_HASH, keys::PROMPT_HASH, keys::TOOLSET_HASH] {
            assert!(attr_str(root, k).unwrap().starts_with("sha256:"), "{k}");
        }
        assert_eq!(attr_int(root, keys::SEED), Some(rec.seed as i64));
        assert_eq!(
            attr_str(root, keys::OUTCOME).as_deref(),
            Some(rec.outcome.as_str())
        );
        assert_eq!(attr_int(root, keys::SPANS_DROPPED), Some(0));
        assert_eq!(
            attr_str(root, keys::GEN_AI_CONVERSATION_ID).as_deref(),
            Some(rec.run_id.as_str())
        );

        for s in spans {
            // Parents intact.
            if !s.parent_span_id.is_empty() {
                assert!(
                    ids.contains_key(&s.parent_span_id),
                    "{}: dangling parent",
                    s.name
                );
            }
            // Every required key of the span's role is set.
            let r = role(s);
            for spec in keys::ATTRIBUTES
                .iter()
                .filter(|a| a.required && a.on.contains(&r.as_str()))
            {
                assert!(
                    attr(s, spec.key).is_some(),
                    "{r} span {} lacks {}",
                    s.name,
                    spec.key
                );
            }
            match r.as_str() {
                "planner" | "worker" | "verifier" => {
                    assert!(attr_int(s, keys::STEP).is_some());
                    assert_eq!(ids[&s.parent_span_id].span_id, root.span_id);
                }
                "tool" => {
                    assert_eq!(role(ids[&s.parent_span_id]), "worker");
                    if attr_str(s, keys::TOOL_STATUS).as_deref() == Some("error") {
                        tool_errors_seen += 1;
                        let st = s.status.as_ref().unwrap();
                        assert_eq!(st.code, StatusCode::Error as i32);
                        let exc = s
                            .events
                            .iter()
                            .find(|e| e.name == "exception")
                            .expect("exception event");
                        assert!(exc
                            .attributes
                            .iter()
                            .any(|kv| kv.key == keys::EXCEPTION_TYPE));
                        assert!(attr_str(s, keys::ERROR_TYPE).is_some());
                    }
                }
                "llm" => assert!(matches!(
                    role(ids[&s.parent_span_id]).as_str(),
                    "planner" | "worker" | "verifier"
                )),
                "run" => {}
                other => panic!("unexpected role {other:?}"),
            }
        }
        // Links: worker → planner (or previous verifier), verifier → worker.
        for s in spans {
            let linked: Vec<String> = s
                .links
                .iter()
                .map(|l| {
                    assert_eq!(l.trace_id, s.trace_id);
                    role(ids.get(&l.span_id).expect("link target in the trace"))
                })
                .collect();
            match role(s).as_str() {
                "worker" => assert!(
                    linked.iter().any(|r| r == "planner" || r == "verifier"),
                    "{linked:?}"
                ),
                "verifier" => assert_eq!(linked, vec!["worker".to_string()]),
                _ => {}
            }
        }
        assert!(spans
            .iter()
            .any(|s| role(s) == "worker"
                && s.links.iter().any(|l| role(ids[&l.span_id]) == "planner")));
        // The number of verdicts equals verifier spans, in order of steps.
        let mut verdicts: Vec<(i64, String)> = spans
            .iter()
            .filter(|s| role(s) == "verifier")
            .map(|s| {
                (
                    attr_int(s, keys::STEP).unwrap(),
                    attr_str(s, keys::VERDICT).unwrap(),
                )
            })
            .collect();
        verdicts.sort();
        let expected: Vec<String> = rec
            .verdicts
            .iter()
            .map(|v| v.as_str().to_string())
            .collect();
        assert_eq!(
            verdicts.into_iter().map(|v| v.1).collect::<Vec<_>>(),
            expected
        );
    }
    let expected_errors: u32 = records.iter().map(|r| r.tool_errors).sum();
    assert!(
        expected_errors > 0,
        "failure injection produced tool errors"
    );
    assert_eq!(tool_errors_seen, expected_errors);
    assert!(tool_loops > 0, "some worker step retried its tool call");
}

#[test]
fn runs_cut_short_by_max_steps_are_exported_as_aborted() {
    let _serial = serial();
    let c = Collector::grpc();
    let cfg = AgentConfig {
        tasks: 12,
        seed: 3,
        failure_rate: 0.0,
        max_steps: 1,
        ..AgentConfig::default()
    };
    let (records, traces) = run_and_collect(&c, Protocol::Grpc, &cfg);
    let aborted: Vec<&EpisodeRecord> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Aborted)
        .collect();
    assert!(
        !aborted.is_empty(),
        "two-step tasks cannot finish in one cycle"
    );
    for rec in aborted {
        let root = traces[&rec.run_id]
            .iter()
            .find(|s| s.parent_span_id.is_empty())
            .unwrap();
        assert_eq!(attr_str(root, keys::OUTCOME).as_deref(), Some("aborted"));
        assert_eq!(
            attr_str(root, keys::FAILURE_CLASS).as_deref(),
            Some("max_steps")
        );
    }
}

#[test]
fn http_protobuf_export_delivers_every_span() {
    let _serial = serial();
    let c = Collector::http();
    let cfg = AgentConfig {
        tasks: 8,
        seed: 11,
        ..AgentConfig::default()
    };
    let (records, traces) = run_and_collect(&c, Protocol::HttpProtobuf, &cfg);
    assert_eq!(traces.len(), records.len());
    for rec in &records {
        assert!(traces[&rec.run_id].iter().any(|s| role(s) == "run"));
    }
}

#[test]
fn a_burst_of_over_10k_spans_loses_nothing() {
    let _serial = serial();
    let c = Collector::grpc();
    let cfg = AgentConfig {
        tasks: 800,
        seed: 5,
        concurrency: 4,
        flush_each_run: false,
        ..AgentConfig::default()
    };
    let telemetry = c.telemetry(Protocol::Grpc, "burst");
    let started = std::time::Instant::now();
    let records = run_batch(&cfg, &telemetry);
    let produced = started.elapsed();
    let stats = telemetry.shutdown().unwrap();
    // Figures only (no timing assertion): see docs/instrumentation.md.
    println!(
        "burst: {} runs, {stats:?}, produced in {produced:?}, exported by {:?}",
        records.len(),
        started.elapsed()
    );
    assert!(stats.ended >= 10_000, "burst too small: {stats:?}");
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");
    assert_eq!(stats.exported, stats.ended);
    assert_eq!(c.received.spans().len() as u64, stats.ended);
    assert_eq!(traces(&c.received.spans()).len(), records.len());
}

/// Attributes that legitimately differ between two runs of the same seed.
fn comparable(spans: &[Span]) -> Vec<String> {
    let mut out: Vec<String> = spans
        .iter()
        .map(|s| {
            let mut attrs: Vec<String> = s
                .attributes
                .iter()
                .filter(|kv| kv.key != keys::GEN_AI_CONVERSATION_ID)
                .map(|kv| format!("{}={:?}", kv.key, kv.value))
                .collect();
            attrs.sort();
            let events: Vec<String> = s.events.iter().map(|e| e.name.clone()).collect();
            format!("{} {:?} {:?}", s.name, attrs, events)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_gives_same_tasks_decisions_and_payloads() {
    let _serial = serial();
    let cfg = AgentConfig {
        tasks: 12,
        seed: 99,
        concurrency: 3,
        failure_rate: 0.7,
        ..AgentConfig::default()
    };
    let (a_recs, a_traces) = run_and_collect(&Collector::grpc(), Protocol::Grpc, &cfg);
    let (b_recs, b_traces) = run_and_collect(&Collector::grpc(), Protocol::Grpc, &cfg);
    for (a, b) in a_recs.iter().zip(&b_recs) {
        assert_ne!(a.run_id, b.run_id);
        assert_eq!(
            (&a.task_id, a.seed, &a.decisions, a.outcome),
            (&b.task_id, b.seed, &b.decisions, b.outcome)
        );
        assert_eq!(
            comparable(&a_traces[&a.run_id]),
            comparable(&b_traces[&b.run_id])
        );
    }
    let other = AgentConfig {
        seed: 100,
        ..cfg.clone()
    };
    let c: Vec<EpisodeRecord> = (0..other.tasks).map(|i| run_episode(&other, i)).collect();
    assert_ne!(
        c.iter().map(|r| &r.decisions).collect::<Vec<_>>(),
        a_recs.iter().map(|r| &r.decisions).collect::<Vec<_>>()
    );
}

#[test]
fn default_settings_give_a_useful_class_balance() {
    let _serial = serial();
    let cfg = AgentConfig::default();
    // No subscriber: spans are no-ops, decisions are the same.
    let records: Vec<EpisodeRecord> = (0..300).map(|i| run_episode(&cfg, i)).collect();
    let s = Summary::of(&records);
    println!("{}", s.line(&Default::default()));
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d as f64;
    assert!(pct(s.replan, s.verdicts) >= 15.0, "{s:?}");
    assert!(pct(s.end, s.verdicts) >= 20.0, "{s:?}");
    let success = pct(s.success, s.runs);
    assert!((60.0..=85.0).contains(&success), "{s:?}");
}
