"""Structure checks of the Collector set-ups in collector-config/ (test_collector_live.py runs them
with a real Collector and Jaeger; these checks name what each file must keep)."""
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
    # Addresses come from the environment (the live tests and the compose file set them).
    assert any(e.startswith("${env:TRAJ_GRPC:-") for e in endpoints), endpoints
    assert any(e.startswith("${env:JAEGER_OTLP_GRPC:-") for e in endpoints), endpoints
    assert cfg["exporters"]["otlp_grpc/traj"]["retry_on_failure"]["enabled"] is True
    assert cfg["exporters"]["otlp_grpc/traj"]["sending_queue"]["enabled"] is True


def test_sharding_is_keyed_on_trace_id():
    cfg = load("otelcol-sharded.yaml")
    check_pipelines(cfg)
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    assert len(lb["resolver"]["static"]["hostnames"]) == 3
    assert lb["protocol"]["otlp"]["retry_on_failure"]["enabled"] is True
    assert lb["protocol"]["otlp"]["sending_queue"]["enabled"] is True


def test_compose_wires_collector_to_fanout_config():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert {"jaeger", "traj", "otelcol"} <= set(services)
    assert any("otelcol-fanout.yaml" in v for v in services["otelcol"]["volumes"])
    assert any("jaeger.yaml" in v for v in services["jaeger"]["volumes"])
    env = services["otelcol"]["environment"]
    assert env["TRAJ_GRPC"] == "traj:4317" and env["JAEGER_OTLP_GRPC"] == "jaeger:4317"


def test_jaeger_config_keeps_traces_in_memory_and_serves_the_query_api():
    cfg = load("jaeger.yaml")
    check_pipelines(cfg)
    assert "memory" in cfg["extensions"]["jaeger_storage"]["backends"]["memstore"]
    assert cfg["extensions"]["jaeger_query"]["storage"]["traces"] == "memstore"
