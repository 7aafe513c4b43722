"""traj's datasets train a model with TRL: `traj demo` makes a dataset, then trl_train_check.py (run by
the TRL venv's python, which has torch; this venv has not) trains a tiny random model on every view
with SFTTrainer / DPOTrainer / KTOTrainer, and the stepwise view (TRL 1.16 has no PRM trainer) as a
token classifier with transformers' Trainer, and checks the losses are finite and falling.

The TRL venv is made by tests/python/install-trl-venv.sh (~6 GB). Its python is `$TRAJ_TRL_PYTHON`, else
`${TRAJ_TRL_VENV:-~/.cache/traj/trl-venv}/bin/python`. Without it these tests skip, unless
`TRAJ_REQUIRE_TRL=1`, which makes its absence a failure.
"""
import json
import math
import os
import pathlib
import random
import subprocess

import pytest

from conftest import AGENT, TRAJ

HERE = pathlib.Path(__file__).resolve().parent
CHECK = HERE / "trl_train_check.py"
SPLITS = ["train", "validation", "test"]
SFT_VIEWS = ["planner_sft", "worker_sft", "verifier_sft", "worker_recovery_cases"]
PREF_VIEW = "verifier_pref_pairs"
KTO_VIEWS = ["verifier_kto", "worker_kto"]
PRM_VIEW = "worker_prm"
VIEWS = SFT_VIEWS + [PREF_VIEW] + KTO_VIEWS + [PRM_VIEW]
TRAINER = {**{v: "sft" for v in SFT_VIEWS}, PREF_VIEW: "dpo", **{v: "kto" for v in KTO_VIEWS},
           PRM_VIEW: "prm_token_classification"}


def _trl_python():
    if os.environ.get("TRAJ_TRL_PYTHON"):
        return pathlib.Path(os.environ["TRAJ_TRL_PYTHON"])
    venv = os.environ.get("TRAJ_TRL_VENV") or str(pathlib.Path.home() / ".cache" / "traj" / "trl-venv")
    return pathlib.Path(venv) / "bin" / "python"


@pytest.fixture(scope="module")
def trl_python():
    py = _trl_python()
    if py.is_file() and os.access(py, os.X_OK):
        return py
    why = (f"TRL venv absent: no python at {py}. Make it with tests/python/install-trl-venv.sh "
           "(or point TRAJ_TRL_PYTHON / TRAJ_TRL_VENV at one)")
    if os.environ.get("TRAJ_REQUIRE_TRL", "") not in ("", "0"):
        pytest.fail(f"{why}; TRAJ_REQUIRE_TRL is set, so this is a failure")
    pytest.skip(f"{why}; set TRAJ_REQUIRE_TRL=1 to make this a failure")


def run_check(trl_python, ds_dir, *extra, timeout=900):
    # The TRL venv's python must not see this venv's packages.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([str(trl_python), str(CHECK), str(ds_dir), *extra],
                          capture_output=True, text=True, timeout=timeout, env=env)


def summaries(out):
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            s = json.loads(line)
            rows[s["view"]] = s
    return rows


def read_rows(ds_dir, view, split="train"):
    path = ds_dir / split / f"{view}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def train_rows(ds_dir, view):
    return len(read_rows(ds_dir, view))


def assert_trained(out, ds_dir, all_rows=False):
    detail = f"exit {out.returncode}\n--- stdout\n{out.stdout}\n--- stderr (tail)\n{out.stderr[-6000:]}"
    assert out.returncode == 0, detail
    got = summaries(out)
    for view in VIEWS:
        n = train_rows(ds_dir, view)
        if view == "worker_recovery_cases" and n == 0:
            assert got.get(view, {}).get("skipped"), detail
            continue
        assert n > 0, f"{ds_dir}/train/{view}.jsonl is empty"
        s = got.get(view)
        assert s, f"no summary line for {view}\n{detail}"
        assert s["trainer"] == TRAINER[view], s
        assert s["rows"]["train"] == n, s
        # TRL drops an example left with nothing to learn after truncation (max_length 2048 tokens); KTO
        # trains on a subset of at most 48 rows (both labels kept), so that it sees each row more than once.
        if view in KTO_VIEWS:
            assert 0 < s["rows"]["trained"] <= min(n, 48), s
            if all_rows and n <= 48:
                assert s["rows"]["trained"] == n, s
        else:
            assert (s["rows"]["trained"] == n) if all_rows else (s["rows"]["trained"] > 0), s
        assert s["steps"] >= 20, s
        for k in ("first_loss", "last_loss", "first_mean", "last_mean"):
            assert math.isfinite(s[k]), s
        assert s["last_mean"] < s["first_mean"], s
        rows = read_rows(ds_dir, view)
        if view in KTO_VIEWS:
            # Both labels, as the file has them, and both still there in what was trained.
            want = sum(1 for r in rows if r["label"] is True)
            assert s["labels"] == {"desirable": want, "undesirable": n - want}, s
            assert s["labels_trained"]["desirable"] > 0 and s["labels_trained"]["undesirable"] > 0, s
            assert sum(s["labels_trained"].values()) == s["rows"]["trained"], s
            assert s["loss_tokens"] is None, s  # like DPO: a sequence-level loss
        elif view == PRM_VIEW:
            # One labelled position (the step separator) per step of every trained row.
            assert s["loss_tokens"] == s["labels"]["good_steps"] + s["labels"]["bad_steps"] > 0, s
            if s["rows"]["trained"] == n:
                assert s["loss_tokens"] == sum(len(r["labels"]) for r in rows), s
                assert s["labels"]["good_steps"] == sum(sum(1 for x in r["labels"] if x) for r in rows), s
        elif view != PREF_VIEW:
            assert s["loss_tokens"] > 0, s
    return got


def test_trl_trains_on_demo_datasets(tmp_path, trl_python):
    demo = tmp_path / "demo"
    cmd = [TRAJ, "demo", "--dir", str(demo), "--tasks", "20"]
    if pathlib.Path(AGENT).is_file():
        cmd += ["--agent", AGENT]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    ds_dir = demo / "datasets"
    got = assert_trained(run_check(trl_python, ds_dir), ds_dir)
    print("\n".join(json.dumps(s) for s in got.values()))


# --- rows shaped like real LLM conversations --------------------------------------------------

WORDS = ("read write list search calc sum file path note alpha beta gamma delta error retry done "
         "plan step goal value result check ok fail missing found answer").split()


def _text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _tool(rng, i):
    # Parameter schemas that differ from row to row (and clash in type on the key "x").
    props = {"x": {"type": rng.choice(["string", "integer"])}, f"p{i % 3}": {"type": "string"}}
    return {"type": "function",
            "function": {"name": f"tool_{i % 4}", "description": _text(rng, 3),
                         "parameters": {"type": "object", "properties": props, "required": ["x"]}}}


def _call(rng, i, j):
    args = {"x": rng.choice([1, "one", 2.5, None, [1, 2], {"deep": True}]), f"p{j % 3}": _text(rng, 2)}
    # Arguments as an object, and now and then as a JSON string (an OpenAI-style row slipping in).
    return {"id": f"call_{i}_{j}", "type": "function",
            "function": {"name": f"tool_{j % 4}", "arguments": json.dumps(args) if j % 5 == 4 else args}}


def _conversation(rng, i):
    msgs = [{"role": "system", "content": _text(rng, 8)},
            {"role": "user", "content": _text(rng, 12), "extra": {"k": i}}]
    for turn in range(rng.randint(1, 2)):
        calls = [_call(rng, i, j) for j in range(rng.randint(1, 3))]
        msgs.append({"role": "assistant", "content": "" if turn % 2 == 0 else None, "tool_calls": calls,
                     "reasoning_content": _text(rng, 4), "refusal": None})
        for c in calls:
            tool_msg = {"role": "tool", "tool_call_id": c["id"], "content": _text(rng, 6)}
            if rng.random() < 0.5:
                tool_msg["name"] = c["function"]["name"]
            msgs.append(tool_msg)
    final = rng.choice([
        {"role": "assistant", "content": _text(rng, 10)},
        {"role": "assistant", "content": [{"type": "text", "text": _text(rng, 10)}]},
        {"role": "assistant", "content": "", "tool_calls": [_call(rng, i, 9), _call(rng, i, 10)]},
    ])
    return msgs, final


def _row(rng, i, view):
    row = {"metadata": {"run_id": f"r{i}", "step": rng.choice([1, "1", None])}}
    if view == PRM_VIEW:
        # Stepwise rows are text: steps with newlines, JSON and non-ASCII, one label per step.
        steps = [f"{_text(rng, 4)}\n{json.dumps({'x': rng.choice([1, 'é', None])})} ünï"
                 for _ in range(rng.randint(1, 4))]
        row.update(prompt=f"Goal: {_text(rng, 8)}\nPlan:\n0. {_text(rng, 4)}", completions=steps,
                   labels=[rng.random() < 0.6 for _ in steps])
        return row
    msgs, final = _conversation(rng, i)
    if i % 3:
        row["tools"] = [_tool(rng, i + k) for k in range(rng.randint(0, 3))]
    if view == PREF_VIEW:
        row.update(prompt=msgs, chosen=[final], rejected=[{"role": "assistant", "content": _text(rng, 5)}])
    elif view in KTO_VIEWS:
        # Unpaired preference: a completion that may be a text or tool calls; both labels in every split.
        row.update(prompt=msgs, completion=[final], label=i % 3 != 1)
    else:
        row["messages"] = msgs + [final]
    return row


def write_llm_shaped_dataset(ds_dir, n_train=24, n_held=4, seed=1):
    rng = random.Random(seed)
    for split, n in zip(SPLITS, (n_train, n_held, n_held)):
        (ds_dir / split).mkdir(parents=True, exist_ok=True)
        for view in VIEWS:
            rows = [_row(rng, i, view) for i in range(n)]
            (ds_dir / split / f"{view}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_trl_trains_on_llm_shaped_rows(tmp_path, trl_python):
    """Empty/null/list content, several tool calls per assistant message, tool messages with and without
    a name, arguments as objects of clashing types or as JSON strings, missing or empty `tools`, extra
    keys in messages, KTO completions made of tool calls, stepwise steps with newlines and non-ASCII
    text: the loaders, the chat template and the PRM tokenisation take them all."""
    ds_dir = tmp_path / "datasets"
    write_llm_shaped_dataset(ds_dir)
    assert_trained(run_check(trl_python, ds_dir, "--steps", "30"), ds_dir, all_rows=True)


def test_trl_check_fails_clearly_on_untrainable_views(tmp_path, trl_python):
    """Empty views FAIL (worker_recovery_cases may be empty: skipped), and so does a KTO view whose train
    split holds one label only (KTO learns from the contrast), without a crash and without training."""
    ds_dir = tmp_path / "datasets"
    rng = random.Random(3)
    for split in SPLITS:
        (ds_dir / split).mkdir(parents=True)
        for view in VIEWS:
            rows = []
            if view == "worker_kto":
                rows = [dict(_row(rng, i, view), label=True) for i in range(6)]
            (ds_dir / split / f"{view}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_check(trl_python, ds_dir, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    fails = {line.split(":")[0][len("FAIL "):]: line for line in out.stderr.splitlines() if line.startswith("FAIL ")}
    for view in VIEWS:
        if view in ("worker_recovery_cases", "worker_kto"):
            continue
        assert view in fails and "has no rows" in fails[view], (view, out.stderr)
    assert "worker_kto" in fails and "every train row is desirable (label=true)" in fails["worker_kto"], out.stderr
    assert "KTO needs both labels" in fails["worker_kto"], out.stderr
    assert "worker_recovery_cases" not in fails, out.stderr
    assert summaries(out) == {"worker_recovery_cases": {"view": "worker_recovery_cases", "skipped": "no training rows"}}
