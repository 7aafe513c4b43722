"""The whole chain on this machine (`traj demo`: receiver, example agent, build, report), then
Hugging Face `datasets` must load every file of every view in every split."""
import json
import subprocess

from datasets import load_dataset

from conftest import TRAJ

VIEWS = ["planner_sft", "worker_sft", "verifier_sft", "verifier_pref_pairs", "worker_recovery_cases"]


def test_demo_outputs_load_in_hf_datasets(tmp_path):
    out = subprocess.run([TRAJ, "demo", "--dir", str(tmp_path / "demo"), "--tasks", "120"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    ds_dir = tmp_path / "demo" / "datasets"
    report = json.loads((ds_dir / "report.json").read_text())
    for split in ["train", "validation", "test"]:
        for view in VIEWS:
            path = ds_dir / split / f"{view}.jsonl"
            assert path.is_file(), path
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert rows, f"{path} is empty"
            ds = load_dataset("json", data_files=str(path), split="train")
            assert len(ds) == len(rows)
            meta = rows[0]["metadata"]
            assert meta["run_id"] and meta["span_ids"] and meta["event_ids"], meta
    # Leakage: no goal family in two splits.
    assert report["leakage"]["shared_goal_families"] == 0, report["leakage"]
