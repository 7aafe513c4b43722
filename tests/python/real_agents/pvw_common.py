"""Shared parts of the real-library Planner -> Worker -> Verifier agents: prompts, tool schemas,
the local workspace and tools, OTel provider setup, the traj schema v2 role spans (for the agents
that carry traj keys) and the ground-truth record each agent writes.

Ground truth (`--truth PATH`, JSON): `{"agent", "runs": [{"goal", "trace_id", "tools",
"calls": [{"role", "model", "messages", "tools"?, "response"}], "tool_executions": [...]}]}`, where
`messages` are the exact chat messages the agent sent and `response` is the assistant message the
model returned (OpenAI chat format), `tool_executions` every local attempt with its result text.
"""
import argparse
import atexit
import hashlib
import json
import pathlib
import shutil
import tempfile

PLANNER_PROMPT = ("You are the planner of a file-summary agent. Break the user's goal into short "
                  "numbered steps, one per line, naming the tool to use when there is one.")
WORKER_PROMPT = ("You are the worker of a file-summary agent. Carry out the current step with the "
                 "tools you are given, then answer with a one-sentence summary.")
VERIFIER_PROMPT = ("You are the verifier of a file-summary agent. Judge whether the goal is met. "
                   "Answer with exactly one word: continue, replan or end.")

TOOLS = [
    {"type": "function", "function": {
        "name": "read_file",
        "description": "Read a file from the workspace",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string", "description": "Path of the file, relative to the workspace root"}},
            "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "list_dir",
        "description": "List the entries of a workspace directory",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string", "description": "Directory, relative to the workspace root"},
            "recursive": {"type": "boolean", "description": "Also list subdirectories"}},
            "required": ["path"]}}},
]
TOOL_NAMES = [t["function"]["name"] for t in TOOLS]
MODELS = {"planner": "stub-planner-1", "worker": "stub-worker-1", "verifier": "stub-verifier-1"}

WORKSPACE_FILES = {
    "notes.txt": "The release is planned for Friday after the last integration test passes.\n",
    "docs/report.md": "# Report\nLatency fell by 18 percent once the cache was warmed at startup.\n",
    "flaky.log": "The nightly job recovered after one transient storage timeout.\n",
    "todo.txt": "Rotate the signing key, then update the deployment manifest.\n",
}


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def hash_json(obj) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj).encode()).hexdigest()[:32]


def hash_str(s: str) -> str:
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()[:32]


def base_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--stub", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1")
    p.add_argument("--endpoint", required=True, help="OTLP endpoint, e.g. http://127.0.0.1:4317")
    p.add_argument("--protocol", choices=["grpc", "http"], default="http")
    p.add_argument("--goal", action="append", required=True, help="one run per --goal")
    p.add_argument("--truth", required=True, help="where to write the ground-truth JSON")
    p.add_argument("--service-name", default=None)
    return p


def make_workspace() -> pathlib.Path:
    root = pathlib.Path(tempfile.mkdtemp(prefix="pvw-ws-"))
    atexit.register(shutil.rmtree, root, True)
    for rel, text in WORKSPACE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


class Tools:
    """The local tools. `read_file` of a path starting with `flaky` times out on its first attempt."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.attempts = {}

    def run(self, name, args):
        key = (name, canonical(args))
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if name == "read_file":
            path = args["path"]
            if path.startswith("flaky") and self.attempts[key] == 1:
                raise TimeoutError(f"storage timeout while reading {path}")
            p = self.root / path
            if not p.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            return p.read_text()
        if name == "list_dir":
            p = self.root / args["path"]
            return "\n".join(sorted(x.name for x in p.iterdir()))
        raise ValueError(f"unknown tool {name}")


def error_class(exc) -> str:
    return {"TimeoutError": "timeout", "FileNotFoundError": "not_found"}.get(type(exc).__name__, "tool_error")


def parse_plan(text):
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line[:1].isdigit() and "." in line:
            desc = line.split(".", 1)[1].strip()
            tool = next((t for t in TOOL_NAMES if t in desc), None)
            step = {"index": len(steps), "description": desc}
            if tool:
                step["tool"] = tool
            steps.append(step)
    return steps


def otel_providers(endpoint, protocol, service_name, with_logs=False):
    """Global TracerProvider (and LoggerProvider) exporting over OTLP to `endpoint`."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        span_exp = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        span_exp = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(span_exp))
    trace.set_tracer_provider(tp)
    lp = None
    if with_logs:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            log_exp = OTLPLogExporter(endpoint=endpoint, insecure=True)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            log_exp = OTLPLogExporter(endpoint=endpoint.rstrip("/") + "/v1/logs")
        lp = LoggerProvider(resource=resource)
        lp.add_log_record_processor(BatchLogRecordProcessor(log_exp))
        set_logger_provider(lp)
    return tp, lp


def shutdown(tp, lp):
    # Logs first: their records point at spans, and a sink sees both either way.
    if lp is not None:
        lp.force_flush()
        lp.shutdown()
    tp.force_flush()
    tp.shutdown()


def msg_dump(m):
    """An openai ChatCompletionMessage as a plain dict in request form."""
    d = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [{"id": tc.id, "type": "function",
                            "function": {"name": tc.function.name, "arguments": tc.function.arguments}}
                           for tc in m.tool_calls]
    return d


def run_native_episode(tracer, client, goal, tools: Tools):
    """One traj-native run with the real openai client: role spans carry schema v2 keys, the
    instrumentation library makes the `chat` child spans. Returns this run's ground truth."""
    from opentelemetry.trace import Link, Status, StatusCode

    truth = {"goal": goal, "tools": TOOLS, "calls": [], "tool_executions": []}

    def chat(role, messages, offer_tools=False):
        kwargs = {"model": MODELS[role], "messages": messages, "temperature": 0.0, "max_tokens": 256}
        if offer_tools:
            kwargs["tools"] = TOOLS
        resp = client.chat.completions.create(**kwargs)
        call = {"role": role, "model": MODELS[role], "messages": json.loads(json.dumps(messages)),
                "response": msg_dump(resp.choices[0].message), "response_id": resp.id,
                "finish_reason": resp.choices[0].finish_reason,
                "usage": {"input_tokens": resp.usage.prompt_tokens, "output_tokens": resp.usage.completion_tokens}}
        if offer_tools:
            call["tools"] = TOOLS
        truth["calls"].append(call)
        return resp.choices[0].message

    model_stack = {r: {"model": m, "params": {"temperature": 0.0, "max_tokens": 256}} for r, m in MODELS.items()}
    runtime_config = {"max_steps": 2, "tool_mode": "real",
                      "prompt_sources": {"planner": "inline", "worker": "inline", "verifier": "inline"},
                      "tools": [t["function"] for t in TOOLS]}
    prompts = {"planner": PLANNER_PROMPT, "worker": WORKER_PROMPT, "verifier": VERIFIER_PROMPT}
    task_id = "fs-" + hash_str(goal)[7:15]
    with tracer.start_as_current_span("invoke_workflow pvw-agent", attributes={
        "traj.schema_version": "2", "traj.role": "run", "traj.goal": goal, "traj.goal_family": "file_summary",
        "traj.task_id": task_id, "traj.seed": 7,
        "traj.config_hash": hash_json({"model_stack": model_stack, "runtime_config": runtime_config}),
        "traj.prompt_hash": hash_json(prompts), "traj.toolset_hash": hash_json(TOOLS),
        "traj.model_stack": canonical(model_stack), "traj.runtime_config": canonical(runtime_config),
        "traj.redaction.policy": "none", "traj.redaction.version": "0",
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "pvw-agent",
        "openinference.span.kind": "CHAIN",
    }) as root:
        truth["trace_id"] = format(root.get_span_context().trace_id, "032x")
        step = 0
        # --- planner
        planner_input = {"goal": goal, "observation": {"workspace": sorted(WORKSPACE_FILES)}, "history": [],
                         "tool_mask": {t: True for t in TOOL_NAMES}}
        with tracer.start_as_current_span("plan planner", attributes={
            "traj.role": "planner", "traj.step": step, "gen_ai.operation.name": "plan",
            "gen_ai.agent.name": "planner", "openinference.span.kind": "AGENT",
            "traj.planner.input": canonical(planner_input),
        }) as planner:
            plan_msg = chat("planner", [{"role": "system", "content": PLANNER_PROMPT},
                                        {"role": "user", "content": goal}])
            plan = parse_plan(plan_msg.content)
            planner.set_attribute("traj.planner.output", canonical(
                {"plan": plan, "rationale": "plan written by the model", "confidence": 0.8}))
        # --- worker
        worker_input = {"plan_step": 0, "current_step": plan[0]["description"] if plan else goal,
                        "env_state": {"workspace": sorted(WORKSPACE_FILES)}, "allowed_tools": TOOL_NAMES,
                        "prior_failures": []}
        with tracer.start_as_current_span("invoke_agent worker", links=[Link(planner.get_span_context())], attributes={
            "traj.role": "worker", "traj.step": step, "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "worker", "openinference.span.kind": "AGENT",
            "traj.worker.input": canonical(worker_input),
        }) as worker:
            messages = [{"role": "system", "content": WORKER_PROMPT},
                        {"role": "user", "content": goal}]
            msg = chat("worker", messages, offer_tools=True)
            first_action = None
            retries = 0
            for _ in range(4):
                if not msg.tool_calls:
                    break
                messages.append(msg_dump(msg))
                for tc in msg.tool_calls:
                    args = json.loads(tc.function.arguments)
                    if first_action is None:
                        first_action = {"action": "tool_call", "tool": tc.function.name, "arguments": args,
                                        "reasoning": "the model asked for this tool"}
                        worker.set_attribute("traj.worker.action", canonical(first_action))
                    result = None
                    for attempt in (1, 2, 3):
                        with tracer.start_as_current_span(f"execute_tool {tc.function.name}", attributes={
                            "traj.role": "tool", "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": tc.function.name, "gen_ai.tool.call.id": tc.id,
                            "gen_ai.tool.call.arguments": canonical(args), "traj.retry.attempt": attempt,
                            "openinference.span.kind": "TOOL",
                        }, record_exception=False, set_status_on_exception=False) as tool_span:
                            try:
                                result = tools.run(tc.function.name, args)
                            except Exception as exc:  # noqa: BLE001 - recorded on the span, retried
                                cls = error_class(exc)
                                tool_span.set_attribute("traj.tool.status", "error")
                                tool_span.set_attribute("traj.error.class", cls)
                                tool_span.set_attribute("error.type", cls)
                                tool_span.record_exception(exc)
                                tool_span.set_status(Status(StatusCode.ERROR, cls))
                                truth["tool_executions"].append({"call_id": tc.id, "name": tc.function.name,
                                                                 "arguments": args, "attempt": attempt,
                                                                 "status": "error", "error_class": cls,
                                                                 "error": str(exc)})
                                retries += 1
                                continue
                            tool_span.set_attribute("traj.tool.status", "ok")
                            tool_span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
                            truth["tool_executions"].append({"call_id": tc.id, "name": tc.function.name,
                                                             "arguments": args, "attempt": attempt,
                                                             "status": "ok", "result": result})
                            break
                    messages.append({"role": "tool", "tool_call_id": tc.id, "content": result or "ERROR"})
                msg = chat("worker", messages, offer_tools=True)
            final_text = msg.content or ""
            if first_action is None:
                worker.set_attribute("traj.worker.action", canonical(
                    {"action": "respond", "arguments": {"text": final_text}, "reasoning": "no tool needed"}))
            worker.set_attribute("traj.worker.output", canonical(
                {"status": "ok", "summary": final_text, "retries": retries}))
        # --- verifier
        traces = [f"{x['name']}({canonical(x['arguments'])}) -> {x['status']}" for x in truth["tool_executions"]]
        verifier_input = {"plan_progress": {"completed": len(plan), "total": len(plan)},
                          "action_traces": traces, "evidence": {"summary": final_text}}
        with tracer.start_as_current_span("invoke_agent verifier", links=[Link(worker.get_span_context())], attributes={
            "traj.role": "verifier", "traj.step": step, "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "verifier", "openinference.span.kind": "EVALUATOR",
            "traj.verifier.input": canonical(verifier_input),
        }) as verifier:
            vmsg = chat("verifier", [{"role": "system", "content": VERIFIER_PROMPT},
                                     {"role": "user", "content": f"Goal: {goal}\nResult: {final_text}"}])
            verdict = (vmsg.content or "").strip().lower()
            verdict = verdict if verdict in ("continue", "replan", "end") else "continue"
            verifier.set_attribute("traj.verifier.output", canonical(
                {"verdict": verdict, "feedback": "judged by the model", "risk_flags": []}))
            verifier.set_attribute("traj.verdict", verdict)
            verifier.add_event("traj.transition", {"traj.transition.from": "verifying",
                                                   "traj.transition.to": "done" if verdict == "end" else "planning",
                                                   "traj.transition.reason": f"verdict {verdict}"})
        root.set_attribute("traj.outcome", "success" if verdict == "end" else "failure")
        root.set_attribute("traj.spans_dropped", 0)
    return truth


def write_truth(path, agent, runs):
    pathlib.Path(path).write_text(json.dumps({"agent": agent, "runs": runs}, indent=1) + "\n")
