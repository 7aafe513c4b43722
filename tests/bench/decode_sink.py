"""A decode-only OTLP/gRPC trace sink: the yardstick for `traj bench ingest --compare-sink`.

It parses every ExportTraceServiceRequest with the `opentelemetry-proto` package (the full
protobuf decode any backend pays first), counts spans and drops the request. No storage, one
process. It prints one JSON line `{"listening": "127.0.0.1:PORT"}` once it serves, and on
SIGTERM/SIGINT one more: `{"requests": N, "spans": N, "bytes": N, "cpu_seconds": F}`.
"""

import argparse
import json
import resource
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.spans = 0
        self.bytes = 0

    def add(self, spans, size):
        with self.lock:
            self.requests += 1
            self.spans += spans
            self.bytes += size


def make_handler(counts):
    def export(raw, _context):
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        counts.add(spans, len(raw))
        return b""  # an empty ExportTraceServiceResponse

    rpc = grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=None, response_serializer=None
    )

    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            return rpc if details.method == METHOD else None

    return Handler()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-message-bytes", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args()

    counts = Counts()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.threads),
        handlers=[make_handler(counts)],
        options=[("grpc.max_receive_message_length", args.max_message_bytes)],
    )
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        sys.exit("decode_sink: could not bind 127.0.0.1")
    server.start()
    print(json.dumps({"listening": f"127.0.0.1:{port}"}), flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(grace=1).wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "requests": counts.requests,
                "spans": counts.spans,
                "bytes": counts.bytes,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
