"""Human-readable dump of captured OTLP/HTTP protobuf bodies (`traces-*.pb`, `logs-*.pb`):
span names, ids, parents, links, status, every attribute (with its AnyValue kind) and span event,
and every log record (event_name, attributes, body). `python dump_otlp.py DIR > DIR/dump.txt`."""
import pathlib
import sys

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def anyvalue(v, indent=0):
    kind = v.WhichOneof("value")
    pad = "  " * indent
    if kind is None:
        return "<empty>"
    if kind == "string_value":
        s = v.string_value
        return f"string {s!r}"
    if kind in ("int_value", "double_value", "bool_value"):
        return f"{kind.split('_')[0]} {getattr(v, kind)!r}"
    if kind == "bytes_value":
        return f"bytes {v.bytes_value.hex()}"
    if kind == "array_value":
        items = [f"\n{pad}  - {anyvalue(x, indent + 2)}" for x in v.array_value.values]
        return "array [" + "".join(items) + ("\n" + pad + "]" if items else "]")
    if kind == "kvlist_value":
        items = [f"\n{pad}  {kv.key}: {anyvalue(kv.value, indent + 2)}" for kv in v.kvlist_value.values]
        return "kvlist {" + "".join(items) + ("\n" + pad + "}" if items else "}")
    return kind


def attrs(kvs, indent):
    pad = "  " * indent
    return "".join(f"{pad}{kv.key} = {anyvalue(kv.value, indent)}\n" for kv in kvs)


def dump_traces(data):
    req = ExportTraceServiceRequest.FromString(data)
    out = []
    for rs in req.resource_spans:
        out.append("resource:\n" + attrs(rs.resource.attributes, 1))
        for ss in rs.scope_spans:
            out.append(f"  scope: {ss.scope.name} {ss.scope.version}\n")
            for sp in ss.spans:
                out.append(f"    span {sp.name!r} kind={sp.kind} trace={sp.trace_id.hex()} span={sp.span_id.hex()} "
                           f"parent={sp.parent_span_id.hex() or '-'} status={sp.status.code}"
                           f"{' ' + repr(sp.status.message) if sp.status.message else ''} "
                           f"dur_ms={(sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e6:.2f}\n")
                for ln in sp.links:
                    out.append(f"      link -> trace={ln.trace_id.hex()} span={ln.span_id.hex()}\n")
                out.append(attrs(sp.attributes, 3))
                for ev in sp.events:
                    out.append(f"      event {ev.name!r}\n" + attrs(ev.attributes, 4))
    return "".join(out)


def dump_logs(data):
    req = ExportLogsServiceRequest.FromString(data)
    out = []
    for rl in req.resource_logs:
        out.append("resource:\n" + attrs(rl.resource.attributes, 1))
        for sl in rl.scope_logs:
            out.append(f"  scope: {sl.scope.name} {sl.scope.version}\n")
            for lr in sl.log_records:
                out.append(f"    log event_name={lr.event_name!r} trace={lr.trace_id.hex()} span={lr.span_id.hex()} "
                           f"severity={lr.severity_number}\n")
                out.append(attrs(lr.attributes, 3))
                out.append(f"      body = {anyvalue(lr.body, 3)}\n")
    return "".join(out)


def main(d):
    d = pathlib.Path(d)
    for f in sorted(d.glob("traces-*.pb")):
        print(f"===== {f.name}\n{dump_traces(f.read_bytes())}")
    for f in sorted(d.glob("logs-*.pb")):
        print(f"===== {f.name}\n{dump_logs(f.read_bytes())}")


if __name__ == "__main__":
    main(sys.argv[1])
