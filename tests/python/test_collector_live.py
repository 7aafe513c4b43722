"""A real OpenTelemetry Collector and a real Jaeger v2 in front of / behind traj, each run from the
configs in collector-config/ as they are (only addresses come from the environment):
fan-out (Collector -> traj and Jaeger), `traj serve --forward` to Jaeger, sharding by trace id
with the loadbalancing exporter (and a receiver killed mid-stream), and traj's backpressure
answers retried by the real Collector. Figures each test measured are printed (`-s`) and written
to target/otel-live/<test>.json; docs/deployment.md quotes them."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import AGENT, SMALL_CORPUS_CONFIG, TRAJ, start_receiver
from genai_agent import genai_episode
from otel_live import (ROOT, Collector, Jaeger, addr, check_run_matches_trace, jaeger_parent,
                       jaeger_tags, poll, run_agent, traj_metrics)

FIGURES = ROOT / "target" / "otel-live"


def record(name, figures):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


@pytest.fixture
def stack(tmp_path):
    """Started processes, stopped at teardown in reverse order (even when the test fails)."""
    procs = []
    yield procs
    for p in reversed(procs):
        p.stop()


def validate(*data_dirs):
    out = subprocess.run([TRAJ, "validate", *map(str, data_dirs)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# --- 1. fan-out ---------------------------------------------------------------------------

def test_fanout_collector_to_traj_and_jaeger(tmp_path, stack):
    traj = start_receiver(tmp_path / "data")
    stack.append(traj)
    jaeger = Jaeger(tmp_path)
    stack.append(jaeger)
    col = Collector(tmp_path, "otelcol-fanout.yaml",
                    {"TRAJ_GRPC": traj.grpc, "JAEGER_OTLP_GRPC": jaeger.otlp_grpc})
    stack.append(col)

    # The example agent over gRPC and a Python OTel SDK agent over OTLP/HTTP, both to the Collector.
    tasks = 6
    exported, _ = run_agent(AGENT, col.grpc, tasks, 11, "fanout-agent", "--failure-rate", "0.5")
    t_sent = time.monotonic()
    provider = TracerProvider(resource=Resource.create({"service.name": "genai-sdk-agent"}))
    provider.add_span_processor(BatchSpanProcessor(HttpSpanExporter(endpoint=f"http://{col.http}/v1/traces")))
    tracer = provider.get_tracer("genai-sdk-agent")
    sdk_ids = [genai_episode(tracer, n) for n in range(2)]
    provider.shutdown()

    runs = traj.wait_runs(tasks + len(sdk_ids))
    assert len(runs) == tasks + len(sdk_ids), [r.name for r in runs]
    assert set(sdk_ids) <= {r.name for r in runs}
    out = validate(traj.data_dir)
    assert f"runs: {len(runs)}  valid: {len(runs)}  invalid: 0" in out, out

    total_spans, visible_s = 0, 0.0
    for run in runs:
        session = json.loads((run / "session.json").read_text())
        spans = jaeger.wait_trace(session["trace_id"], session["lineage"]["spans"])
        visible_s = max(visible_s, time.monotonic() - t_sent)
        total_spans += len(spans)
        check_run_matches_trace(run, spans)
        root = next(s for s in spans.values() if jaeger_parent(s) is None)
        assert jaeger_tags(root)["gen_ai.operation.name"] == "invoke_workflow", jaeger_tags(root)
        ops = {jaeger_tags(s).get("gen_ai.operation.name") for s in spans.values()}
        assert {"invoke_agent", "execute_tool", "chat"} <= ops, ops
        if run.name in sdk_ids:
            tool = next(s for s in spans.values() if s["operationName"] == "execute_tool search")
            tags = jaeger_tags(tool)
            assert tags["gen_ai.tool.name"] == "search" and json.loads(tags["gen_ai.tool.call.arguments"])["q"]
            chat = next(s for s in spans.values() if s["operationName"] == "chat gpt-x")
            assert jaeger_tags(chat)["gen_ai.usage.input_tokens"] == 12
            assert spans[jaeger_parent(chat)]["operationName"] == "invoke_agent planner"
        else:
            agents = {jaeger_tags(s).get("gen_ai.agent.name") for s in spans.values()}
            assert {"planner", "worker", "verifier"} <= agents, agents
    assert total_spans == exported + 5 * len(sdk_ids), (total_spans, exported)
    # What the Collector itself counted: every span accepted went to both exporters, none failed.
    assert col.metric("otelcol_receiver_accepted_spans") == total_spans
    for exp in ("otlp_grpc/traj", "otlp_grpc/jaeger"):
        assert col.metric("otelcol_exporter_sent_spans", exporter=exp) == total_spans, exp
        assert col.metric("otelcol_exporter_send_failed_spans", exporter=exp) == 0, exp

    # The dashboard's run link, <jaeger>/trace/<trace_id>, in headless Chromium against this Jaeger.
    trace_id = sorted(r.name for r in runs if r.name not in sdk_ids)[0]
    n_spans = json.loads((traj.data_dir / "runs" / trace_id / "session.json").read_text())["lineage"]["spans"]
    shot = FIGURES / "jaeger-trace.png"
    FIGURES.mkdir(parents=True, exist_ok=True)
    report = subprocess.run([TRAJ, "report", "--runs", str(traj.data_dir), "--out", str(tmp_path / "report"),
                             "--jaeger-url", f"http://{jaeger.query}"], capture_output=True, text=True)
    assert report.returncode == 0, report.stdout + report.stderr
    browser = subprocess.run(
        ["node", str(ROOT / "tests" / "browser" / "jaeger-trace.mjs"), str(tmp_path / "report" / "dashboard.html"),
         f"http://{jaeger.query}", trace_id, str(n_spans), str(shot)], capture_output=True, text=True, timeout=180)
    assert browser.returncode == 0, browser.stdout + browser.stderr
    assert shot.stat().st_size > 10_000
    record("fanout", {"runs": len(runs), "spans": total_spans, "example_agent_runs": tasks,
                      "sdk_agent_runs": len(sdk_ids), "jaeger_visible_all_s": round(visible_s, 2),
                      "browser": browser.stdout.strip().splitlines()[-1:]})


# --- 2. forwarding ------------------------------------------------------------------------

def wait_forward_settled(traj, timeout=90):
    """Every accepted batch is either delivered to the forward target or counted as dropped."""
    def settled():
        m = traj_metrics(traj.http)
        accepted = m["requests_total"] - m["requests_refused_total"]
        return m if m["forward_sent_total"] + m["forward_dropped_total"] == accepted else None
    return poll(settled, timeout, "forward queue drained")


def test_forward_to_jaeger_survives_jaeger_down(tmp_path, stack):
    jaeger = Jaeger(tmp_path)
    stack.append(jaeger)
    traj = start_receiver(tmp_path / "data", "--forward", f"http://{jaeger.otlp_grpc}")
    stack.append(traj)

    # Jaeger up: every acknowledged span reaches it.
    t0 = time.monotonic()
    _, out_up = run_agent(AGENT, traj.grpc, 5, 21, "fwd-agent")
    up_s = time.monotonic() - t0
    runs_up = traj.wait_runs(5)
    t_sent = time.monotonic()
    for run in runs_up:
        session = json.loads((run / "session.json").read_text())
        spans = jaeger.wait_trace(session["trace_id"], session["lineage"]["spans"])
        check_run_matches_trace(run, spans)
    visible_up_s = time.monotonic() - t_sent

    # Jaeger down: traj still acknowledges at once and finalizes every run; forwarding fails meanwhile.
    jaeger.stop()
    sent_before = traj_metrics(traj.http)["forward_sent_total"]
    t0 = time.monotonic()
    exported_down, _ = run_agent(AGENT, traj.grpc, 5, 22, "fwd-agent")
    down_s = time.monotonic() - t0
    runs_all = traj.wait_runs(10)
    down_ids = sorted({r.name for r in runs_all} - {r.name for r in runs_up})
    assert len(down_ids) == 5
    poll(lambda: traj_metrics(traj.http)["forward_failures_total"] >= 3, 30, "forward attempts failing")
    assert traj_metrics(traj.http)["forward_sent_total"] == sent_before  # nothing got through
    assert jaeger.proc.poll() is not None

    # Jaeger back (empty: memory storage): what was queued while it was down arrives, nothing dropped.
    t_back = time.monotonic()
    jaeger.restart()
    m = wait_forward_settled(traj)
    assert m["forward_dropped_total"] == 0, m
    spans_down = 0
    for rid in down_ids:
        session = json.loads((traj.data_dir / "runs" / rid / "session.json").read_text())
        spans = jaeger.wait_trace(rid, session["lineage"]["spans"])
        assert len(spans) == session["lineage"]["spans"]
        spans_down += len(spans)
    assert spans_down == exported_down
    record("forward", {"runs": 10, "spans_while_down": spans_down, "agent_s_jaeger_up": round(up_s, 2),
                       "agent_s_jaeger_down": round(down_s, 2), "jaeger_visible_up_s": round(visible_up_s, 2),
                       "jaeger_visible_after_restart_s": round(time.monotonic() - t_back, 2),
                       "forward_failures": m["forward_failures_total"], "forward_sent_batches": m["forward_sent_total"],
                       "forward_dropped": m["forward_dropped_total"]})


def test_forward_past_bounded_queue_counts_exactly_what_it_dropped(tmp_path, stack):
    """A tiny forward queue and few attempts while Jaeger is down: batches are dropped, and
    /metrics counts exactly the traces that never reach Jaeger (one trace per batch here)."""
    jaeger = Jaeger(tmp_path)
    stack.append(jaeger)
    jaeger.stop()
    traj = start_receiver(tmp_path / "data", "--forward", f"http://{jaeger.otlp_grpc}",
                          "--forward-queue", "1", "--forward-attempts", "2")
    stack.append(traj)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    provider = TracerProvider(resource=Resource.create({"service.name": "genai-sdk-agent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{traj.grpc}", insecure=True)))
    tracer = provider.get_tracer("genai-sdk-agent")
    ids = []
    for n in range(12):
        ids.append(genai_episode(tracer, n))
        assert provider.force_flush()  # one export request (one batch) per trace
    provider.shutdown()
    traj.wait_runs(len(ids))
    poll(lambda: traj_metrics(traj.http)["forward_dropped_total"] > 0, 30, "a forward batch dropped")
    jaeger.restart()
    m = wait_forward_settled(traj)
    assert m["requests_total"] == len(ids) and m["requests_refused_total"] == 0, m
    # Batches still in the queue when Jaeger came back are delivered: wait for them, then count.
    present = {tid for tid in ids if jaeger.trace(tid)}
    poll(lambda: len(present | {tid for tid in ids if jaeger.trace(tid)}) == m["forward_sent_total"], 30,
         "every delivered batch visible in Jaeger")
    present = {tid for tid in ids if jaeger.trace(tid)}
    assert len(ids) - len(present) == m["forward_dropped_total"] > 0, (len(present), m)
    for tid in present:
        assert len(jaeger.trace(tid)) == 5
    record("forward_bounded", {"traces": len(ids), "forward_sent": m["forward_sent_total"],
                               "forward_dropped": m["forward_dropped_total"], "missing_in_jaeger": len(ids) - len(present)})


# --- 3. sharding --------------------------------------------------------------------------

def dataset_files(out: pathlib.Path) -> dict:
    files = {}
    for split in ("train", "validation", "test"):
        for p in sorted((out / split).rglob("*")):
            if p.is_file():
                files[str(p.relative_to(out))] = p.read_bytes()
    return files


def build(out, *data_dirs):
    # A few dozen runs: a thin validation / test split is expected, not a finding here.
    args = [TRAJ, "build", "--out", str(out), "--config", SMALL_CORPUS_CONFIG]
    for d in data_dirs:
        args += ["--runs", str(d)]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return dataset_files(out)


def test_sharded_by_trace_id_with_a_receiver_killed_mid_stream(tmp_path, stack):
    """Agent -> Collector (fan-out config) -> one traj (the reference) and -> a second Collector
    (sharded config) -> three traj shards. Shard 2 is kill -9ed mid-stream and restarted; the
    Collector's per-shard queue + retry deliver what it missed."""
    single = start_receiver(tmp_path / "single")
    stack.append(single)
    shard_addrs = [addr() for _ in range(3)]
    shards = [start_receiver(tmp_path / f"shard{i + 1}", grpc=a) for i, a in enumerate(shard_addrs)]
    stack.extend(shards)
    lb = Collector(tmp_path, "otelcol-sharded.yaml",
                   {f"TRAJ_SHARD_{i + 1}": a for i, a in enumerate(shard_addrs)}, name="otelcol-sharded")
    stack.append(lb)
    front = Collector(tmp_path, "otelcol-fanout.yaml", {"TRAJ_GRPC": single.grpc, "JAEGER_OTLP_GRPC": lb.grpc},
                      name="otelcol-front")
    stack.append(front)

    rounds, tasks, exported, killed_at = 8, 5, 0, None
    for i in range(rounds):
        if i == 3:  # mid-stream, once shard 2 holds finished runs: it dies hard
            killed_at = len(poll(lambda: shards[1].runs(), 30, "runs on shard 2 before the kill"))
            shards[1].proc.send_signal(signal.SIGKILL)
            shards[1].proc.wait()
        if i == 6:  # back on the same address and data dir
            shards[1] = start_receiver(tmp_path / "shard2", grpc=shard_addrs[1])
            stack.append(shards[1])
        n, _ = run_agent(AGENT, front.grpc, tasks, 100 + i, "sharded-agent", "--failure-rate", "0.4")
        exported += n
    total = rounds * tasks
    single.wait_runs(total)
    poll(lambda: sum(len(s.runs()) for s in shards) >= total, 120, f"{total} runs over the shards")

    per_shard = [sorted(r.name for r in s.runs()) for s in shards]
    union = [rid for ids in per_shard for rid in ids]
    assert len(union) == len(set(union)) == total, per_shard      # each run on exactly one shard
    assert set(union) == {r.name for r in single.runs()}
    assert all(len(ids) > 0 for ids in per_shard), per_shard
    assert len(per_shard[1]) > killed_at  # runs of the outage reached shard 2 after its restart
    for s in shards:
        s.stop()
    single.stop()
    validate(*[s.data_dir for s in shards])
    merged = build(tmp_path / "out-merged", *[s.data_dir for s in shards])
    reference = build(tmp_path / "out-single", single.data_dir)
    assert merged and merged.keys() == reference.keys()
    for name in reference:
        assert merged[name] == reference[name], name
    failed = lb.metric("otelcol_exporter_send_failed_spans")
    record("sharded", {"runs": total, "spans": exported, "runs_per_shard": [len(x) for x in per_shard],
                       "shard2_runs_when_killed": killed_at, "lb_send_failed_spans": failed,
                       "dataset_files_identical": len(reference)})


# --- 4. traj's backpressure, retried by the real Collector --------------------------------

def test_collector_retries_traj_backpressure_and_loses_nothing(tmp_path, stack):
    traj = start_receiver(tmp_path / "data", "--max-open-runs", "8")
    stack.append(traj)
    jaeger = Jaeger(tmp_path)
    stack.append(jaeger)
    col = Collector(tmp_path, "otelcol-fanout.yaml", {"TRAJ_GRPC": traj.grpc, "JAEGER_OTLP_GRPC": jaeger.otlp_grpc})
    stack.append(col)
    tasks, exported = 0, 0
    for i in range(4):
        n, _ = run_agent(AGENT, col.grpc, 10, 300 + i, "busy-agent", "--concurrency", "4")
        exported += n
        tasks += 10
    traj.wait_runs(tasks, timeout=120)
    poll(lambda: col.metric("otelcol_exporter_sent_spans", exporter="otlp_grpc/traj") == exported, 120,
         "Collector delivered every span to traj")
    m = traj_metrics(traj.http)
    assert m["requests_refused_total"] > 0, m            # traj did push back (UNAVAILABLE) ...
    assert m["spans_received_total"] == exported, m      # ... and nothing was lost
    assert col.metric("otelcol_exporter_send_failed_spans", exporter="otlp_grpc/traj") == 0
    out = validate(traj.data_dir)
    assert f"runs: {tasks}  valid: {tasks}  invalid: 0" in out, out
    record("backpressure", {"runs": tasks, "spans": exported, "traj_refused_requests": m["requests_refused_total"],
                            "traj_requests": m["requests_total"]})
