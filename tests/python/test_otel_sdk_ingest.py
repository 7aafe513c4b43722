"""An independent client: Python's opentelemetry-sdk, following the schema v2 conventions with no
traj code, exports over OTLP gRPC and OTLP HTTP to a real `traj serve`; the runs must assemble and
validate. This is the language-neutral contract in action."""
import json
import subprocess

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Status, StatusCode

from conftest import TRAJ


def make_provider(receiver, protocol):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=f"http://{receiver.grpc}", insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=f"http://{receiver.http}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": f"py-agent-{protocol}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def j(obj):
    return json.dumps(obj, sort_keys=True)


def run_episode(tracer, goal, fail_first_tool):
    """One Planner -> Worker -> Verifier run written with plain OTel calls."""
    with tracer.start_as_current_span("invoke_workflow py-agent", attributes={
        "traj.schema_version": "2", "traj.role": "run", "traj.goal": goal, "traj.goal_family": "py_arith",
        "traj.seed": 11, "traj.config_hash": "sha256:" + "1" * 32, "traj.prompt_hash": "sha256:" + "2" * 32,
        "traj.toolset_hash": "sha256:" + "3" * 32,
        "traj.model_stack": j({"planner": {"model": "py-plan", "params": {}}, "worker": {"model": "py-work", "params": {}},
                               "verifier": {"model": "py-ver", "params": {}}}),
        "traj.runtime_config": j({"max_steps": 4, "tool_mode": "real", "prompt_sources": {}}),
        "traj.redaction.policy": "none", "traj.redaction.version": "0",
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "py-agent",
        "openinference.span.kind": "CHAIN",
    }) as root:
        with tracer.start_as_current_span("plan planner", attributes={
            "traj.role": "planner", "traj.step": 0, "gen_ai.operation.name": "plan", "gen_ai.agent.name": "planner",
            "openinference.span.kind": "AGENT",
            "traj.planner.input": j({"goal": goal, "observation": {}, "history": [], "tool_mask": {"add": True}}),
            "traj.planner.output": j({"plan": [{"index": 0, "description": "add", "tool": "add"}],
                                      "rationale": "one step", "confidence": 0.9}),
        }) as planner:
            pass
        with tracer.start_as_current_span("invoke_agent worker", links=[Link(planner.get_span_context())], attributes={
            "traj.role": "worker", "traj.step": 0, "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "worker", "openinference.span.kind": "AGENT",
            "traj.worker.input": j({"plan_step": 0, "current_step": "add", "env_state": {}, "allowed_tools": ["add"],
                                    "prior_failures": []}),
            "traj.worker.action": j({"action": "tool_call", "tool": "add", "arguments": {"a": 2, "b": 3},
                                     "reasoning": "use add"}),
        }) as worker:
            attempts = [False, True] if fail_first_tool else [True]
            for i, ok in enumerate(attempts, start=1):
                with tracer.start_as_current_span("execute_tool add", attributes={
                    "traj.role": "tool", "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add",
                    "gen_ai.tool.call.id": "call-1", "gen_ai.tool.call.arguments": j({"a": 2, "b": 3}),
                    "traj.retry.attempt": i, "openinference.span.kind": "TOOL",
                    "traj.tool.status": "ok" if ok else "error",
                }) as tool:
                    if ok:
                        tool.set_attribute("gen_ai.tool.call.result", j({"value": 5}))
                    else:
                        tool.set_attribute("traj.error.class", "timeout")
                        tool.set_attribute("error.type", "timeout")
                        tool.record_exception(TimeoutError("tool timed out"))
                        tool.set_status(Status(StatusCode.ERROR, "timeout"))
            worker.set_attribute("traj.worker.output", j({"status": "ok", "summary": "5", "retries": len(attempts) - 1}))
        with tracer.start_as_current_span("invoke_agent verifier", links=[Link(worker.get_span_context())], attributes={
            "traj.role": "verifier", "traj.step": 0, "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "verifier", "openinference.span.kind": "EVALUATOR",
            "traj.verifier.input": j({"plan_progress": {"completed": 1, "total": 1}, "action_traces": ["add -> 5"],
                                      "evidence": {"value": 5}}),
            "traj.verifier.output": j({"verdict": "end", "feedback": "done", "risk_flags": []}),
            "traj.verdict": "end",
        }) as verifier:
            verifier.add_event("traj.transition", {"traj.transition.from": "verifying", "traj.transition.to": "done",
                                                   "traj.transition.reason": "verdict end"})
        root.set_attribute("traj.outcome", "success")
        root.set_attribute("traj.spans_dropped", 0)
        return format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_python_sdk_runs_assemble_and_validate(receiver, protocol):
    provider = make_provider(receiver, protocol)
    tracer = provider.get_tracer("py-agent")
    run_ids = [run_episode(tracer, f"add 2 and 3 (#{i})", fail_first_tool=(i % 2 == 0)) for i in range(6)]
    provider.force_flush()
    provider.shutdown()

    runs = receiver.wait_runs(len(run_ids))
    assert sorted(p.name for p in runs) == sorted(run_ids)

    out = subprocess.run([TRAJ, "validate", str(receiver.data_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

    for run_dir in runs:
        session = json.loads((run_dir / "session.json").read_text())
        assert session["schema_version"] == "2"
        assert session["run_id"] == session["trace_id"] == run_dir.name
        assert session["summary"]["outcome"] == "success"
        assert session["service_name"] == f"py-agent-{protocol}"
        assert session["lineage"]["orphan_events"] == 0
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        types = {e["event_type"] for e in events}
        assert {"planner_input", "planner_output", "worker_input", "worker_action", "worker_tool_call",
                "worker_tool_result", "worker_output", "verifier_input", "verifier_output",
                "orchestrator_transition", "episode_end"} <= types, types
        by_id = {e["event_id"]: e for e in events}
        for e in events:
            if e["lineage"] == "parent":
                assert e["parent_event_id"] in by_id
            else:
                assert e["lineage"] == "root" and e["parent_event_id"] is None
        # Causality from span links: the verifier judged the worker's output.
        vin = next(e for e in events if e["event_type"] == "verifier_input")
        assert by_id[vin["parent_event_id"]]["event_type"] == "worker_output"
        win = next(e for e in events if e["event_type"] == "worker_input")
        assert by_id[win["parent_event_id"]]["event_type"] == "planner_output"
