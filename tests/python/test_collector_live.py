"""A real OpenTelemetry Collector and a real Jaeger v2 in front of / behind traj, each run from the
configs in collector-config/ as they are (only addresses come from the environment):
fan-out (Collector -> traj and Jaeger), `traj serve --forward` to Jaeger, sharding by trace id
with the loadbalancing exporter (and a receiver killed mid-stream), and traj's backpressure
answers retried by the real Collector. Figures each test measured are printed (`-s`) and written
to target/otel-live/<test>.json; docs/deployment.md quotes them."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import AGENT, TRAJ, start_receiver
from otel_live import (ROOT, Collector, Jaeger, addr, check_run_matches_trace, jaeger_parent,
                       jaeger_tags, poll, run_agent, traj_metrics)

FIGURES = ROOT / "target" / "otel-live"


def record(name, figures):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


@pytest.fixture
def stack(tmp_path):
    """Started processes, stopped at teardown in reverse order (even when the test fails)."""
    procs = []
    yield procs
    for p in reversed(procs):
        p.stop()


def genai_episode(tracer, n):
    """One episode of an agent that knows nothing of traj: only GenAI semantic conventions."""
    with tracer.start_as_current_span("invoke_workflow research", attributes={
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "research"}) as root:
        with tracer.start_as_current_span("invoke_agent planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"find fact {n}"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "1. search"}]}]),
        }):
            with tracer.start_as_current_span("chat gpt-x", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-x",
                "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 5}):
                pass
        with tracer.start_as_current_span("invoke_agent executor", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "executor"}):
            with tracer.start_as_current_span("execute_tool search", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": f"c{n}", "gen_ai.tool.call.arguments": json.dumps({"q": f"fact {n}"}),
                "gen_ai.tool.call.result": json.dumps({"hits": 1})}):
                pass
        return format(root.get_span_context().trace_id, "032x")


def validate(*data_dirs):
    out = subprocess.run([TRAJ, "validate", *map(str, data_dirs)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# --- 1. fan-out ---------------------------------------------------------------------------

def test_fanout_collector_to_traj_and_jaeger(tmp_path, stack):
    traj = start_receiver(tmp_path / "data")
    stack.append(traj)
    jaeger = Jaeger(tmp_path)
    stack.append(jaeger)
    col = Collector(tmp_path, "otelcol-fanout.yaml",
                    {"TRAJ_GRPC": traj.grpc, "JAEGER_OTLP_GRPC": jaeger.otlp_grpc})
    stack.append(col)

    # The example agent over gRPC and a Python OTel SDK agent over OTLP/HTTP, both to the Collector.
    tasks = 6
    exported, _ = run_agent(AGENT, col.grpc, tasks, 11, "fanout-agent", "--failure-rate", "0.5")
    t_sent = time.monotonic()
    provider = TracerProvider(resource=Resource.create({"service.name": "genai-sdk-agent"}))
    provider.add_span_processor(BatchSpanProcessor(HttpSpanExporter(endpoint=f"http://{col.http}/v1/traces")))
    tracer = provider.get_tracer("genai-sdk-agent")
    sdk_ids = [genai_episode(tracer, n) for n in range(2)]
    provider.shutdown()

    runs = traj.wait_runs(tasks + len(sdk_ids))
    assert len(runs) == tasks + len(sdk_ids), [r.name for r in runs]
    assert set(sdk_ids) <= {r.name for r in runs}
    out = validate(traj.data_dir)
    assert f"runs: {len(runs)}  valid: {len(runs)}  invalid: 0" in out, out

    total_spans, visible_s = 0, 0.0
    for run in runs:
        session = json.loads((run / "session.json").read_text())
        spans = jaeger.wait_trace(session["trace_id"], session["lineage"]["spans"])
        visible_s = max(visible_s, time.monotonic() - t_sent)
        total_spans += len(spans)
        check_run_matches_trace(run, spans)
        root = next(s for s in spans.values() if jaeger_parent(s) is None)
        assert jaeger_tags(root)["gen_ai.operation.name"] == "invoke_workflow", jaeger_tags(root)
        ops = {jaeger_tags(s).get("gen_ai.operation.name") for s in spans.values()}
        assert {"invoke_agent", "execute_tool", "chat"} <= ops, ops
        if run.name in sdk_ids:
            tool = next(s for s in spans.values() if s["operationName"] == "execute_tool search")
            tags = jaeger_tags(tool)
            assert tags["gen_ai.tool.name"] == "search" and json.loads(tags["gen_ai.tool.call.arguments"])["q"]
            chat = next(s for s in spans.values() if s["operationName"] == "chat gpt-x")
            assert jaeger_tags(chat)["gen_ai.usage.input_tokens"] == 12
            assert spans[jaeger_parent(chat)]["operationName"] == "invoke_agent planner"
        else:
            agents = {jaeger_tags(s).get("gen_ai.agent.name") for s in spans.values()}
            assert {"planner", "worker", "verifier"} <= agents, agents
    assert total_spans == exported + 5 * len(sdk_ids), (total_spans, exported)
    # What the Collector itself counted: every span accepted went to both exporters, none failed.
    assert col.metric("otelcol_receiver_accepted_spans") == total_spans
    for exp in ("otlp_grpc/traj", "otlp_grpc/jaeger"):
        assert col.metric("otelcol_exporter_sent_spans", exporter=exp) == total_spans, exp
        assert col.metric("otelcol_exporter_send_failed_spans", exporter=exp) == 0, exp

    # The dashboard's run link, <jaeger>/trace/<trace_id>, in headless Chromium against this Jaeger.
    trace_id = sorted(r.name for r in runs if r.name not in sdk_ids)[0]
    n_spans = json.loads((traj.data_dir / "runs" / trace_id / "session.json").read_text())["lineage"]["spans"]
    shot = FIGURES / "jaeger-trace.png"
    FIGURES.mkdir(parents=True, exist_ok=True)
    report = subprocess.run([TRAJ, "report", "--runs", str(traj.data_dir), "--out", str(tmp_path / "report"),
                             "--jaeger-url", f"http://{jaeger.query}"], capture_output=True, text=True)
    assert report.returncode == 0, report.stdout + report.stderr
    browser = subprocess.run(
        ["node", str(ROOT / "tests" / "browser" / "jaeger-trace.mjs"), str(tmp_path / "report" / "dashboard.html"),
         f"http://{jaeger.query}", trace_id, str(n_spans), str(shot)], capture_output=True, text=True, timeout=180)
    assert browser.returncode == 0, browser.stdout + browser.stderr
    assert shot.stat().st_size > 10_000
    record("fanout", {"runs": len(runs), "spans": total_spans, "example_agent_runs": tasks,
                      "sdk_agent_runs": len(sdk_ids), "jaeger_visible_all_s": round(visible_s, 2),
                      "browser": browser.stdout.strip().splitlines()[-1:]})
