"""Planner -> Worker -> Verifier agent written with the `traj-instrument` Python package
(python/traj-instrument): the real `openai` client, auto-instrumented by
`opentelemetry-instrumentation-openai-v2` in span mode (content capture on). The package makes
the role spans, tool spans, transitions, observations and hashes; not one attribute key here.

--async runs the same agent with `openai.AsyncOpenAI` and `async with` steps.

Goals the policy treats specially (the stub model answers the same way for every goal):
- a file that does not exist: the tool fails (`not_found`), the worker gives up, the verifier
  overrules the model's `end` with `replan`; after `MAX_STEPS` cycles the run is aborted
  (`max_steps`);
- a `.zip` file: the workspace cannot be prepared, the run records an `env_setup` error.

Writes `--truth PATH`: {"agent", "inputs": {model_stack, runtime_config, prompts, tools},
"runs": [{"goal", "trace_id", "outcome"}]}.
"""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvw_common as pc  # noqa: E402  (prompts, tool schemas, workspace and tools only)

import traj_instrument as traj  # noqa: E402

MAX_STEPS = 2
MODEL_STACK = {r: traj.ModelSpec(m, {"temperature": 0.0, "max_tokens": 256}) for r, m in pc.MODELS.items()}
RUNTIME_CONFIG = traj.RuntimeConfig(max_steps=MAX_STEPS, tool_mode="real",
                                    prompt_sources={"planner": "inline", "worker": "inline", "verifier": "inline"},
                                    extra={"policy": "stub-openai", "client": "openai"})
PROMPTS = {"planner": pc.PLANNER_PROMPT, "worker": pc.WORKER_PROMPT, "verifier": pc.VERIFIER_PROMPT}


def run_kwargs(goal):
    return dict(agent_name="pvw-traj-package", goal=goal, goal_family="file_summary",
                task_id="fs-" + traj.hash_str(goal)[7:15], seed=7, seed_kind="fixed", model_stack=MODEL_STACK,
                runtime_config=RUNTIME_CONFIG, prompts=PROMPTS, tools=pc.TOOLS)


def planner_messages(goal, replan_reason):
    user = goal if replan_reason is None else f"{goal}\nThe last attempt failed: {replan_reason}"
    return [{"role": "system", "content": pc.PLANNER_PROMPT}, {"role": "user", "content": user}]


def chat_kwargs(role, messages, offer_tools=False):
    kw = {"model": pc.MODELS[role], "messages": messages, "temperature": 0.0, "max_tokens": 256}
    if offer_tools:
        kw["tools"] = pc.TOOLS
    return kw


def tool_message(tc, result, error):
    return {"role": "tool", "tool_call_id": tc.id, "content": result if error is None else f"ERROR: {error}"}


def verdict_of(model_answer, worker_failed):
    v = (model_answer or "").strip().lower()
    v = v if v in ("continue", "replan", "end") else "continue"
    return ("replan", "the worker's step failed") if worker_failed else (v, f"model said {v}")


class Cycle:
    """What one cycle carries to the next."""

    def __init__(self, goal):
        self.goal = goal
        self.history, self.prior_failures, self.replan_reason = [], [], None


def planner_input(c, tools):
    return traj.PlannerInput(goal=c.goal, observation={"workspace": sorted(pc.WORKSPACE_FILES)},
                             history=list(c.history), tool_mask={t: True for t in pc.TOOL_NAMES},
                             replan_reason=c.replan_reason)


def worker_input(c, plan):
    return traj.WorkerInput(current_step=plan[0].description if plan else c.goal, plan_step=0,
                            env_state={"workspace": sorted(pc.WORKSPACE_FILES)}, allowed_tools=pc.TOOL_NAMES,
                            prior_failures=list(c.prior_failures))


def to_plan(text):
    return [traj.PlanStep(s["index"], s["description"], s.get("tool")) for s in pc.parse_plan(text or "")]


def finish_worker(w, c, cycle, final_text, failure):
    if failure is None:
        w.observation("workspace", {"files": sorted(pc.WORKSPACE_FILES)})
        w.output(traj.WorkerOutput(summary=final_text, retries=w.retries))
        c.history.append(f"cycle {cycle}: read_file ok")
    else:
        c.prior_failures.append(traj.FailureNote(failure[0], failure[1], tool="read_file"))
        w.output(traj.WorkerOutput(status="error", summary=f"gave up: {failure[1]}", error_class=failure[0],
                                   retries=w.retries))
        c.history.append(f"cycle {cycle}: read_file {failure[0]}")
    w.transition("working", "verifying", "step done")


def episode(client, goal, tools):
    with traj.run(**run_kwargs(goal)) as run:
        if goal.split()[1].endswith(".zip"):
            run.error("env_setup", f"cannot prepare a workspace for {goal.split()[1]}")
            run.finish("aborted", "env_setup")
            return run.run_id, "aborted"
        c = Cycle(goal)
        for cycle in range(MAX_STEPS):
            with run.planner() as p:
                p.input(planner_input(c, tools))
                plan_msg = client.chat.completions.create(**chat_kwargs("planner", planner_messages(goal, c.replan_reason)))
                plan = to_plan(plan_msg.choices[0].message.content)
                p.output(traj.PlannerOutput(plan=plan, rationale="plan written by the model", confidence=0.8))
                p.transition("planning", "working", "plan ready")
            with run.worker() as w:
                w.input(worker_input(c, plan))
                messages = [{"role": "system", "content": pc.WORKER_PROMPT}, {"role": "user", "content": goal}]
                msg = client.chat.completions.create(**chat_kwargs("worker", messages, True)).choices[0].message
                first, failure, turns = True, None, 0
                while msg.tool_calls and turns < 3:
                    turns += 1
                    messages.append(pc.msg_dump(msg))
                    for tc in msg.tool_calls:
                        args = json.loads(tc.function.arguments)
                        if first:
                            w.action(traj.WorkerAction("tool_call", tc.function.name, args, "the model asked for it"))
                            first = False
                        try:
                            result = w.call_tool(tc.function.name, lambda **a: tools.run(tc.function.name, a), args,
                                                 call_id=tc.id, max_attempts=3)
                            failure = None
                            messages.append(tool_message(tc, result, None))
                        except Exception as exc:  # noqa: BLE001 - recorded on the tool span
                            failure = (traj.error_class_of(exc), str(exc))
                            messages.append(tool_message(tc, None, f"{failure[0]}: {failure[1]}"))
                    msg = client.chat.completions.create(**chat_kwargs("worker", messages, True)).choices[0].message
                if first:
                    w.action(traj.WorkerAction("respond", None, {"text": msg.content}, "no tool needed"))
                if msg.tool_calls and failure is None:
                    failure = ("tool_loop", "the model kept calling tools")
                finish_worker(w, c, cycle, msg.content or "", failure)
            with run.verifier() as v:
                v.input(traj.VerifierInput(traj.PlanProgress(0 if failure else len(plan), len(plan)),
                                           list(c.history), {"summary": msg.content or ""}))
                answer = client.chat.completions.create(**chat_kwargs("verifier", [
                    {"role": "system", "content": pc.VERIFIER_PROMPT},
                    {"role": "user", "content": f"Goal: {goal}\nResult: {msg.content or failure}"}]))
                verdict, feedback = verdict_of(answer.choices[0].message.content, failure is not None)
                v.verdict(traj.VerifierOutput(verdict, feedback, ["worker_failed"] if failure else [], 0.9))
                v.transition("verifying", {"end": "done", "replan": "planning", "continue": "working"}[verdict],
                             f"{verdict}: {feedback}")
            if verdict == "end":
                run.finish("success")
                return run.run_id, "success"
            c.replan_reason = feedback
        run.finish("aborted", "max_steps")
        return run.run_id, "aborted"


async def aepisode(client, goal, tools):
    async with traj.run(**run_kwargs(goal)) as run:
        if goal.split()[1].endswith(".zip"):
            run.error("env_setup", f"cannot prepare a workspace for {goal.split()[1]}")
            run.finish("aborted", "env_setup")
            return run.run_id, "aborted"
        c = Cycle(goal)

        async def atool(name, args):
            await asyncio.sleep(0)
            return tools.run(name, args)

        for cycle in range(MAX_STEPS):
            async with run.planner() as p:
                p.input(planner_input(c, tools))
                plan_msg = await client.chat.completions.create(**chat_kwargs("planner", planner_messages(goal, c.replan_reason)))
                plan = to_plan(plan_msg.choices[0].message.content)
                p.output(traj.PlannerOutput(plan=plan, rationale="plan written by the model", confidence=0.8))
                p.transition("planning", "working", "plan ready")
            async with run.worker() as w:
                w.input(worker_input(c, plan))
                messages = [{"role": "system", "content": pc.WORKER_PROMPT}, {"role": "user", "content": goal}]
                msg = (await client.chat.completions.create(**chat_kwargs("worker", messages, True))).choices[0].message
                first, failure, turns = True, None, 0
                while msg.tool_calls and turns < 3:
                    turns += 1
                    messages.append(pc.msg_dump(msg))
                    for tc in msg.tool_calls:
                        args = json.loads(tc.function.arguments)
                        if first:
                            w.action(traj.WorkerAction("tool_call", tc.function.name, args, "the model asked for it"))
                            first = False
                        try:
                            result = await w.acall_tool(tc.function.name, lambda _n=tc.function.name, **a: atool(_n, a),
                                                        args, call_id=tc.id, max_attempts=3)
                            failure = None
                            messages.append(tool_message(tc, result, None))
                        except Exception as exc:  # noqa: BLE001
                            failure = (traj.error_class_of(exc), str(exc))
                            messages.append(tool_message(tc, None, f"{failure[0]}: {failure[1]}"))
                    msg = (await client.chat.completions.create(**chat_kwargs("worker", messages, True))).choices[0].message
                if first:
                    w.action(traj.WorkerAction("respond", None, {"text": msg.content}, "no tool needed"))
                if msg.tool_calls and failure is None:
                    failure = ("tool_loop", "the model kept calling tools")
                finish_worker(w, c, cycle, msg.content or "", failure)
            async with run.verifier() as v:
                v.input(traj.VerifierInput(traj.PlanProgress(0 if failure else len(plan), len(plan)),
                                           list(c.history), {"summary": msg.content or ""}))
                answer = await client.chat.completions.create(**chat_kwargs("verifier", [
                    {"role": "system", "content": pc.VERIFIER_PROMPT},
                    {"role": "user", "content": f"Goal: {goal}\nResult: {msg.content or failure}"}]))
                verdict, feedback = verdict_of(answer.choices[0].message.content, failure is not None)
                v.verdict(traj.VerifierOutput(verdict, feedback, ["worker_failed"] if failure else [], 0.9))
                v.transition("verifying", {"end": "done", "replan": "planning", "continue": "working"}[verdict],
                             f"{verdict}: {feedback}")
            if verdict == "end":
                run.finish("success")
                return run.run_id, "success"
            c.replan_reason = feedback
        run.finish("aborted", "max_steps")
        return run.run_id, "aborted"


def main():
    p = pc.base_args(__doc__)
    p.add_argument("--async", dest="use_async", action="store_true")
    p.add_argument("--max-queue-size", type=int, default=None)
    a = p.parse_args()
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    extra = {} if a.max_queue_size is None else {"max_queue_size": a.max_queue_size}
    telemetry = traj.init(protocol=a.protocol, endpoint=a.endpoint,
                          service_name=a.service_name or "pvw-traj-package",
                          instrument=[lambda tp: OpenAIInstrumentor().instrument(tracer_provider=tp)], **extra)
    tools = pc.Tools(pc.make_workspace())
    if a.use_async:
        client = openai.AsyncOpenAI(base_url=a.stub, api_key="sk-stub-not-a-secret", max_retries=0)

        async def all_runs():
            return [await aepisode(client, g, tools) for g in a.goal]
        runs = asyncio.run(all_runs())
    else:
        client = openai.OpenAI(base_url=a.stub, api_key="sk-stub-not-a-secret", max_retries=0)
        runs = [episode(client, g, tools) for g in a.goal]
    stats = telemetry.shutdown()
    truth = {"agent": "traj_package_async" if a.use_async else "traj_package",
             "inputs": {"model_stack": traj.to_json(MODEL_STACK), "runtime_config": traj.to_json(RUNTIME_CONFIG),
                        "prompts": PROMPTS, "tools": pc.TOOLS},
             "stats": {"ended": stats.ended, "exported": stats.exported, "dropped": stats.dropped,
                       "failed": stats.failed},
             "runs": [{"goal": g, "trace_id": rid, "outcome": o} for g, (rid, o) in zip(a.goal, runs)]}
    with open(a.truth, "w") as f:
        json.dump(truth, f, indent=1)
    print(" ".join(rid for rid, _ in runs))
    print(f"spans: ended={stats.ended} exported={stats.exported} dropped={stats.dropped} failed={stats.failed}")


if __name__ == "__main__":
    main()
