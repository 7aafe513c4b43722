"""Planner -> Worker -> Verifier with three real pydantic-ai agents (`planner`, `worker`,
`verifier`) and pydantic-ai's built-in OTel instrumentation (`InstrumentationSettings(...,
include_content=True)`). No traj keys at all: one plain outer span `pvw_run` per goal, so one run
is one trace. The model is pydantic-ai's `OpenAIChatModel` pointed at the stub server (the stub's
log is the ground truth of what was sent); the worker's tools are plain typed functions whose
docstrings become the tool descriptions. `read_file` of a `flaky*` path raises `ModelRetry` on
its first attempt, so the model sees the error and calls the tool again."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvw_common as pc  # noqa: E402


def main():
    a = pc.base_args(__doc__).parse_args()
    tp, lp = pc.otel_providers(a.endpoint, a.protocol, a.service_name or "pvw-pydantic-ai")
    from pydantic_ai import Agent, ModelRetry
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    Agent.instrument_all(InstrumentationSettings(tracer_provider=tp, include_content=True))
    provider = OpenAIProvider(base_url=a.stub, api_key="sk-stub-not-a-secret")
    models = {r: OpenAIChatModel(m, provider=provider) for r, m in pc.MODELS.items()}
    ws = pc.make_workspace()
    attempts = {}
    executions = []

    planner = Agent(models["planner"], name="planner", instructions=pc.PLANNER_PROMPT)
    worker = Agent(models["worker"], name="worker", instructions=pc.WORKER_PROMPT)
    verifier = Agent(models["verifier"], name="verifier", instructions=pc.VERIFIER_PROMPT)

    @worker.tool_plain
    def read_file(path: str) -> str:
        """Read a file from the workspace.

        Args:
            path: Path of the file, relative to the workspace root.
        """
        attempts[path] = attempts.get(path, 0) + 1
        if path.startswith("flaky") and attempts[path] == 1:
            executions.append({"name": "read_file", "arguments": {"path": path}, "status": "error",
                               "error": "ERROR: storage timeout, the read can be retried"})
            raise ModelRetry("ERROR: storage timeout, the read can be retried")
        text = (ws / path).read_text()
        executions.append({"name": "read_file", "arguments": {"path": path}, "status": "ok", "result": text})
        return text

    @worker.tool_plain
    def list_dir(path: str, recursive: bool = False) -> list[str]:
        """List the entries of a workspace directory.

        Args:
            path: Directory, relative to the workspace root.
            recursive: Also list subdirectories.
        """
        p = ws / path
        return sorted(str(x.relative_to(p)) for x in (p.rglob("*") if recursive else p.iterdir()))

    tracer = tp.get_tracer("pvw-app")
    runs = []
    for goal in a.goal:
        executions.clear()
        with tracer.start_as_current_span("pvw_run") as span:
            plan = planner.run_sync(goal).output
            first_step = next((l.split(".", 1)[1].strip() for l in plan.splitlines() if l[:1].isdigit()), goal)
            answer = worker.run_sync(f"{goal}\nCurrent step: {first_step}").output
            verdict = verifier.run_sync(f"Goal: {goal}\nResult: {answer}").output
        runs.append({"goal": goal, "trace_id": format(span.get_span_context().trace_id, "032x"),
                     "plan": plan, "answer": answer, "verdict": verdict,
                     "tool_executions": json.loads(json.dumps(executions))})
    pc.shutdown(tp, lp)
    pc.write_truth(a.truth, "pydantic_ai", runs)
    print(" ".join(r["trace_id"] for r in runs))


if __name__ == "__main__":
    main()
