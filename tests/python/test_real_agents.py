"""Agents built with REAL instrumentation libraries from PyPI (openai + opentelemetry-instrumentation-
openai-v2 in span, event and legacy (semconv 1.30 per-message log events) mode, openai +
openinference-instrumentation-openai, openai + Traceloop's OpenLLMetry opentelemetry-instrumentation-
openai, pydantic-ai's own instrumentation), driven against a scripted OpenAI-compatible stub model, export to a real
`traj serve`. The stub's log of every request body it received and every response it returned is
the ground truth: traj's `llm_call` events and dataset rows must equal it, content for content
(system prompt, user turn, tool definitions, tool call ids / names / arguments, tool results,
final texts, model, usage, response id).

The agents live in `tests/python/real_agents/`; where each library puts the content is written
down in `tests/python/real_agents/CONTENT_LOCATIONS.md` (captures in `tests/fixtures/real_agents/`).
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL_CORPUS_CONFIG, TRAJ, start_receiver

AGENTS_DIR = pathlib.Path(__file__).resolve().parent / "real_agents"
FIXTURES = ROOT / "tests" / "fixtures" / "real_agents"
sys.path.insert(0, str(AGENTS_DIR))
from stub_openai import StubServer, read_log  # noqa: E402

VIEWS = ["planner_sft", "worker_sft", "verifier_sft", "verifier_pref_pairs", "worker_recovery_cases"]
SPLITS = ["train", "validation", "test"]
FLAKY_GOAL = "Summarize flaky.log for the on-call engineer"
GOALS = ["Summarize notes.txt for the release channel", FLAKY_GOAL,
         "Summarize docs/report.md for the weekly digest"]

# name -> (script + args, OTLP protocol, traj-native role spans?)
AGENTS = {
    "openai_v2_span": (["agent_openai_v2.py", "--mode", "span"], "grpc", True),
    "openai_v2_event": (["agent_openai_v2.py", "--mode", "event"], "http", True),
    "openai_v2_legacy": (["agent_openai_v2.py", "--mode", "legacy"], "http", True),
    "openinference": (["agent_openinference.py"], "http", True),
    "openllmetry": (["agent_openllmetry.py"], "grpc", True),
    "pydantic_ai": (["agent_pydantic_ai.py"], "grpc", False),
}
# Whether the library records the offered tool definitions on its LLM spans / logs.
RECORDS_TOOL_DEFINITIONS = {"openai_v2_span": False, "openai_v2_event": False, "openai_v2_legacy": False,
                            "openinference": True, "openllmetry": True, "pydantic_ai": True}
# Libraries that normalize OpenAI's `tool_calls` finish reason to the GenAI `tool_call`.
NORMALIZES_TOOL_CALL_FINISH = {"pydantic_ai", "openllmetry"}


# --------------------------------------------------------------------------------------------
# Ground truth from the stub log
# --------------------------------------------------------------------------------------------

def role_of(request):
    first = request["messages"][0]
    assert first["role"] == "system", request
    for role in ("planner", "worker", "verifier"):
        if first["content"].startswith(f"You are the {role}"):
            return role
    raise AssertionError(f"unknown system prompt {first['content']!r}")


def split_wire_by_run(wire):
    """The stub log in order, cut into runs (each run starts with its planner call)."""
    runs = []
    for line in wire:
        role = role_of(line["request"])
        if role == "planner":
            runs.append([])
        assert runs, "the first model call of a run must be the planner's"
        runs[-1].append({"role": role, **line})
    return runs


def response_message(line):
    return line["response"]["choices"][0]["message"]


def args_obj(arguments):
    return json.loads(arguments) if isinstance(arguments, str) else arguments


def tool_content_alternatives(content):
    """What a tool message's content may legitimately appear as after instrumentation: the text
    sent, and, for pydantic-ai's retry prompt (sent as `{"error": msg}`), the `msg` its
    telemetry records instead (CONTENT_LOCATIONS.md: telemetry differs from the wire here)."""
    alts = [content]
    try:
        obj = json.loads(content)
    except (TypeError, json.JSONDecodeError):
        obj = None
    if isinstance(obj, dict) and set(obj) == {"error"} and isinstance(obj["error"], str):
        alts.append(obj["error"])
    return alts


def expected_trl(messages, final):
    """OpenAI wire messages + the final response message -> TRL rows' messages (normalized by
    `norm_trl`), with tool contents as lists of acceptable values."""
    out = []
    names = {}
    for m in messages + [final]:
        if m["role"] in ("system", "user"):
            out.append({"role": m["role"], "content": m["content"]})
        elif m["role"] == "assistant":
            calls = [{"id": tc["id"], "name": tc["function"]["name"], "arguments": args_obj(tc["function"]["arguments"])}
                     for tc in m.get("tool_calls") or []]
            for c in calls:
                names[c["id"]] = c["name"]
            out.append({"role": "assistant", "content": m.get("content") or "", "tool_calls": calls})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "name": names[m["tool_call_id"]],
                        "content": tool_content_alternatives(m["content"])})
        else:
            raise AssertionError(m)
    return out


def norm_trl(msg, arguments_as_string=False):
    """A dataset row's message in the comparable form of `expected_trl`."""
    role = msg["role"]
    if role in ("system", "user"):
        assert set(msg) <= {"role", "content"}, msg
        return {"role": role, "content": msg["content"]}
    if role == "assistant":
        calls = []
        for tc in msg.get("tool_calls") or []:
            assert tc["type"] == "function", tc
            a = tc["function"]["arguments"]
            if arguments_as_string:
                assert isinstance(a, str), f"--format openai: arguments must be a JSON string: {tc}"
                a = json.loads(a)
            else:
                assert isinstance(a, dict), f"TRL: arguments must be a JSON object: {tc}"
            calls.append({"id": tc["id"], "name": tc["function"]["name"], "arguments": a})
        return {"role": "assistant", "content": msg.get("content") or "", "tool_calls": calls}
    if role == "tool":
        return {"role": "tool", "tool_call_id": msg.get("tool_call_id"), "name": msg.get("name"),
                "content": msg.get("content")}
    raise AssertionError(msg)


def assert_messages_equal(actual, expected, what, arguments_as_string=False):
    """`actual`: a row's messages; `expected`: from `expected_trl`."""
    got = [norm_trl(m, arguments_as_string) for m in actual]
    assert len(got) == len(expected), (
        f"{what}: {len(got)} messages, expected {len(expected)}:\n{json.dumps(got, indent=1)}\n"
        f"expected:\n{json.dumps(expected, indent=1)}")
    for i, (g, e) in enumerate(zip(got, expected)):
        if e["role"] == "tool":
            # OpenAI's fine-tuning format has no `name` on tool messages; TRL's keeps it.
            keys = ("role", "tool_call_id") if arguments_as_string else ("role", "tool_call_id", "name")
            if arguments_as_string:
                assert "name" not in actual[i], f"{what} message {i}: OpenAI tool messages carry no name"
            assert {k: g[k] for k in keys} == {k: e[k] for k in keys}, f"{what} message {i}: {g} != {e}"
            assert g["content"] in e["content"], f"{what} message {i}: tool content {g['content']!r} not in {e['content']!r}"
        else:
            assert g == e, f"{what} message {i}:\n got      {json.dumps(g)}\n expected {json.dumps(e)}"


def expected_tools(request):
    """The tool definitions the agent offered (as sent), in dataset-row form."""
    return [{"type": "function", "function": {"name": t["function"]["name"],
                                              "description": t["function"].get("description", ""),
                                              "parameters": t["function"]["parameters"]}}
            for t in request.get("tools") or []]


def norm_row_tools(tools):
    out = []
    for t in tools:
        assert t["type"] == "function", t
        f = t["function"]
        out.append({"type": "function", "function": {"name": f["name"], "description": f.get("description", ""),
                                                     "parameters": f.get("parameters")}})
    return out


def genai_expected_input(messages, tool_result_roles):
    """OpenAI wire messages -> GenAI parts form, tool results with acceptable values."""
    out = []
    for m in messages:
        if m["role"] in ("system", "user"):
            out.append({"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]})
        elif m["role"] == "assistant":
            parts = [{"type": "text", "content": m["content"]}] if m.get("content") else []
            parts += [{"type": "tool_call", "id": tc["id"], "name": tc["function"]["name"],
                       "arguments": args_obj(tc["function"]["arguments"])} for tc in m.get("tool_calls") or []]
            out.append({"role": "assistant", "parts": parts})
        elif m["role"] == "tool":
            out.append({"role": tool_result_roles, "parts": [{"type": "tool_call_response", "id": m["tool_call_id"],
                                                              "response": tool_content_alternatives(m["content"])}]})
    return out


def norm_genai(msg):
    parts = []
    for p in msg.get("parts") or []:
        t = p.get("type")
        if t == "text":
            parts.append({"type": "text", "content": p["content"]})
        elif t == "tool_call":
            parts.append({"type": "tool_call", "id": p.get("id"), "name": p.get("name"),
                          "arguments": p.get("arguments")})
        elif t == "tool_call_response":
            parts.append({"type": "tool_call_response", "id": p.get("id"), "response": p.get("response")})
        else:
            parts.append(p)
    return {"role": msg.get("role"), "parts": parts}


def assert_genai_equal(actual, expected, what):
    got = [norm_genai(m) for m in actual]
    assert len(got) == len(expected), f"{what}: {json.dumps(got, indent=1)}\nexpected {json.dumps(expected, indent=1)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        if isinstance(e["role"], (list, tuple, set)):
            assert g["role"] in e["role"], f"{what} message {i}: role {g['role']!r} not in {e['role']}"
            assert len(g["parts"]) == len(e["parts"]), f"{what} message {i}: {g} != {e}"
            for gp, ep in zip(g["parts"], e["parts"]):
                assert gp["type"] == "tool_call_response" and gp["id"] == ep["id"], f"{what} message {i}: {gp} != {ep}"
                assert gp["response"] in ep["response"], f"{what} message {i}: {gp['response']!r} not in {ep['response']!r}"
        else:
            assert g == e, f"{what} message {i}:\n got      {json.dumps(g)}\n expected {json.dumps(e)}"


# --------------------------------------------------------------------------------------------
# Harness: stub + traj serve + agent, then validate and build
# --------------------------------------------------------------------------------------------

def read_rows(out_dir, with_metadata_files=False):
    rows = {v: [] for v in VIEWS}
    for split in SPLITS:
        for view in VIEWS:
            path = out_dir / split / f"{view}.jsonl"
            assert path.is_file(), path
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if with_metadata_files:
                meta_path = out_dir / split / f"{view}.metadata.jsonl"
                assert meta_path.is_file(), meta_path
                metas = [json.loads(line) for line in meta_path.read_text().splitlines() if line.strip()]
                assert len(metas) == len(lines), f"{meta_path} is not line-aligned with {path}"
                for r, m in zip(lines, metas):
                    assert "metadata" not in r, f"--format openai rows must not carry metadata: {r}"
                    r["metadata"] = m
            rows[view] += lines
    return rows


class Scenario:
    pass


@pytest.fixture(scope="module", params=list(AGENTS))
def scenario(request, tmp_path_factory):
    if not (os.path.isfile(TRAJ) and os.access(TRAJ, os.X_OK)):
        pytest.skip(f"TRAJ_BIN not built: {TRAJ}")
    name = request.param
    script, protocol, native = AGENTS[name]
    tmp = tmp_path_factory.mktemp(name)
    stub = StubServer(tmp / "stub.jsonl").start()
    receiver = start_receiver(tmp / "data")
    try:
        endpoint = f"http://{receiver.grpc if protocol == 'grpc' else receiver.http}"
        cmd = [sys.executable, str(AGENTS_DIR / script[0]), *script[1:], "--stub", stub.base_url,
               "--endpoint", endpoint, "--protocol", protocol, "--truth", str(tmp / "truth.json")]
        for g in GOALS:
            cmd += ["--goal", g]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        receiver.wait_runs(len(GOALS), timeout=30)
    finally:
        receiver.stop()
        stub.stop()
    s = Scenario()
    s.name, s.native, s.tmp, s.data = name, native, tmp, receiver.data_dir
    s.truth = json.loads((tmp / "truth.json").read_text())
    s.wire_runs = split_wire_by_run(read_log(tmp / "stub.jsonl"))
    assert len(s.wire_runs) == len(GOALS) == len(s.truth["runs"])
    s.run_ids = {}
    for t, calls in zip(s.truth["runs"], s.wire_runs):
        assert calls[0]["request"]["messages"][1]["content"] == t["goal"], "stub log and truth disagree"
        s.run_ids[t["goal"]] = t["trace_id"]
    s.wire = dict(zip([t["trace_id"] for t in s.truth["runs"]], s.wire_runs))
    s.goal_of = {v: k for k, v in s.run_ids.items()}
    s.validate = subprocess.run([TRAJ, "validate", str(s.data)], capture_output=True, text=True, timeout=60)
    s.build_trl = subprocess.run([TRAJ, "build", "--runs", str(s.data / "runs"), "--out", str(tmp / "ds"),
                                  "--config", SMALL_CORPUS_CONFIG],
                                 capture_output=True, text=True, timeout=60)
    s.build_openai = subprocess.run([TRAJ, "build", "--runs", str(s.data / "runs"), "--out", str(tmp / "ds-openai"),
                                     "--format", "openai", "--config", SMALL_CORPUS_CONFIG], capture_output=True, text=True, timeout=60)
    s.ds, s.ds_openai = tmp / "ds", tmp / "ds-openai"
    return s


def events_of(s, run_id):
    path = s.data / "runs" / run_id / "events.jsonl"
    assert path.is_file(), f"run {run_id} was not assembled"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rows_by_run(rows, view):
    out = {}
    for r in rows[view]:
        out.setdefault(r["metadata"]["run_id"], []).append(r)
    return out


def trl_rows(s):
    assert s.build_trl.returncode == 0, s.build_trl.stdout + s.build_trl.stderr
    return read_rows(s.ds)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def test_runs_assemble_and_validate(scenario):
    s = scenario
    assert sorted(p.name for p in (s.data / "runs").iterdir() if (p / "session.json").is_file()) == sorted(s.wire)
    assert s.validate.returncode == 0, s.validate.stdout + s.validate.stderr
    assert f"runs: {len(GOALS)}  valid: {len(GOALS)}  invalid: 0" in s.validate.stdout, s.validate.stdout
    assert s.build_trl.returncode == 0, s.build_trl.stdout + s.build_trl.stderr
    report = json.loads((s.ds / "report.json").read_text())
    assert report["runs"]["found"] == len(GOALS), report["runs"]
    assert report["runs"]["quarantined"] == 0, report.get("quarantine")
    assert report["runs"]["kept"] == len(GOALS), report["runs"]


def check_llm_calls(name, calls, llm):
    """The `llm_call` events of one run (`llm`) against the stub's log of that run (`calls`)."""
    tool_roles = ("tool", "user") if name == "pydantic_ai" else ("tool",)
    assert len(llm) == len(calls), f"{name}: {len(llm)} llm_call events for {len(calls)} model calls"
    by_resp = {e["payload"].get("response_id"): e for e in llm}
    for c in calls:
        req, resp = c["request"], c["response"]
        e = by_resp.get(resp["id"])
        assert e is not None, f"{name}: no llm_call event with response_id {resp['id']} ({c['role']})"
        p = e["payload"]
        what = f"{name} {c['role']} call {resp['id']}"
        assert p["model"] == req["model"], what
        assert p["usage"]["input_tokens"] == resp["usage"]["prompt_tokens"], what
        assert p["usage"]["output_tokens"] == resp["usage"]["completion_tokens"], what
        # The system prompt either as a system message or as system_instructions: the same text.
        got_in = list(p.get("input_messages") or [])
        if p.get("system_instructions"):
            got_in = [{"role": "system", "parts": p["system_instructions"]}] + got_in
        assert_genai_equal(got_in, genai_expected_input(req["messages"], tool_roles), what + " input")
        assert_genai_equal(p.get("output_messages") or [], genai_expected_input([response_message(c)], tool_roles),
                           what + " output")
        finish = resp["choices"][0]["finish_reason"]
        if p.get("finish_reasons"):
            ok = [[finish]] + ([["tool_call"]] if name in NORMALIZES_TOOL_CALL_FINISH and finish == "tool_calls" else [])
            assert p["finish_reasons"] in ok, f"{what}: finish_reasons {p['finish_reasons']} not in {ok}"
        if RECORDS_TOOL_DEFINITIONS[name] and req.get("tools"):
            got = [{"name": t["name"], "description": t.get("description", ""), "parameters": t.get("parameters")}
                   for t in p.get("tool_definitions") or []]
            want = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                     "parameters": t["function"]["parameters"]} for t in req["tools"]]
            assert got == want, f"{what}: tool_definitions\n got  {got}\n want {want}"
        if not req.get("tools"):
            assert not p.get("tool_definitions"), f"{what}: no tools were offered, got {p['tool_definitions']}"


def test_llm_call_events_equal_the_wire(scenario):
    s = scenario
    for run_id, calls in s.wire.items():
        llm = [e for e in events_of(s, run_id) if e["event_type"] == "llm_call"]
        check_llm_calls(s.name, calls, llm)


def test_worker_sft_rows_equal_the_conversation(scenario):
    s = scenario
    worker_rows = rows_by_run(trl_rows(s), "worker_sft")
    for run_id, calls in s.wire.items():
        rows = worker_rows.get(run_id, [])
        assert len(rows) == 1, f"{s.name} {run_id}: {len(rows)} worker_sft rows"
        row = rows[0]
        last = [c for c in calls if c["role"] == "worker"][-1]
        expected = expected_trl(last["request"]["messages"], response_message(last))
        assert_messages_equal(row["messages"], expected, f"{s.name} worker_sft {run_id}")
        # The shape the spec asks for: system, user, assistant tool call, tool, ..., final text.
        roles = [m["role"] for m in row["messages"]]
        assert roles[:5] == ["system", "user", "assistant", "tool", "assistant"], roles
        assert row["messages"][2]["tool_calls"], row["messages"][2]
        assert not row["messages"][-1].get("tool_calls"), row["messages"][-1]
        assert row["messages"][-1]["content"] == response_message(last)["content"]
        assert norm_row_tools(row["tools"]) == expected_tools(last["request"]), json.dumps(row["tools"], indent=1)
        for t in row["tools"]:
            assert t["function"]["description"] and t["function"]["parameters"]["required"] == ["path"], t
        assert row["metadata"]["source"] == "llm", row["metadata"]
        assert row["metadata"]["run_id"] == run_id and row["metadata"]["role"] == "worker"
        if s.native:
            assert row["metadata"]["goal_family"] == "file_summary"


def test_worker_tool_call_matches_what_the_model_returned(scenario):
    """The assistant tool call in the row is the model's (id, name, arguments as a JSON object),
    and the tool message carries exactly the tool result the agent sent back."""
    s = scenario
    worker_rows = rows_by_run(trl_rows(s), "worker_sft")
    for run_id, calls in s.wire.items():
        assert len(worker_rows.get(run_id, [])) == 1, f"{s.name} {run_id}: worker_sft rows"
        row = worker_rows[run_id][0]
        assert len(row["messages"]) >= 5, f"{s.name} {run_id}: {json.dumps(row['messages'], indent=1)}"
        first_worker = next(c for c in calls if c["role"] == "worker")
        tc = response_message(first_worker)["tool_calls"][0]
        got = row["messages"][2]["tool_calls"][0]
        assert got["id"] == tc["id"] and got["type"] == "function"
        assert got["function"]["name"] == tc["function"]["name"]
        assert got["function"]["arguments"] == json.loads(tc["function"]["arguments"])
        sent = next(m for m in [c for c in calls if c["role"] == "worker"][1]["request"]["messages"]
                    if m["role"] == "tool")
        tool_msg = row["messages"][3]
        assert tool_msg["tool_call_id"] == tc["id"] == sent["tool_call_id"]
        assert tool_msg["content"] in tool_content_alternatives(sent["content"])


def test_planner_and_verifier_rows_equal_the_conversation(scenario):
    s = scenario
    rows = trl_rows(s)
    for view, role in (("planner_sft", "planner"), ("verifier_sft", "verifier")):
        by_run = rows_by_run(rows, view)
        for run_id, calls in s.wire.items():
            got = by_run.get(run_id, [])
            assert len(got) == 1, f"{s.name} {run_id}: {len(got)} {view} rows"
            call = next(c for c in calls if c["role"] == role)
            req = call["request"]["messages"]
            want = [{"role": "system", "content": req[0]["content"]}, {"role": "user", "content": req[1]["content"]},
                    {"role": "assistant", "content": response_message(call)["content"], "tool_calls": []}]
            assert_messages_equal(got[0]["messages"], want, f"{s.name} {view} {run_id}")
            assert got[0]["tools"] == [], got[0]["tools"]
            assert got[0]["metadata"]["source"] == "llm", got[0]["metadata"]
            assert got[0]["metadata"]["role"] == role
    # The verdict text the verifier model returned is `end`, and the rows say so.
    for r in rows["verifier_sft"]:
        assert r["messages"][-1]["content"] == "end"


def test_recovery_rows_for_the_failed_tool_attempt(scenario):
    s = scenario
    rec = rows_by_run(trl_rows(s), "worker_recovery_cases")
    flaky = s.run_ids[FLAKY_GOAL]
    assert len(rec.get(flaky, [])) == 1, f"{s.name}: recovery rows of the flaky run: {rec.get(flaky)}"
    row = rec[flaky][0]
    assert row["metadata"]["labels"]["recovery_kind"] == "retry", row["metadata"]["labels"]
    if s.name == "pydantic_ai":
        # The model saw the failure: the row is its real conversation up to the error result,
        # then the turn that recovered (a new tool call).
        assert row["metadata"]["source"] == "llm", row["metadata"]
        # Prompt-completion form: the failed call is context, only the recovery is taught.
        assert "messages" not in row and len(row["completion"]) == 1, row.keys()
        tool_msgs = [m for m in row["prompt"] if m["role"] == "tool"]
        assert tool_msgs and "ERROR" in tool_msgs[-1]["content"], row["prompt"]
        assert row["prompt"][-1]["role"] == "tool", row["prompt"][-1]
        answer = row["completion"][0]
        assert answer["role"] == "assistant" and answer["tool_calls"], answer
    else:
        # The agent retried by itself; the model never saw the error.
        assert row["metadata"]["source"] == "payload", row["metadata"]
        assert row["metadata"]["payload_reason"] == "failure_not_shown_to_model", row["metadata"]
    for goal, run_id in s.run_ids.items():
        if goal != FLAKY_GOAL:
            assert run_id not in rec, f"{s.name}: a clean run has recovery rows"


def test_openai_format_has_arguments_as_json_strings(scenario):
    s = scenario
    assert s.build_openai.returncode == 0, s.build_openai.stdout + s.build_openai.stderr
    rows = read_rows(s.ds_openai, with_metadata_files=True)
    worker_rows = rows_by_run(rows, "worker_sft")
    for run_id, calls in s.wire.items():
        assert len(worker_rows.get(run_id, [])) == 1, f"{s.name} {run_id}: worker_sft rows (openai format)"
        row = worker_rows[run_id][0]
        assert set(row) == {"messages", "tools", "parallel_tool_calls", "metadata"}, set(row)
        assert row["parallel_tool_calls"] is any(
            len(m.get("tool_calls") or []) > 1 for m in row["messages"]), row["parallel_tool_calls"]
        last = [c for c in calls if c["role"] == "worker"][-1]
        expected = expected_trl(last["request"]["messages"], response_message(last))
        assert_messages_equal(row["messages"], expected, f"{s.name} openai worker_sft {run_id}",
                              arguments_as_string=True)
        assert norm_row_tools(row["tools"]) == expected_tools(last["request"])


def test_foreign_pydantic_ai_runs_have_one_root_and_real_goal(scenario):
    s = scenario
    if s.native:
        pytest.skip("only for the agent without traj keys")
    for run_id, calls in s.wire.items():
        events = events_of(s, run_id)
        roots = [e for e in events if e["lineage"] == "root"]
        assert len(roots) == 1, f"{run_id}: {len(roots)} root events: {[e['event_type'] for e in roots]}"
        assert all(e["lineage"] != "broken" for e in events)
        goal = s.goal_of[run_id]
        pin = [e for e in events if e["event_type"] == "planner_input"]
        assert len(pin) == 1 and pin[0]["payload"]["goal"] == goal == calls[0]["request"]["messages"][1]["content"], pin
        vout = [e for e in events if e["event_type"] == "verifier_output"]
        assert len(vout) == 1 and vout[0]["payload"]["verdict"] == "end", vout
        session = json.loads((s.data / "runs" / run_id / "session.json").read_text())
        assert session["run_id"] == run_id
    report = json.loads((s.ds / "report.json").read_text())
    assert report["runs"]["quarantined"] == 0 and report["runs"]["kept"] > 0, report["runs"]


# --------------------------------------------------------------------------------------------
# The committed captures (no traj needed): they decode and hold the content CONTENT_LOCATIONS.md
# says they hold.
# --------------------------------------------------------------------------------------------

def _strings(anyvalue, out):
    kind = anyvalue.WhichOneof("value")
    if kind == "string_value":
        out.append(anyvalue.string_value)
    elif kind == "array_value":
        for v in anyvalue.array_value.values:
            _strings(v, out)
    elif kind == "kvlist_value":
        for kv in anyvalue.kvlist_value.values:
            _strings(kv.value, out)


def _capture_strings(d):
    """Every string value (attributes, span events, log attributes and bodies) of a capture."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    out, n_spans = [], 0
    for p in sorted(d.glob("traces-*.pb")):
        for rs in ExportTraceServiceRequest.FromString(p.read_bytes()).resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    n_spans += 1
                    for kv in list(sp.attributes) + [a for ev in sp.events for a in ev.attributes]:
                        _strings(kv.value, out)
    for p in sorted(d.glob("logs-*.pb")):
        for rl in ExportLogsServiceRequest.FromString(p.read_bytes()).resource_logs:
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    for kv in lr.attributes:
                        _strings(kv.value, out)
                    _strings(lr.body, out)
    return out, n_spans


@pytest.mark.parametrize("name", list(AGENTS))
def test_fixture_captures_hold_the_wire_content(name):
    d = FIXTURES / name
    assert all(p.stat().st_size < 200_000 for p in d.iterdir())
    truth = json.loads((d / "truth.json").read_text())
    strings, n_spans = _capture_strings(d)
    assert n_spans >= 8, n_spans

    def found(text):
        # Plain (OpenInference flattened, structured log AnyValues) or inside a JSON string value.
        return any(text in s or json.dumps(text)[1:-1] in s for s in strings)

    assert len(truth["wire"]) >= 4
    for line in truth["wire"]:
        for m in line["request"]["messages"]:
            if m.get("content"):
                alts = tool_content_alternatives(m["content"]) if m["role"] == "tool" else [m["content"]]
                assert any(found(a) for a in alts), f"{name}: sent content missing: {m['content'][:60]!r}"
        msg = line["response"]["choices"][0]["message"]
        if msg.get("content"):
            assert found(msg["content"]), f"{name}: returned text missing: {msg['content'][:60]!r}"
        for tc in msg.get("tool_calls") or []:
            assert found(tc["id"]) and found(tc["function"]["name"]), f"{name}: tool call {tc} missing"
        assert found(line["response"]["id"]), f"{name}: response id {line['response']['id']} missing"
    if RECORDS_TOOL_DEFINITIONS[name]:
        for t in truth["wire"][1]["request"]["tools"]:
            assert found(t["function"]["description"]), f"{name}: tool description missing"
