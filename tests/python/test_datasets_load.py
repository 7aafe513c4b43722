"""The whole chain on this machine (`traj demo`: receiver, example agent, build, report), then
Hugging Face `datasets` must load every file of every view in every split, and every config of the
dataset card (OUT/README.md) by name."""
import collections
import json
import shutil
import subprocess

import pytest
import yaml
from datasets import DatasetDict, load_dataset

from conftest import SMALL_CORPUS_CONFIG, TRAJ

SPLITS = ["train", "validation", "test"]
VIEWS = ["planner_sft", "worker_sft", "verifier_sft", "verifier_pref_pairs", "worker_recovery_cases",
         "verifier_kto", "worker_kto", "worker_prm"]
KTO_VIEWS = ["verifier_kto", "worker_kto"]
PRM_VIEW = "worker_prm"
# The columns of each view's rows (TRL formats: conversational language modelling, prompt-completion,
# paired preference, unpaired preference, stepwise supervision), metadata being traj's lineage.
COLUMNS = {
    "planner_sft": {"messages", "tools", "metadata"},
    "worker_sft": {"messages", "tools", "metadata"},
    "verifier_sft": {"messages", "tools", "metadata"},
    "worker_recovery_cases": {"prompt", "completion", "tools", "metadata"},
    "verifier_pref_pairs": {"prompt", "chosen", "rejected", "tools", "metadata"},
    "verifier_kto": {"prompt", "completion", "label", "tools", "metadata"},
    "worker_kto": {"prompt", "completion", "label", "tools", "metadata"},
    "worker_prm": {"prompt", "completions", "labels", "metadata"},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `traj demo --tasks 120` for the module: (its datasets directory, report.json)."""
    root = tmp_path_factory.mktemp("demo")
    out = subprocess.run([TRAJ, "demo", "--dir", str(root / "demo"), "--tasks", "120"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    ds_dir = root / "demo" / "datasets"
    return ds_dir, json.loads((ds_dir / "report.json").read_text())


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def card_front_matter(ds_dir):
    text = (ds_dir / "README.md").read_text()
    assert text.startswith("---\n"), text[:200]
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


def test_demo_outputs_load_in_hf_datasets(demo):
    ds_dir, report = demo
    for split in SPLITS:
        for view in VIEWS:
            path = ds_dir / split / f"{view}.jsonl"
            assert path.is_file(), path
            rows = jsonl(path)
            assert rows, f"{path} is empty"
            assert len(rows) == report["rows"][split][view], (path, len(rows), report["rows"][split][view])
            ds = load_dataset("json", data_files=str(path), split="train")
            assert len(ds) == len(rows)
            meta = rows[0]["metadata"]
            assert meta["run_id"] and meta["span_ids"] and meta["event_ids"], meta
    # Leakage: no goal family in two splits.
    assert report["leakage"]["shared_goal_families"] == 0, report["leakage"]


def check_card_configs(ds_dir, report, cache_dir):
    """`load_dataset(OUT, view)` for every config of the card: its splits are the splits with rows,
    each split holds every line of its jsonl, and rows come back as written (nested messages, tools
    and metadata intact; KTO `label` a bool; PRM `completions` and `labels` of one length)."""
    card = card_front_matter(ds_dir)
    configs = {c["config_name"]: c for c in card["configs"]}
    # A view with no row in any split has no config (`datasets` refuses a config without data).
    assert sorted(configs) == sorted(v for v in VIEWS if any(report["rows"][s].get(v, 0) for s in SPLITS)), \
        (sorted(configs), report["rows"])
    for view, config in configs.items():
        with_rows = [s for s in SPLITS if report["rows"][s].get(view, 0) > 0]
        card_files = {f["split"]: f["path"] for f in config["data_files"]}
        assert card_files == {s: f"{s}/{view}.jsonl" for s in with_rows}, (view, card_files)
        feature_names = {f["name"] for f in config["features"]}
        assert feature_names == COLUMNS[view], (view, feature_names)

        # A cache of the test's own: `datasets` keys the cache of a card-configured directory on the card,
        # not on the files' contents (see test_card_reload_after_rebuild_in_place).
        dsd = load_dataset(str(ds_dir), view, cache_dir=str(cache_dir))
        assert isinstance(dsd, DatasetDict), type(dsd)
        assert sorted(dsd.keys()) == sorted(with_rows), (view, list(dsd.keys()), with_rows)
        for split in with_rows:
            ds = dsd[split]
            lines = jsonl(ds_dir / split / f"{view}.jsonl")
            assert ds.num_rows == len(lines) == report["rows"][split][view], (view, split, ds.num_rows, len(lines))
            assert set(ds.column_names) == COLUMNS[view], (view, split, ds.column_names)
            classes = collections.Counter()
            for i, (got, want) in enumerate(zip(ds, lines)):
                where = f"{view}/{split} row {i}"
                # Every row has exactly the card's columns, and comes back equal to what was written.
                assert set(want) == COLUMNS[view], (where, sorted(want))
                assert got == want, where
                meta = got["metadata"]
                assert isinstance(meta, dict) and meta["run_id"] and meta["span_ids"], (where, meta)
                if view in KTO_VIEWS:
                    assert isinstance(got["label"], bool), (where, got["label"])
                    assert meta["labels"]["desirable"] == got["label"], (where, meta["labels"])
                    assert meta["labels"]["label_rule"], (where, meta["labels"])
                    assert [m["role"] for m in got["completion"]] == ["assistant"], (where, got["completion"])
                    assert got["prompt"] and all(isinstance(m["role"], str) for m in got["prompt"]), where
                    classes[str(got["label"]).lower()] += 1
                elif view == PRM_VIEW:
                    assert isinstance(got["prompt"], str) and got["prompt"], where
                    assert got["completions"] and all(isinstance(c, str) and c for c in got["completions"]), where
                    assert len(got["completions"]) == len(got["labels"]), (where, got["completions"], got["labels"])
                    assert all(isinstance(x, bool) for x in got["labels"]), (where, got["labels"])
                    assert meta["labels"]["all_steps_good"] == all(got["labels"]), (where, meta["labels"])
                    assert meta["labels"]["label_rule"], (where, meta["labels"])
                    classes[str(all(got["labels"])).lower()] += 1
            if classes:
                # The class balance report.json gives is the one the rows hold.
                assert dict(classes) == report["balance"]["classes"][view][split], (view, split, classes)
        # The first row, field by field (the comparison above is of whole rows).
        first = jsonl(ds_dir / with_rows[0] / f"{view}.jsonl")[0]
        got = dsd[with_rows[0]][0]
        assert got["metadata"]["run_id"] == first["metadata"]["run_id"]
        for key in ("messages", "prompt", "completion", "chosen", "rejected", "completions", "labels", "tools"):
            if key in first:
                assert got[key] == first[key], (view, key)
    return sorted(configs)


def test_dataset_card_configs_load_by_name(demo, tmp_path):
    ds_dir, report = demo
    assert check_card_configs(ds_dir, report, tmp_path / "hf-cache") == sorted(VIEWS)


def one_family_runs(ds_dir):
    """The demo's runs of its commonest goal family."""
    by_family = collections.defaultdict(list)
    runs_dir = ds_dir.parent / "data" / "runs"
    for run in sorted(p for p in runs_dir.iterdir() if (p / "session.json").is_file()):
        by_family[json.loads((run / "session.json").read_text())["goal_family"]].append(run)
    return max(by_family.values(), key=len)


def test_dataset_card_leaves_out_empty_splits(demo, tmp_path):
    """Runs of one goal family all land in one split (grouped splits): `traj build` refuses the empty
    splits by default, accepts them with `allow_thin_splits`, and then the card's configs name only the
    split with rows, so `load_dataset(OUT, view)` gives that split alone."""
    ds_dir, _ = demo
    small = tmp_path / "runs"
    for run in one_family_runs(ds_dir)[:8]:
        shutil.copytree(run, small / run.name)

    refused = subprocess.run([TRAJ, "build", "--runs", str(small), "--out", str(tmp_path / "refused")],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    checks = json.loads((tmp_path / "refused" / "report.json").read_text())["checks"]
    assert any(c["severity"] == "error" for c in checks), checks

    out = tmp_path / "ds"
    built = subprocess.run([TRAJ, "build", "--runs", str(small), "--out", str(out), "--config", SMALL_CORPUS_CONFIG],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    report = json.loads((out / "report.json").read_text())
    empty = [s for s in SPLITS if not any(report["rows"][s].values())]
    assert empty, report["rows"]  # else this test proves nothing about empty splits
    assert check_card_configs(out, report, tmp_path / "hf-cache"), report["rows"]


def test_worker_kto_completion_is_the_judged_action(demo):
    """A worker_kto row labelled by a tool outcome must have that tool call as its completion: KTO learns
    only from the completion, and the label is about the call."""
    ds_dir, _ = demo
    judged = 0
    for split in SPLITS:
        for i, row in enumerate(jsonl(ds_dir / split / "worker_kto.jsonl")):
            if row["metadata"]["labels"].get("tool_status") is None:
                continue  # labelled by output status: no tool call to judge
            judged += 1
            (answer,) = row["completion"]
            assert answer.get("tool_calls"), (f"worker_kto/{split} row {i}: labelled by the tool outcome "
                                              f"but its completion has no tool call: {answer}")
    assert judged, "no worker_kto row labelled by a tool outcome"


def test_card_reload_after_rebuild_in_place(demo, tmp_path):
    ds_dir, _ = demo
    runs = one_family_runs(ds_dir)
    cache = tmp_path / "hf-cache"
    out = tmp_path / "ds"
    seen = []
    for n in (4, 8):
        small = tmp_path / f"runs{n}"
        for run in runs[:n]:
            shutil.copytree(run, small / run.name)
        built = subprocess.run([TRAJ, "build", "--runs", str(small), "--out", str(out), "--config",
                                SMALL_CORPUS_CONFIG], capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr
        want = jsonl(out / "train" / "worker_sft.jsonl")
        got = load_dataset(str(out), "worker_sft", cache_dir=str(cache))["train"]
        seen.append(len(want))
        assert got.num_rows == len(want), (f"build {len(seen)}: {got.num_rows} rows loaded, the file has "
                                           f"{len(want)}")
    assert seen[0] != seen[1], seen  # else the second build proves nothing
