"""Regenerates tests/fixtures/real_agents/<name>/: runs each real-library agent once (one run, a
fixed goal whose first tool attempt fails) against the stub model and the OTLP/HTTP capture sink,
and saves the raw ExportTraceServiceRequest / ExportLogsServiceRequest bodies as sent
(`traces-NNN.pb`, `logs-NNN.pb`), `truth.json` (the agent's ground truth plus `wire`: every request
and response the stub saw) and `dump.txt` (human-readable decode).

    tests/.venv/bin/python tests/python/real_agents/capture_fixtures.py [NAME ...]
"""
import json
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from capture_sink import CaptureSink  # noqa: E402
from dump_otlp import dump_logs, dump_traces  # noqa: E402
from stub_openai import StubServer, read_log  # noqa: E402

ROOT = HERE.parents[2]
OUT = ROOT / "tests" / "fixtures" / "real_agents"
GOAL = "Summarize flaky.log for the on-call engineer"
AGENTS = {
    "openai_v2_span": ["agent_openai_v2.py", "--mode", "span"],
    "openai_v2_event": ["agent_openai_v2.py", "--mode", "event"],
    "openai_v2_legacy": ["agent_openai_v2.py", "--mode", "legacy"],
    "openinference": ["agent_openinference.py"],
    "openllmetry": ["agent_openllmetry.py"],
    "pydantic_ai": ["agent_pydantic_ai.py"],
}


def capture(name):
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = pathlib.Path("/tmp") / f"traj-capture-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    stub = StubServer(work / "stub.jsonl").start()
    sink = CaptureSink(out).start()
    try:
        script, *extra = AGENTS[name]
        r = subprocess.run([sys.executable, str(HERE / script), *extra, "--stub", stub.base_url,
                            "--endpoint", sink.endpoint, "--protocol", "http", "--goal", GOAL,
                            "--truth", str(work / "truth.json"), "--service-name", f"pvw-{name}"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"{name} failed:\n{r.stdout}\n{r.stderr}")
        time.sleep(0.3)
    finally:
        sink.stop()
        stub.stop()
    truth = json.loads((work / "truth.json").read_text())
    truth["wire"] = read_log(work / "stub.jsonl")
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    dump = []
    for f in sorted(out.glob("traces-*.pb")):
        dump.append(f"===== {f.name}\n{dump_traces(f.read_bytes())}")
    for f in sorted(out.glob("logs-*.pb")):
        dump.append(f"===== {f.name}\n{dump_logs(f.read_bytes())}")
    (out / "dump.txt").write_text("\n".join(dump))
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(name, sizes)


if __name__ == "__main__":
    for n in sys.argv[1:] or AGENTS:
        capture(n)
