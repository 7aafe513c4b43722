"""The `traj-instrument` Python package (python/traj-instrument), tested as a user gets it: the wheel
is built (`python -m build --wheel`, hatchling) and installed into this venv (and, for the
API-only check, into a fresh venv that has nothing but the wheel and `opentelemetry-api`).

- Hashes: the canonical-JSON / float-notation / hash vectors of `proto/test-vectors/` (written by
  the Rust tests `crates/schema/tests/hash_vectors.rs` and `crates/instrument/tests/hash_vectors.rs`).
- A P/W/V agent written with the package (`real_agents/agent_traj_package.py`: real `openai`
  client, `opentelemetry-instrumentation-openai-v2` span mode with content capture) against the
  stub model, exported to `traj serve` over gRPC (sync client) and HTTP (async client): runs
  validate, carry every field a run of the Rust example agent carries, hashes equal the Rust
  ones, LLM calls hang under their step, datasets build from the LLM calls.
- In-process: sync / async / decorators / concurrency, redaction hook, drop accounting and
  flushing, export configuration.
"""
import asyncio
import json
import os
import pathlib
import struct
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from conftest import AGENT, ROOT, SMALL_CORPUS_CONFIG, TRAJ, start_receiver

PKG_DIR = ROOT / "python" / "traj-instrument"
VECTORS = ROOT / "proto" / "test-vectors"
AGENTS_DIR = pathlib.Path(__file__).resolve().parent / "real_agents"
sys.path.insert(0, str(AGENTS_DIR))
from stub_openai import StubServer  # noqa: E402

GOALS = ["Summarize notes.txt for the release channel", "Summarize flaky.log for the on-call engineer",
         "Summarize missing.txt for the archive", "Summarize backup.zip for the auditors"]
SFT_VIEWS = ["planner_sft", "worker_sft", "verifier_sft"]


# --------------------------------------------------------------------------------------------
# Build and install
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    try:  # requirements.txt has them; a venv made before they were added gets them here
        import build  # noqa: F401
        import hatchling  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "build>=1.2", "hatchling>=1.27"],
                       check=True, timeout=300)
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(PKG_DIR)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = list(out.glob("traj_instrument-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def traj(wheel):
    """The package, installed from the wheel into this venv (not imported from the source tree)."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in [m for m in sys.modules if m == "traj_instrument" or m.startswith("traj_instrument.")]:
        del sys.modules[name]
    import traj_instrument
    assert "site-packages" in traj_instrument.__file__, traj_instrument.__file__
    return traj_instrument


def test_wheel_is_typed_and_depends_only_on_the_api(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "traj_instrument/py.typed" in names
    for mod in ("__init__", "spans", "hashing", "payloads", "redaction", "telemetry", "keys"):
        assert f"traj_instrument/{mod}.py" in names
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert core == ["opentelemetry-api>=1.27"], requires
    assert "Requires-Python: >=3.9" in meta


def oldest_python():
    """A Python 3.9 interpreter when the machine has one (pyenv), else None."""
    import glob
    import shutil
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    return found[0] if found else shutil.which("python3.9")


@pytest.mark.parametrize("interpreter", ["this", "3.9"])
def test_api_only_install_works_without_the_sdk(wheel, tmp_path, interpreter):
    """A fresh venv with only the wheel (pip resolves opentelemetry-api): the span helpers run as
    no-ops, the hashes work, and the SDK helpers say what they need. Also on Python 3.9, the
    oldest supported, when the machine has it."""
    python = sys.executable if interpreter == "this" else oldest_python()
    if python is None:
        pytest.skip("no Python 3.9 on this machine")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    script = r"""
import importlib.util, json, traj_instrument as traj
assert importlib.util.find_spec("opentelemetry.sdk") is None, "the SDK must not be a dependency"
with traj.run(goal="g", goal_family="f", seed=1, model_stack={"worker": "m"}) as run:
    with run.worker() as w:
        w.input(traj.WorkerInput("step")).action(traj.WorkerAction("respond"))
        w.output(traj.WorkerOutput(summary="ok"))
    run.finish("success")
print(json.dumps({"run_id": run.run_id, "config_hash": run.hashes.config_hash,
                  "h": traj.hash_json({"b": 1, "a": [1.0, 1e16]})}))
try:
    traj.init
except ImportError as e:
    print("init:", e)
"""
    r = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    first = json.loads(r.stdout.splitlines()[0])
    assert first["run_id"] == "0" * 32  # no SDK: a non-recording span, as the API specifies
    assert first["h"] == "sha256:" + __import__("hashlib").sha256(b'{"a":[1.0,1e+16],"b":1}').hexdigest()[:32]
    assert "init:" in r.stdout and "opentelemetry" in r.stdout
    # The vectors hold on this interpreter too.
    check = f"""
import json, struct, traj_instrument as traj
d = json.load(open({str(VECTORS / "canonical_json.json")!r}))
assert all(traj.canonical_json(v["input"]) == v["canonical"] for v in d["canonical_json"])
assert all(traj.format_float(struct.unpack(">d", bytes.fromhex(v["bits"]))[0]) == v["text"] for v in d["float_format"])
r = json.load(open({str(VECTORS / "run_hashes.json")!r}))["run_hashes"]
assert all(traj.run_hashes(v["model_stack"], v["runtime_config"], v["prompts"], v["tools"]).config_hash == v["config_hash"] for v in r)
print("vectors ok")
"""
    r = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "vectors ok" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------------------------
# Hash vectors (generated by the Rust implementation)
# --------------------------------------------------------------------------------------------

def test_canonical_json_vectors_match_rust(traj):
    doc = json.loads((VECTORS / "canonical_json.json").read_text())
    assert len(doc["canonical_json"]) >= 30 and len(doc["float_format"]) == 600
    for v in doc["canonical_json"]:
        text = traj.canonical_json(v["input"])
        assert text == v["canonical"], v["name"]
        assert traj.hash_json(v["input"]) == v["hash"], v["name"]
        assert __import__("hashlib").sha256(text.encode()).hexdigest() == v["sha256"], v["name"]
    for v in doc["hash_str"]:
        assert traj.hash_str(v["input"]) == v["hash"], v["name"]
    for v in doc["float_format"]:
        f = struct.unpack(">d", bytes.fromhex(v["bits"]))[0]
        assert traj.format_float(f) == v["text"], v
        assert traj.canonical_json([f]) == f"[{v['text']}]"


def test_run_hash_vectors_match_rust_run_info(traj):
    doc = json.loads((VECTORS / "run_hashes.json").read_text())
    names = [v["name"] for v in doc["run_hashes"]]
    assert "python_pvw_agent" in names and "empty" in names
    for v in doc["run_hashes"]:
        h = traj.run_hashes(v["model_stack"], v["runtime_config"], v["prompts"], v["tools"])
        assert (h.config_hash, h.prompt_hash, h.toolset_hash) == (v["config_hash"], v["prompt_hash"], v["toolset_hash"]), v["name"]
        from traj_instrument.payloads import normalize_model_stack, normalize_runtime_config
        config = {"model_stack": normalize_model_stack(v["model_stack"]),
                  "runtime_config": normalize_runtime_config(v["runtime_config"])}
        assert traj.canonical_json(config) == v["config_canonical"], v["name"]
    # Typed inputs hash like their dicts.
    typed = traj.run_hashes({"worker": traj.ModelSpec("gpt-x")}, traj.RuntimeConfig(max_steps=3), {"worker": "Do it."}, [])
    v = next(x for x in doc["run_hashes"] if x["name"] == "model_without_params")
    assert typed.config_hash == v["config_hash"] and typed.prompt_hash == v["prompt_hash"]


def test_hash_inputs_that_rust_cannot_represent_are_refused(traj):
    with pytest.raises(TypeError):
        traj.canonical_json({1: "int key"})
    with pytest.raises(ValueError):
        traj.run_hashes({"worker": {"model": "m", "temperature": 0.1}}, {}, {}, [])  # params belong in params
    with pytest.raises(ValueError):
        traj.run_hashes({}, {"max_steps": -1}, {}, [])
    assert traj.canonical_json(float("nan")) == "null"  # as serde_json::to_value


# --------------------------------------------------------------------------------------------
# The P/W/V agent written with the package, against traj serve
# --------------------------------------------------------------------------------------------

def run_rust_agent(tmp):
    receiver = start_receiver(tmp / "rust-data")
    try:
        out = subprocess.run([AGENT, "--tasks", "12", "--seed", "3", "--endpoint", f"http://{receiver.grpc}",
                              "--failure-rate", "0.6"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        receiver.wait_runs(12)
    finally:
        receiver.stop()
    return receiver.data_dir / "runs"


@pytest.fixture(scope="module")
def rust_runs(tmp_path_factory):
    return run_rust_agent(tmp_path_factory.mktemp("rust-agent"))


class AgentRun:
    pass


def run_package_agent(tmp, protocol, use_async):
    stub = StubServer(tmp / "stub.jsonl").start()
    receiver = start_receiver(tmp / "data")
    try:
        addr = receiver.grpc if protocol == "grpc" else receiver.http
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.pop("PYTHONPATH", None)  # the installed wheel, not the source tree
        cmd = [sys.executable, str(AGENTS_DIR / "agent_traj_package.py"), "--stub", stub.base_url,
               "--endpoint", f"http://{addr}", "--protocol", protocol, "--truth", str(tmp / "truth.json")]
        if use_async:
            cmd.append("--async")
        for g in GOALS:
            cmd += ["--goal", g]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "dropped=0 failed=0" in out.stdout, out.stdout
        truth = json.loads((tmp / "truth.json").read_text())
        runs = receiver.wait_runs(len(GOALS))
    finally:
        receiver.stop()
        stub.stop()
    a = AgentRun()
    a.truth, a.data, a.runs, a.tmp = truth, receiver.data_dir, runs, tmp
    return a


@pytest.fixture(scope="module", params=[("grpc", False), ("http", True)], ids=["grpc-sync", "http-async"])
def agent(request, traj, tmp_path_factory):
    protocol, use_async = request.param
    return run_package_agent(tmp_path_factory.mktemp(f"pkg-{protocol}"), protocol, use_async)


def load_run(run_dir):
    session = json.loads((run_dir / "session.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return session, events


# Keys whose children are data (tool names, file names, argument names), not schema fields.
DATA_MAPS = ("model_stack.", "runtime_config.prompt_sources.", "payload.tool_mask.", "payload.observation.",
             "payload.env_state.", "payload.evidence.", "payload.arguments.", "payload.result.",
             "payload.request.", "parts.[].arguments.", "parts.[].response.", "parameters.")
# What the Rust agent's runs have that a run recorded by openai-v2 2.4b0 cannot: that library puts the
# system prompt into `gen_ai.input.messages` (no `gen_ai.system_instructions`), records no tool definitions,
# and no instrumentation records traj's own `traj.prompt.rendered`. The package adds nothing to those
# spans; `test_manual_llm_spans_record_every_llm_call_field` shows the package's own LLM helper has them all.
OPENAI_V2_DOES_NOT_RECORD = {
    ("llm_call", "payload.system_instructions"), ("llm_call", "payload.tool_definitions"),
    ("planner_output", "payload.llm_calls.[].rendered_prompt"),
    ("worker_output", "payload.llm_calls.[].rendered_prompt"),
    ("verifier_output", "payload.llm_calls.[].rendered_prompt"),
}


def key_paths(v, pre=""):
    """Every key path of a JSON value (`a.b`, list items as `[]`), not descending into data maps."""
    out = set()
    if isinstance(v, dict):
        for k, x in v.items():
            path = pre + k
            out.add(path)
            if path == "runtime_config":  # typed fields only: the rest is the agent's own
                out |= {f"{path}.{f}" for f in ("max_steps", "prompt_sources", "tool_mode") if f in x}
            elif not any((path + ".").endswith(d) for d in DATA_MAPS):
                out |= key_paths(x, path + ".")
    elif isinstance(v, list):
        for x in v:
            out |= key_paths(x, pre + "[].")
    return out


def corpus_keys(runs_dir, runs=None):
    session, events = set(), {}
    for run in runs or sorted(p for p in pathlib.Path(runs_dir).iterdir() if (p / "session.json").is_file()):
        s, evs = load_run(run)
        session |= key_paths(s)
        for e in evs:
            events.setdefault(e["event_type"], set()).update(key_paths(e))
    return session, events


def assert_has_every_rust_field(py_runs, rust_runs_dir, allowed_missing=frozenset()):
    rs_session, rs_events = corpus_keys(rust_runs_dir)
    py_session, py_events = corpus_keys(None, py_runs)
    assert rs_session - py_session == set(), f"session.json fields missing: {sorted(rs_session - py_session)}"
    missing = []
    for etype, keys in sorted(rs_events.items()):
        if etype not in py_events:
            missing.append((etype, "<no such event>"))
            continue
        for k in sorted(keys - py_events[etype]):
            if not any(e2 == etype and (k == m or k.startswith(m + ".")) for e2, m in allowed_missing):
                missing.append((etype, k))
    assert not missing, f"fields a Rust agent's run has and these runs lack: {missing}"


def test_package_agent_runs_validate(agent):
    out = subprocess.run([TRAJ, "validate", str(agent.data)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    n = len(GOALS)
    assert f"runs: {n}  valid: {n}  invalid: 0" in out.stdout, out.stdout
    assert "(100.0%)" in out.stdout, out.stdout
    by_id = {r.name: load_run(r)[0] for r in agent.runs}
    assert sorted(by_id) == sorted(r["trace_id"] for r in agent.truth["runs"])
    for r in agent.truth["runs"]:
        s = by_id[r["trace_id"]]
        assert s["source"] == "traj" and s["goal"] == r["goal"] and s["goal_family"] == "file_summary"
        assert s["summary"]["outcome"] == r["outcome"], (r, s["summary"])
        assert s["summary"]["spans_dropped_at_source"] == 0
        assert s["data_governance"] == {"redaction_policy": "none", "redaction_version": "0",
                                        "pii_scan_status": "not_redacted"}
    outcomes = {r["goal"]: (by_id[r["trace_id"]]["summary"]["outcome"], by_id[r["trace_id"]]["summary"].get("failure_class"))
                for r in agent.truth["runs"]}
    assert outcomes == {GOALS[0]: ("success", None), GOALS[1]: ("success", None),
                        GOALS[2]: ("aborted", "max_steps"), GOALS[3]: ("aborted", "env_setup")}
    assert agent.truth["stats"]["dropped"] == 0 and agent.truth["stats"]["failed"] == 0
    assert agent.truth["stats"]["ended"] == agent.truth["stats"]["exported"] > 0


def test_package_agent_has_every_field_of_a_rust_agent_run(agent, rust_runs):
    assert_has_every_rust_field(agent.runs, rust_runs, OPENAI_V2_DOES_NOT_RECORD)
    # What openai-v2 does record instead: the system prompt as the first input message.
    for run in agent.runs:
        for e in load_run(run)[1]:
            if e["event_type"] == "llm_call":
                first = e["payload"]["input_messages"][0]
                assert first["role"] == "system" and first["parts"][0]["content"].startswith("You are the ")
                assert e["payload"]["content_source"] == "genai_attributes"


def test_package_agent_hashes_equal_the_rust_ones(agent, traj):
    vec = next(v for v in json.loads((VECTORS / "run_hashes.json").read_text())["run_hashes"]
               if v["name"] == "python_pvw_agent")
    inputs = agent.truth["inputs"]
    # The vector's inputs are exactly what the agent passed (so its Rust-computed hashes apply).
    for k in ("model_stack", "runtime_config", "prompts", "tools"):
        assert inputs[k] == vec[k], k
    for run in agent.runs:
        s, _ = load_run(run)
        assert (s["config_hash"], s["prompt_hash"], s["toolset_hash"]) == (vec["config_hash"], vec["prompt_hash"], vec["toolset_hash"])
        # Recomputed from what the session recorded (model stack, runtime config) and the agent's
        # prompts and tools.
        recomputed = traj.run_hashes(s["model_stack"], s["runtime_config"], inputs["prompts"], inputs["tools"])
        assert recomputed.config_hash == s["config_hash"]
        assert traj.hash_json({"model_stack": s["model_stack"], "runtime_config": s["runtime_config"]}) == s["config_hash"]
        assert recomputed.prompt_hash == s["prompt_hash"] and recomputed.toolset_hash == s["toolset_hash"]


def test_llm_calls_nest_under_their_step(agent):
    input_of_step = {"planner_output": "planner_input", "worker_output": "worker_input",
                     "verifier_output": "verifier_input"}
    total = 0
    for run in agent.runs:
        _, events = load_run(run)
        by_id = {e["event_id"]: e for e in events}
        inputs_by_span = {(e["span_id"], e["event_type"]): e for e in events}
        llm = [e for e in events if e["event_type"] == "llm_call"]
        for e in llm:
            parent = by_id[e["parent_event_id"]]
            assert parent["event_type"] in input_of_step.values(), parent["event_type"]
            assert e["lineage"] == "parent" and e["step"] == parent["step"]
        # Every step output lists its own calls, and each of those is an llm_call under the step's input.
        for out in (e for e in events if e["event_type"] in input_of_step):
            calls = out["payload"].get("llm_calls", [])
            step_input = inputs_by_span[(out["span_id"], input_of_step[out["event_type"]])]
            assert calls, out
            for c in calls:
                ev = next(x for x in llm if x["span_id"] == c["span_id"])
                assert ev["parent_event_id"] == step_input["event_id"]
                assert ev["payload"]["model"] == {"planner_output": "stub-planner-1", "worker_output": "stub-worker-1",
                                                  "verifier_output": "stub-verifier-1"}[out["event_type"]]
        total += len(llm)
    assert total >= 12


def test_package_agent_datasets_build_from_the_llm_calls(agent):
    out_dir = agent.tmp / "ds"
    r = subprocess.run([TRAJ, "build", "--runs", str(agent.data / "runs"), "--out", str(out_dir),
                        "--config", SMALL_CORPUS_CONFIG],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {v: [] for v in SFT_VIEWS}
    for split in ("train", "validation", "test"):
        for v in SFT_VIEWS:
            p = out_dir / split / f"{v}.jsonl"
            rows[v] += [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []
    assert all(rows[v] for v in SFT_VIEWS), {v: len(x) for v, x in rows.items()}
    for v, rs in rows.items():
        for row in rs:
            assert row["metadata"]["source"] == "llm", (v, row["metadata"])
            assert row["metadata"]["goal_family"] == "file_summary"
            assert row["messages"][0]["role"] == "system"


# --------------------------------------------------------------------------------------------
# In-process: the package's own LLM helper, sync / async, decorators, redaction, drops
# --------------------------------------------------------------------------------------------

def pipeline(traj, exporter=None, **kw):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = exporter or InMemorySpanExporter()
    tel = traj.init(exporter=exporter, set_global=False, **kw)
    return tel, exporter


def test_manual_llm_spans_record_every_llm_call_field(traj, tmp_path, rust_runs):
    """An agent whose model calls nothing instruments: the package's `llm_call` records them in the
    GenAI form, like the Rust helper, and then every field of the Rust agent's runs is there."""
    receiver = start_receiver(tmp_path / "data")
    try:
        tel = traj.init(protocol="grpc", endpoint=f"http://{receiver.grpc}", service_name="manual-llm",
                        set_global=False)
        tools = [traj.ToolDefinition("read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}})]
        ids = []
        for i, goal in enumerate(["Summarize a.txt", "Summarize b.txt"]):
            with traj.run(goal=goal, goal_family="manual", seed=i, seed_kind="fixed", task_id=f"m/{i}", model_stack={"worker": "sim"},
                          runtime_config={"max_steps": 2}, prompts={"worker": "W"}, tools=[t.to_json() for t in tools],
                          tracer_provider=tel.provider) as run:
                ids.append(run.run_id)
                for cycle in range(2):
                    with run.planner() as p:
                        p.input(traj.PlannerInput(goal, {"files": ["a.txt"]}, [], {"read_file": True},
                                                  replan_reason="retry" if cycle else None))
                        with p.llm_call("sim", "system: plan\nuser: " + goal) as llm:
                            llm.request({"temperature": 0.0}).system_instructions([traj.text_part("plan")])
                            llm.input_messages([traj.ChatMessage.text("user", goal)]).tool_definitions(tools)
                            llm.output_text("1. read a.txt").response("r-%d" % cycle, traj.Usage(5, 3))
                        p.output(traj.PlannerOutput([traj.PlanStep(0, "read a.txt", "read_file")], "r", 0.5))
                        p.transition("planning", "working", "plan ready")
                    with run.worker() as w:
                        w.input(traj.WorkerInput("read a.txt", 0, {}, ["read_file"],
                                                 [traj.FailureNote("timeout", "slow", "read_file")]))
                        w.action(traj.WorkerAction("tool_call", "read_file", {"path": "a.txt"}, "needed"))
                        with w.llm_call("sim", "user: read") as llm:
                            llm.input_messages([traj.ChatMessage.text("user", "read")])
                            llm.output_messages([traj.ChatMessage("assistant", [traj.tool_call_part("c1", "read_file", {"path": "a.txt"})],
                                                                  finish_reason="tool_calls")]).usage(4, 2)
                        with w.tool_call("read_file", "c1", {"path": "a.txt"}, 1) as t:
                            t.err("timeout", "slow disk")
                        with w.tool_call("read_file", "c1", {"path": "a.txt"}, 2) as t:
                            t.observation("read_file", {"files": ["a.txt"]})
                            t.ok("hello")
                        with w.llm_call("sim", "user: read\nassistant: read_file\ntool: hello") as llm:
                            llm.input_messages([
                                traj.ChatMessage.text("user", "read"),
                                traj.ChatMessage("assistant", [traj.tool_call_part("c1", "read_file", {"path": "a.txt"})]),
                                traj.ChatMessage("tool", [traj.tool_call_response_part("c1", "hello")])])
                            llm.output_text("a.txt says hello").usage(9, 4)
                        w.observation("workspace", {"files": ["a.txt"]})
                        failed = cycle == 0
                        w.output(traj.WorkerOutput("error" if failed else "ok", "s", "timeout" if failed else None, 1))
                        w.transition("working", "verifying", "step done")
                    with run.verifier() as v:
                        v.input(traj.VerifierInput(traj.PlanProgress(1, 1), ["read_file#1 timeout"], {"x": 1}))
                        with v.llm_call("sim", "user: judge") as llm:
                            llm.input_messages([traj.ChatMessage.text("user", "judge")]).output_text("end")
                        verdict = "replan" if cycle == 0 else "end"
                        v.verdict(traj.VerifierOutput(verdict, "f", [], 0.7))
                        v.transition("verifying", "planning" if cycle == 0 else "done", verdict)
                run.finish("failure" if i else "success", "false_stop" if i else None)
        with traj.run(goal="Summarize c.zip", goal_family="manual", seed=9, tracer_provider=tel.provider) as run:
            ids.append(run.run_id)
            run.error("env_setup", "cannot prepare the workspace")
            run.finish("aborted", "env_setup")
        stats = tel.shutdown()
        assert stats.lost() == 0 and stats.pending() == 0
        runs = receiver.wait_runs(3)
    finally:
        receiver.stop()
    out = subprocess.run([TRAJ, "validate", str(receiver.data_dir)], capture_output=True, text=True)
    assert out.returncode == 0 and "runs: 3  valid: 3  invalid: 0" in out.stdout, out.stdout + out.stderr
    assert sorted(r.name for r in runs) == sorted(ids)
    assert_has_every_rust_field(runs, rust_runs)


def test_steps_nest_instrumentation_spans_sync_and_async(traj):
    tel, exp = pipeline(traj)
    other = tel.provider.get_tracer("some-llm-instrumentation")

    def sync_run(goal):
        with traj.run(goal=goal, goal_family="f", seed=1, tracer_provider=tel.provider) as run:
            assert traj.current_run() is run
            with run.planner() as p:
                assert traj.current_step() is p
                with other.start_as_current_span("chat gpt-x", attributes={"gen_ai.operation.name": "chat"}):
                    pass
                p.output(traj.PlannerOutput([]))
            run.finish("success")
            return run.run_id

    async def async_run(goal, delay):
        async with traj.run(goal=goal, goal_family="f", seed=2, tracer_provider=tel.provider) as run:
            async with run.planner() as p:
                await asyncio.sleep(delay)  # interleave with the other run's task
                with other.start_as_current_span("chat gpt-y", attributes={"gen_ai.operation.name": "chat"}):
                    await asyncio.sleep(delay)
                assert traj.current_step() is p and traj.current_run() is run
            async with run.worker() as w:
                async def slow_tool(path):
                    await asyncio.sleep(delay)
                    return path.upper()
                assert await w.acall_tool("read", slow_tool, {"path": "a"}) == "A"
            run.finish("success")
            return run.run_id

    async def both():
        return await asyncio.gather(async_run("a", 0.02), async_run("b", 0.01))

    sid = sync_run("s")
    aids = asyncio.run(both())
    assert traj.current_run() is None and traj.current_step() is None
    spans = exp.get_finished_spans()
    by_trace = {}
    for s in spans:
        by_trace.setdefault(format(s.context.trace_id, "032x"), []).append(s)
    assert sorted(by_trace) == sorted([sid, *aids])
    for rid, ss in by_trace.items():
        ids = {s.context.span_id: s for s in ss}
        root = next(s for s in ss if s.parent is None)
        assert root.name == "invoke_workflow traj-agent" and root.attributes["gen_ai.conversation.id"] == rid
        for s in ss:
            if s.name.startswith("chat "):
                assert ids[s.parent.span_id].name == "plan planner", "LLM span must be the planner's child"
            if s.name == "execute_tool read":
                assert ids[s.parent.span_id].name == "invoke_agent worker"
                assert s.attributes["traj.tool.status"] == "ok" and s.attributes["gen_ai.tool.call.result"] == '"A"'


def test_decorators_sync_and_async(traj):
    tel, exp = pipeline(traj)

    @traj.planner
    def plan(goal):
        traj.current_step().output(traj.PlannerOutput([traj.PlanStep(0, goal)]))
        return [goal]

    @traj.tool
    def read_file(path, encoding="utf-8"):
        if path == "missing":
            raise FileNotFoundError(path)
        return {"path": path, "encoding": encoding}

    @traj.worker
    def work(step):
        read_file(step)
        with pytest.raises(FileNotFoundError):
            read_file("missing")
        return "done"

    @traj.verifier(step=0)
    async def judge():
        traj.current_step().verdict({"verdict": "end", "feedback": "", "risk_flags": []})
        return "end"

    with traj.run(goal="g", goal_family="f", seed=3, tracer_provider=tel.provider) as run:
        plan("a.txt")
        work("a.txt")
        assert asyncio.run(judge()) == "end"
        run.finish(traj.Outcome.SUCCESS)
    with pytest.raises(RuntimeError):
        plan("outside a run")
    spans = {s.name: s for s in exp.get_finished_spans()}
    tools = [s for s in exp.get_finished_spans() if s.name == "execute_tool read_file"]
    assert [t.attributes["traj.tool.status"] for t in tools] == ["ok", "error"]
    assert json.loads(tools[0].attributes["gen_ai.tool.call.arguments"]) == {"path": "a.txt", "encoding": "utf-8"}
    assert tools[1].attributes["traj.error.class"] == "not_found"
    assert spans["plan planner"].attributes["traj.step"] == 0 and spans["invoke_agent worker"].attributes["traj.step"] == 0
    assert spans["invoke_agent verifier"].attributes["traj.verdict"] == "end"
    # Auto links: worker -> planner, verifier -> worker.
    assert spans["invoke_agent worker"].links[0].context.span_id == spans["plan planner"].context.span_id
    assert spans["invoke_agent verifier"].links[0].context.span_id == spans["invoke_agent worker"].context.span_id


def test_cycles_links_and_lifecycle(traj):
    tel, exp = pipeline(traj)
    with traj.run(goal="g", goal_family="f", seed=2**64 - 1, tracer_provider=tel.provider) as run:
        for _ in range(2):  # P W V, P W V: the second planner replans (links to the verifier)
            run.planner().end()
            run.worker().end()
            run.verifier().end()
        w = run.worker()  # continue without a plan: links to the last verifier
        w.end()
        w = run.worker()
        t = w.tool_call("x", "c", {})
        t.end()  # neither ok nor err
        w.end()
    spans = exp.get_finished_spans()
    steps = [s for s in spans if s.attributes.get("traj.role") in ("planner", "worker", "verifier")]
    steps.sort(key=lambda s: s.start_time)
    assert [(s.attributes["traj.role"], s.attributes["traj.step"]) for s in steps] == [
        ("planner", 0), ("worker", 0), ("verifier", 0), ("planner", 1), ("worker", 1), ("verifier", 1),
        ("worker", 2), ("worker", 3)]
    assert steps[3].links[0].context.span_id == steps[2].context.span_id
    assert steps[6].links[0].context.span_id == steps[5].context.span_id
    tool = next(s for s in spans if s.name == "execute_tool x")
    assert tool.attributes["traj.error.class"] == "abandoned"
    root = next(s for s in spans if s.parent is None)
    assert root.attributes["traj.outcome"] == "aborted" and root.attributes["traj.failure_class"] == "cancelled"
    assert root.attributes["traj.seed"] == str(2**64 - 1)  # above int64: a decimal string, as in Rust

    exp.clear()
    with pytest.raises(TimeoutError):
        with traj.run(goal="g", goal_family="f", seed=1, tracer_provider=tel.provider) as run:
            with run.worker():
                raise TimeoutError("model did not answer")
    spans = {s.name: s for s in exp.get_finished_spans()}
    root, worker_span = spans["invoke_workflow traj-agent"], spans["invoke_agent worker"]
    assert worker_span.attributes["error.type"] == "timeout" and worker_span.status.status_code.name == "ERROR"
    assert root.attributes["traj.outcome"] == "aborted" and root.attributes["traj.failure_class"] == "timeout"
    assert [e.name for e in root.events] == ["exception"]


def test_redaction_hook_applies_to_payloads_and_is_recorded(traj, tmp_path):
    import re
    email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    calls = []

    def scrub(s):
        calls.append(s)
        return email.sub("<EMAIL>", s)

    policy = traj.RedactionPolicy("acme-pii", "3", text=scrub)
    receiver = start_receiver(tmp_path / "data")
    try:
        tel = traj.init(protocol="http", endpoint=f"http://{receiver.http}", set_global=False)
        ms = {"worker": {"model": "m", "params": {"user": "ops@example.com"}}}
        with traj.run(goal="Mail bob@example.com the report", goal_family="mail", seed=1, model_stack=ms,
                      redaction=policy, tracer_provider=tel.provider) as run:
            with run.planner() as p:
                p.input(traj.PlannerInput("Mail bob@example.com the report"))
                p.output(traj.PlannerOutput([traj.PlanStep(0, "send to bob@example.com", "send")]))
            with run.worker() as w:
                w.input({"current_step": "send", "env_state": {"to": ["bob@example.com"]}})
                with w.tool_call("send", "c1", {"to": "bob@example.com"}) as t:
                    t.err("rejected", "bob@example.com bounced")
                w.observation("inbox", {"from": "alice@example.org"})
                w.output(traj.WorkerOutput(summary="sent to bob@example.com"))
                w.transition("working", "verifying", "sent to bob@example.com")
            with run.verifier() as v:
                v.verdict(traj.VerifierOutput("end", "bob@example.com has it"))
            run.finish("success")
        tel.shutdown()
        runs = receiver.wait_runs(1)
    finally:
        receiver.stop()
    session, events = load_run(runs[0])
    text = (runs[0] / "session.json").read_text() + (runs[0] / "events.jsonl").read_text()
    assert "example.com" not in text and "example.org" not in text
    assert "<EMAIL>" in session["goal"]
    assert session["data_governance"] == {"redaction_policy": "acme-pii", "redaction_version": "3",
                                          "pii_scan_status": "source_redacted"}
    # As on the Rust side, the hash is over the configuration as given, before redaction.
    assert session["config_hash"] == traj.run_hashes(ms, None, {}, []).config_hash
    assert session["model_stack"]["worker"]["params"]["user"] == "<EMAIL>"
    kinds = {e["event_type"] for e in events}
    assert {"worker_tool_result", "env_observation", "orchestrator_transition"} <= kinds
    assert any("bob@example.com" in c for c in calls)
    # A payload-level hook sees whole JSON values (a copy) and its result is what is recorded.
    seen = []
    drop_keys = traj.RedactionPolicy("drop-secrets", "1",
                                     payload=lambda v: seen.append(v) or ({k: x for k, x in v.items() if k != "secret"}
                                                                          if isinstance(v, dict) else v))
    original = {"secret": "s3cr3t", "ok": 1}
    assert drop_keys.redact_json(original) == {"ok": 1} and original == {"secret": "s3cr3t", "ok": 1}


class BlockingExporter:
    """A SpanExporter that blocks until released, then succeeds (or fails)."""

    def __init__(self, fail=False):
        self.release = threading.Event()
        self.fail = fail
        self.exported = 0

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult
        self.release.wait(30)
        if self.fail:
            return SpanExportResult.FAILURE
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.release.set()

    def force_flush(self, timeout_millis=30000):
        return True


def test_drop_accounting_counts_what_the_sdk_would_drop_silently(traj):
    exp = BlockingExporter()
    tel, _ = pipeline(traj, exporter=exp, max_queue_size=16, max_export_batch_size=4, schedule_delay_millis=10)
    tracer = tel.provider.get_tracer("burst")
    with traj.run(goal="g", goal_family="f", seed=1, tracer_provider=tel.provider) as run:
        for i in range(100):  # the exporter is blocked: at most 16 queued (+ one batch in the exporter)
            tracer.start_span(f"s{i}").end()
        time.sleep(0.2)
        lost_before_finish = traj.active_stats().lost()
        assert lost_before_finish > 0
        exp.release.set()
        run.finish("success")  # records traj.spans_dropped, then flushes
    st = tel.stats()
    assert st.ended == 101 and st.pending() == 0, st
    assert st.ended == st.exported + st.dropped + st.failed
    assert st.dropped >= 100 - 16 - 4 and st.exported == exp.exported
    tel.processor.shutdown()
    tracer.start_span("after-shutdown").end()
    assert tel.stats().dropped == st.dropped + 1
    # the root span carried the losses seen when the run ended
    # (recorded before its own export, as on the Rust side)
    assert lost_before_finish <= st.dropped


def test_failed_exports_are_counted_and_recorded_on_the_next_run(traj):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    failing = BlockingExporter(fail=True)
    failing.release.set()
    tel, _ = pipeline(traj, exporter=failing, schedule_delay_millis=60_000)
    with traj.run(goal="g", goal_family="f", seed=1, tracer_provider=tel.provider) as run:
        run.planner().end()
        run.finish("success")
    st = tel.stats()
    assert st.failed == 2 and st.exported == 0 and st.pending() == 0  # flushed at run end despite the 60 s delay
    # The next run's root records them.
    mem = InMemorySpanExporter()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    tel.provider.add_span_processor(SimpleSpanProcessor(mem))
    with traj.run(goal="g", goal_family="f", seed=1, tracer_provider=tel.provider) as run:
        run.finish("success")
    root = mem.get_finished_spans()[-1]
    assert root.attributes["traj.spans_dropped"] == 2


def test_flush_at_run_end_exports_without_waiting_for_the_batch_delay(traj):
    tel, mem = pipeline(traj, schedule_delay_millis=60_000)
    with traj.run(goal="g", goal_family="f", seed=1, tracer_provider=tel.provider) as run:
        run.worker().end()
        assert mem.get_finished_spans() == ()
    assert len(mem.get_finished_spans()) == 2  # flushed by finish, not after 60 s
    assert tel.stats().exported == 2


def test_export_configuration_resolves_like_the_rust_side(traj):
    r = traj.resolve_export
    assert r(env={}) == traj.ResolvedExport("grpc", "http://127.0.0.1:4317", "traj-agent")
    assert r(protocol="http", env={}).endpoint == "http://127.0.0.1:4318/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/",
           "OTEL_SERVICE_NAME": "svc"}
    assert r(env=env) == traj.ResolvedExport("http/protobuf", "http://c:4318/v1/traces", "svc")
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://t:1/custom"
    assert r(env=env).endpoint == "http://t:1/custom"  # the traces variable is used as is
    assert r(endpoint="http://x:9", protocol="http", env=env).endpoint == "http://x:9/v1/traces"
    assert r(endpoint="http://x:9/p", protocol="http", env=env).endpoint == "http://x:9/p"
    assert r(endpoint="http://x:9", env={"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                                         "OTEL_EXPORTER_OTLP_PROTOCOL": "http"}).protocol == "grpc"
    with pytest.raises(ValueError):
        r(protocol="http/json", env={})
    with pytest.raises(ValueError):
        r(endpoint="127.0.0.1:4317", env={})


def test_payloads_serialize_like_the_rust_types(traj):
    assert traj.PlannerInput("g").to_json() == {"goal": "g", "observation": None, "history": [], "tool_mask": {}}
    assert traj.WorkerInput("s", plan_step=1).to_json() == {
        "plan_step": 1, "current_step": "s", "env_state": None, "allowed_tools": [], "prior_failures": []}
    assert traj.WorkerOutput("error", "x", "timeout").to_json() == {
        "status": "error", "summary": "x", "error_class": "timeout", "retries": 0}
    assert traj.VerifierOutput(traj.Verdict.END).to_json() == {"verdict": "end", "feedback": "", "risk_flags": []}
    with pytest.raises(ValueError):
        traj.VerifierOutput("maybe")
    assert traj.ChatMessage("assistant", [traj.tool_call_part("c", "f", {"a": 1})], finish_reason="tool_calls").to_json() == {
        "role": "assistant", "parts": [{"type": "tool_call", "id": "c", "name": "f", "arguments": {"a": 1}}],
        "finish_reason": "tool_calls"}
    assert traj.error_class_of(traj.ToolError("rate_limited", "429")) == "rate_limited"
    assert traj.error_class_of(RuntimeError("x")) == "runtime_error"
    # The payload files of proto/schemas accept what the classes produce (required keys present).
    schemas = ROOT / "proto" / "schemas"
    for cls, name, obj in [("PlannerOutput", "planner_output", traj.PlannerOutput([traj.PlanStep(0, "d")])),
                           ("WorkerAction", "worker_action", traj.WorkerAction("respond")),
                           ("VerifierInput", "verifier_input", traj.VerifierInput())]:
        files = list(schemas.glob(f"payload.{name}.schema.json"))
        assert files, name
        schema = json.loads(files[0].read_text())
        assert set(schema.get("required", [])) <= set(obj.to_json()), (cls, schema.get("required"))
        assert set(obj.to_json()) <= set(schema.get("properties", {})), cls
