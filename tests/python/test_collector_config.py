"""Structure checks of the Collector set-ups in collector-config/ (no Collector binary runs here)."""
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2] / "collector-config"


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def check_pipelines(cfg):
    for name, pipe in cfg["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipe.get(kind, []):
                assert comp in cfg[kind], f"{name}: {kind} {comp} is not defined"


def test_fanout_sends_every_trace_to_traj_and_jaeger():
    cfg = load("otelcol-fanout.yaml")
    check_pipelines(cfg)
    exporters = cfg["service"]["pipelines"]["traces"]["exporters"]
    endpoints = {cfg["exporters"][e]["endpoint"] for e in exporters}
    assert any(e.startswith("traj:") for e in endpoints)
    assert any(e.startswith("jaeger:") for e in endpoints)
    assert cfg["exporters"]["otlp/traj"]["retry_on_failure"]["enabled"] is True


def test_sharding_is_keyed_on_trace_id():
    cfg = load("otelcol-sharded.yaml")
    check_pipelines(cfg)
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    assert len(lb["resolver"]["static"]["hostnames"]) >= 2


def test_compose_wires_collector_to_fanout_config():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert {"jaeger", "traj", "otelcol"} <= set(services)
    assert any("otelcol-fanout.yaml" in v for v in services["otelcol"]["volumes"])
