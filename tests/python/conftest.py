"""Shared fixtures: a real `traj serve` process on loopback ports chosen by the OS."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# `traj build --config` for corpora of a few runs, whose validation and test splits stay empty.
SMALL_CORPUS_CONFIG = str(ROOT / "tests" / "fixtures" / "build-small-corpus.toml")
TRAJ = os.environ.get("TRAJ_BIN", str(ROOT / "target" / "debug" / "traj"))
AGENT = os.environ.get("TRAJ_AGENT", str(ROOT / "target" / "debug" / "examples" / "agent"))


class Receiver:
    def __init__(self, data_dir: pathlib.Path, proc: subprocess.Popen, info: dict):
        self.data_dir = data_dir
        self.proc = proc
        self.grpc = info["grpc"]
        self.http = info["http"]

    def runs(self):
        d = self.data_dir / "runs"
        return sorted(p for p in d.iterdir() if (p / "session.json").is_file()) if d.is_dir() else []

    def wait_runs(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) >= n:
                return runs
            assert self.proc.poll() is None, "traj serve exited"
            time.sleep(0.2)
        raise AssertionError(f"only {len(self.runs())} of {n} runs finalized in {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise


def start_receiver(data_dir: pathlib.Path, *extra: str, grpc: str = "127.0.0.1:0") -> Receiver:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"{data_dir.name}.serve.log", "ab")
    (data_dir / "receiver.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [TRAJ, "serve", "--data-dir", str(data_dir), "--grpc", grpc, "--http", "127.0.0.1:0",
         "--grace-period", "300ms", *extra],
        stdout=log, stderr=subprocess.STDOUT,
    )
    info_path = data_dir / "receiver.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if info_path.is_file():
            try:
                return Receiver(data_dir, proc, json.loads(info_path.read_text()))
            except (json.JSONDecodeError, KeyError):
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"traj serve did not start: {(data_dir.parent / f'{data_dir.name}.serve.log').read_text()}")


@pytest.fixture
def receiver(tmp_path):
    r = start_receiver(tmp_path / "data")
    yield r
    r.stop()
