"""`traj bench ingest --compare-sink`: the same load against traj and against the decode-only
OTLP sink (tests/bench/decode_sink.py), with the ratio in the report."""

import json
import os
import subprocess
import sys

TRAJ = os.environ.get("TRAJ_BIN", "target/debug/traj")


def test_bench_ingest_reports_the_ratio_to_the_decode_only_sink(tmp_path):
    out = subprocess.run(
        [TRAJ, "bench", "ingest", "--duration", "2s", "--connections", "2", "--batch", "64",
         "--content", "heavy", "--data-dir", str(tmp_path / "data"),
         "--compare-sink", sys.executable, "--serve-args", "--grace-period", "50ms"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    sink = report["decode_only_sink"]
    assert report["accepted_spans"] > 0 and sink["accepted_spans"] > 0
    assert report["content"] == "heavy" and report["bytes_per_span"] > 4000
    assert report["accepted_mb_per_s"] > 0
    expected = report["accepted_spans_per_s"] / sink["accepted_spans_per_s"]
    assert abs(report["ratio_to_decode_only_sink"] - expected) < 0.002
    # The sink process was measured too (its CPU and memory, from /proc).
    assert sink["receiver"]["cpu_s"] > 0
    # traj stored and assembled what it acknowledged (a short grace period: runs are written
    # while the load runs, not only after it).
    runs = list((tmp_path / "data" / "runs").iterdir())
    assert len(runs) > 0


def test_decode_sink_counts_what_an_sdk_exports():
    """The sink really decodes: an OTel SDK export reaches it and is counted on SIGTERM."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    script = os.path.join(os.path.dirname(__file__), "..", "bench", "decode_sink.py")
    sink = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True)
    try:
        addr = json.loads(sink.stdout.readline())["listening"]
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{addr}", insecure=True))
        )
        tracer = provider.get_tracer("t")
        for n in range(3):
            with tracer.start_as_current_span(f"s{n}"):
                pass
        provider.shutdown()
    finally:
        sink.terminate()
    totals = json.loads(sink.stdout.readline())
    sink.wait(timeout=10)
    assert totals["spans"] == 3 and totals["requests"] == 3 and totals["bytes"] > 0
