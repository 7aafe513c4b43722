"""Real OpenTelemetry Collector and Jaeger v2 processes for the live tests (built by
tests/otel-bins/build.sh; paths in TRAJ_OTELCOL / TRAJ_JAEGER). Every process listens on
127.0.0.1 on ports the OS picked and is stopped by the test that started it."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "collector-config"


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("TRAJ_REQUIRE_OTEL_BINS") == "1"


def otel_bin(var: str) -> str:
    """Path of a built Go program; a missing one fails under CI / TRAJ_REQUIRE_OTEL_BINS=1."""
    path = os.environ.get(var, "")
    if path and os.access(path, os.X_OK):
        return path
    why = f"{var}={path!r} is not an executable (run tests/otel-bins/build.sh and export its paths)"
    if _required():
        pytest.fail(why)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def addr() -> str:
    return f"127.0.0.1:{free_port()}"


def wait_tcp(address: str, proc: subprocess.Popen, log: pathlib.Path, timeout=60.0):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{log.name}: exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{address} not listening after {timeout}s:\n{log.read_text()[-4000:]}")


def poll(fn, timeout, what, interval=0.1):
    """Calls fn until it returns a truthy value; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached in {timeout}s (last: {last!r})")


class Proc:
    """A started program, its log file and its addresses."""

    def __init__(self, name, argv, env, log: pathlib.Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc = None
        self.start()

    def start(self):
        full = dict(os.environ)
        full.update(self.env)
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, env=full, stdout=fh, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Jaeger(Proc):
    def __init__(self, tmp: pathlib.Path, name="jaeger"):
        self.otlp_grpc, self.otlp_http = addr(), addr()
        self.query, self.query_grpc = addr(), addr()
        super().__init__(name, [otel_bin("TRAJ_JAEGER"), "--config", str(CONFIG / "jaeger.yaml")], {
            "JAEGER_OTLP_GRPC": self.otlp_grpc, "JAEGER_OTLP_HTTP": self.otlp_http,
            "JAEGER_QUERY_HTTP": self.query, "JAEGER_QUERY_GRPC": self.query_grpc,
        }, tmp / f"{name}.log")
        self.wait_ready()

    def wait_ready(self):
        wait_tcp(self.otlp_grpc, self.proc, self.log)
        poll(lambda: self.get("/api/services") is not None, 60, "jaeger query API")

    def restart(self):
        self.start()
        self.wait_ready()

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://{self.query}{path}", timeout=5) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def trace(self, trace_id):
        """The trace in Jaeger's JSON API (`/api/traces/{id}`): {span_id: span}, or {} if absent."""
        body = self.get(f"/api/traces/{trace_id}")
        if not body or not body.get("data"):
            return {}
        return {s["spanID"]: s for s in body["data"][0]["spans"]}

    def wait_trace(self, trace_id, spans, timeout=60):
        return poll(lambda: (t := self.trace(trace_id)) and len(t) >= spans and t, timeout,
                    f"trace {trace_id} with {spans} spans in Jaeger")


class Collector(Proc):
    def __init__(self, tmp: pathlib.Path, config: str, env: dict, name="otelcol"):
        self.grpc, self.http, self.metrics_port = addr(), addr(), free_port()
        env = {"OTELCOL_GRPC": self.grpc, "OTELCOL_HTTP": self.http,
               "OTELCOL_METRICS_PORT": str(self.metrics_port), **env}
        super().__init__(name, [otel_bin("TRAJ_OTELCOL"), "--config", str(CONFIG / config)], env,
                         tmp / f"{name}.log")
        wait_tcp(self.grpc, self.proc, self.log)
        wait_tcp(self.http, self.proc, self.log)

    def metrics(self) -> dict:
        """The Collector's own Prometheus metrics: {(name, labels): value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
        return out

    def metric(self, name, **labels) -> float:
        """Sum of `name` (with or without the `_total` suffix) over series carrying `labels`."""
        total = 0.0
        for (n, lab), v in self.metrics().items():
            if n in (name, name + "_total") and all(f'{k}="{val}"' in lab for k, val in labels.items()):
                total += v
        return total


def traj_metrics(http_addr: str) -> dict:
    with urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(traj_receiver_[a-z_]+)\s+(\S+)$", line)
        if m:
            out[m.group(1).removeprefix("traj_receiver_")] = float(m.group(2))
    return out


def run_agent(agent, endpoint, tasks, seed, service, *extra, protocol="grpc"):
    out = subprocess.run(
        [agent, "--tasks", str(tasks), "--seed", str(seed), "--protocol", protocol,
         "--endpoint", f"http://{endpoint}", "--service-name", service, *extra],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "dropped=0 failed=0" in out.stdout, out.stdout
    exported = sum(int(x) for x in re.findall(r"exported=(\d+)", out.stdout))
    return exported, out.stdout


def jaeger_parent(span) -> str | None:
    for ref in span.get("references", []):
        if ref.get("refType") == "CHILD_OF":
            return ref["spanID"]
    return None


def jaeger_tags(span) -> dict:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def check_run_matches_trace(run_dir: pathlib.Path, spans: dict):
    """traj's run and Jaeger's copy of the same trace describe the same span tree: traj counted
    exactly Jaeger's spans; every mapped span has an event; Jaeger's parent links form one
    tree whose root carries traj's run-level event."""
    session = json.loads((run_dir / "session.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    lin = session["lineage"]
    assert lin["spans"] == len(spans), (lin, len(spans))
    assert lin["events"] == len(events)
    assert lin["orphan_events"] == 0 and lin["duplicate_spans"] == 0, lin
    event_spans = {e["span_id"] for e in events}
    assert event_spans <= set(spans), event_spans - set(spans)
    assert len(event_spans) == len(spans) - lin["unmapped_spans"], (len(event_spans), len(spans), lin)
    by_id = {e["event_id"]: e for e in events}
    roots = [s for s in spans.values() if jaeger_parent(s) is None]
    assert len(roots) == 1, [s["operationName"] for s in roots]
    for s in spans.values():  # Jaeger's parent links form one tree inside the trace
        assert jaeger_parent(s) is None or jaeger_parent(s) in spans, s["operationName"]
    # Jaeger's root span is the span of traj's run-level event (episode_end / the run's root).
    root_events = [e for e in events if e["span_id"] == roots[0]["spanID"]]
    assert root_events, "no traj event on the trace's root span"
    # Spans of traj's events keep their parents in Jaeger: every event span's ancestors are there.
    for sid in event_spans:
        cur, hops = sid, 0
        while jaeger_parent(spans[cur]) is not None:
            cur, hops = jaeger_parent(spans[cur]), hops + 1
            assert hops <= len(spans)
        assert cur == roots[0]["spanID"]
    return session, events
