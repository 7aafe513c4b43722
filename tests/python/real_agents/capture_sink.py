"""A minimal OTLP/HTTP protobuf sink: saves the raw body of every `POST /v1/traces` and
`POST /v1/logs` to `DIR/traces-NNN.pb` / `DIR/logs-NNN.pb` (numbered per signal, in arrival order,
gunzipped if the exporter compressed them) and answers with an empty Export*ServiceResponse.
`/v1/metrics` is accepted and discarded.

Library: `sink = CaptureSink(dir).start(); sink.endpoint  # http://127.0.0.1:PORT; sink.stop()`.
Script:  `python capture_sink.py DIR` prints the endpoint and serves until killed.
"""
import gzip
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CaptureSink:
    def __init__(self, out_dir, host="127.0.0.1", port=0):
        self.out_dir = pathlib.Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.counts = {"traces": 0, "logs": 0}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                signal = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                if signal in sink.counts:
                    with sink._lock:
                        n = sink.counts[signal]
                        sink.counts[signal] += 1
                        (sink.out_dir / f"{signal}-{n:03d}.pb").write_bytes(body)
                elif signal != "metrics":
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True

    @property
    def endpoint(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    s = CaptureSink(sys.argv[1]).start()
    print(s.endpoint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        s.stop()
