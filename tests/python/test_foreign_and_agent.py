"""Traces from agents that know nothing of traj: (1) a Python agent instrumented only with the
public GenAI semantic conventions, mapped to roles by traj's rules (here a custom rules file maps
agent name `architect` to the planner); (2) the example agent over both OTLP protocols, where
100 % of runs must validate with 100 % lineage."""
import json
import subprocess

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from genai_agent import genai_episode
from conftest import AGENT, TRAJ, start_receiver

RULES = """
# Our planner is called "architect" in this codebase.
[[rule]]
name = "architect-is-planner"
role = "planner"
operation = ["invoke_agent"]
agent_name = ["architect"]
"""


def test_genai_only_agent_is_mapped_by_rules(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    receiver = start_receiver(tmp_path / "data", "--mapping-rules", str(rules))
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "genai-agent"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{receiver.grpc}", insecure=True)))
        tracer = provider.get_tracer("genai-agent")
        ids = [genai_episode(tracer, n, planner="architect", unmapped_span=True) for n in range(3)]
        provider.shutdown()
        runs = receiver.wait_runs(len(ids))
        assert sorted(r.name for r in runs) == sorted(ids)
        out = subprocess.run([TRAJ, "validate", str(receiver.data_dir)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        for run in runs:
            session = json.loads((run / "session.json").read_text())
            assert session["source"].startswith("foreign:"), session["source"]
            assert session["lineage"]["unmapped_spans"] == 1
            events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
            by_type = {}
            for e in events:
                by_type.setdefault(e["event_type"], []).append(e)
            # The custom rule made `architect` the planner; default rules did the rest.
            assert [e["source"] for e in by_type["planner_input"]] == ["architect-is-planner"]
            assert by_type["worker_tool_call"][0]["payload"]["tool"] == "search"
            assert by_type["worker_tool_result"][0]["payload"]["status"] == "ok"
            calls = by_type["planner_output"][0]["payload"].get("llm_calls", [])
            assert calls and calls[0]["model"] == "gpt-x" and calls[0]["input_tokens"] == 12
    finally:
        receiver.stop()


def test_example_agent_over_both_protocols_validates_fully(tmp_path):
    receiver = start_receiver(tmp_path / "data")
    try:
        total = 0
        for protocol, port in (("grpc", receiver.grpc), ("http", receiver.http)):
            out = subprocess.run(
                [AGENT, "--tasks", "25", "--seed", "3", "--protocol", protocol, "--endpoint", f"http://{port}",
                 "--failure-rate", "0.6", "--service-name", f"agent-{protocol}"],
                capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "dropped=0 failed=0" in out.stdout, out.stdout
            total += 25
        receiver.wait_runs(total)
    finally:
        receiver.stop()
    out = subprocess.run([TRAJ, "validate", str(receiver.data_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"runs: {total}  valid: {total}  invalid: 0" in out.stdout, out.stdout
    assert "(100.0%)" in out.stdout, out.stdout
