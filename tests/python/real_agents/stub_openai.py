"""A tiny OpenAI-compatible chat-completions server with scripted, deterministic answers.

`POST /v1/chat/completions` (JSON, or SSE when the request has `"stream": true`). The answer is
chosen from the request alone:

- system prompt starts with "You are the planner"  -> a numbered text plan;
- system prompt starts with "You are the worker":
    no tool message after the last user turn       -> one tool call `read_file({"path": <file>})`;
    last tool message is an error ("ERROR" / "retry") -> the same tool again, new call id;
    last message is a tool result                  -> final text quoting the result;
- system prompt starts with "You are the verifier" -> the text `end`.

Every exchange is appended to a JSONL log, one line per call:
`{"n", "path", "request": <body as received>, "response": <body as returned>}` (for SSE the
response is the equivalent non-streamed completion, and `"stream": true` is added to the line).

Usage as a library: `srv = StubServer(log_path); srv.start(); srv.base_url; srv.stop()`.
As a script: `python stub_openai.py LOG [PORT]` prints the base URL and serves until killed.
"""
import hashlib
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_PREFIX = "stub-"
PLAN_TEXT = ("1. Read {path} with read_file\n"
             "2. Summarize what it says in one sentence\n"
             "3. Report the summary")


def _h(text: str, n: int = 4) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _text_of(content) -> str:
    """Message content as text (string, or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            out.append(part.get("text", ""))
    return "\n".join(out)


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def goal_path(goal: str) -> str:
    """The file a goal talks about: the first token that looks like a file name."""
    m = re.search(r"[\w./-]+\.(?:txt|md|log|json|csv|py)", goal)
    return m.group(0) if m else "notes.txt"


def _role(messages) -> str:
    for m in messages:
        if m.get("role") in ("system", "developer"):
            t = _text_of(m.get("content")).lower()
            for role in ("planner", "worker", "verifier"):
                if t.startswith(f"you are the {role}"):
                    return role
    return "unknown"


def _first_user(messages) -> str:
    for m in messages:
        if m.get("role") == "user":
            return _text_of(m.get("content"))
    return ""


def script_reply(body: dict, n: int) -> dict:
    """The (non-streamed) chat.completion object answering `body`."""
    messages = body.get("messages") or []
    model = body.get("model") or "stub-model"
    role = _role(messages)
    user = _first_user(messages)
    seed = json.dumps(messages, sort_keys=True)
    message = {"role": "assistant", "content": None}
    finish = "stop"
    if role == "planner":
        message["content"] = PLAN_TEXT.format(path=goal_path(user))
    elif role == "worker":
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            result = _text_of(last.get("content"))
            if "ERROR" in result:
                message["content"] = None
            else:
                message["content"] = f"Summary of {goal_path(user)}: {result.strip().splitlines()[0][:80]}"
        if message["content"] is None:
            tool_msgs = sum(1 for m in messages if m.get("role") == "tool")
            call_id = f"call_{_h(seed + str(tool_msgs))}"
            message["tool_calls"] = [{
                "id": call_id, "type": "function",
                "function": {"name": "read_file", "arguments": json.dumps({"path": goal_path(user)})},
            }]
            finish = "tool_calls"
    elif role == "verifier":
        message["content"] = "end"
    else:
        message["content"] = "I do not know this role."
    prompt_tokens = sum(_words(_text_of(m.get("content"))) for m in messages) + 3 * len(messages)
    completion_tokens = _words(message["content"] or "") + (8 if message.get("tool_calls") else 0) + 1
    return {
        "id": f"chatcmpl-{_h(seed, 12)}{n:04d}",
        "object": "chat.completion",
        "created": 1_760_000_000 + n,
        "model": model,
        "system_fingerprint": "fp_stub",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _sse_chunks(resp: dict):
    """The streamed form of a completion: role chunk, content / tool-call chunks, finish, usage."""
    base = {k: resp[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    msg = resp["choices"][0]["message"]

    def chunk(delta, finish=None, usage=None):
        c = dict(base)
        c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if usage is not None:
            c["choices"] = []
            c["usage"] = usage
        return c

    yield chunk({"role": "assistant", "content": ""})
    if msg.get("content"):
        text = msg["content"]
        mid = len(text) // 2
        for piece in (text[:mid], text[mid:]):
            if piece:
                yield chunk({"content": piece})
    for i, tc in enumerate(msg.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                     "function": {"name": tc["function"]["name"], "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": tc["function"]["arguments"]}}]})
    yield chunk({}, finish=resp["choices"][0]["finish_reason"])
    yield chunk(None, usage=resp["usage"])


class StubServer:
    def __init__(self, log_path, host="127.0.0.1", port=0):
        self.log_path = str(log_path)
        self._lock = threading.Lock()
        self._n = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if not self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                with stub._lock:
                    n = stub._n
                    stub._n += 1
                    resp = script_reply(body, n)
                    line = {"n": n, "path": self.path, "request": body, "response": resp}
                    if body.get("stream"):
                        line["stream"] = True
                    with open(stub.log_path, "a") as f:
                        f.write(json.dumps(line) + "\n")
                if not body.get("stream"):
                    self._send(200, resp)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                include_usage = (body.get("stream_options") or {}).get("include_usage")
                for c in _sse_chunks(resp):
                    if "usage" in c and not include_usage:
                        continue
                    self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = None

    @property
    def base_url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    srv = StubServer(sys.argv[1], port=int(sys.argv[2]) if len(sys.argv) > 2 else 0).start()
    print(srv.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
