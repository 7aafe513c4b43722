"""An over-limit OTLP/HTTP body sent by a client that writes the whole body before it reads the
response (Python's `urllib.request`, like many simple exporters) must get the receiver's 413, not
a reset connection: the receiver reads and discards the rest of a refused body (bounded) before it
answers and closes. Afterwards the same receiver still accepts a valid export.
"""
import json
import urllib.error
import urllib.request

import pytest

from conftest import start_receiver

MIB = 1 << 20
ATTEMPTS = 5


def post(receiver, body: bytes, content_type: str = "application/json", timeout: float = 120.0):
    req = urllib.request.Request(
        f"http://{receiver.http}/v1/traces",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    return urllib.request.urlopen(req, timeout=timeout)


def expect_413(receiver, size: int, limit: int, chunked: bool = False):
    """POSTs `size` bytes ATTEMPTS times (with Content-Length, or chunked: the receiver only finds
    out while reading); each must be answered 413 + Status{code: 8}."""
    body = b" " * size
    outcomes = []
    for _ in range(ATTEMPTS):
        # An iterable without Content-Length is sent with Transfer-Encoding: chunked.
        data = (body[i:i + MIB] for i in range(0, size, MIB)) if chunked else body
        try:
            with post(receiver, data) as resp:
                outcomes.append(f"HTTP {resp.status}")
        except urllib.error.HTTPError as e:
            detail = e.read()
            if e.code == 413:
                status = json.loads(detail)
                assert status["code"] == 8, status
                assert str(limit) in status["message"], status
                assert e.headers.get("Connection", "").lower() == "close", dict(e.headers)
            outcomes.append(f"HTTP {e.code}")
        except (OSError, urllib.error.URLError) as e:
            # ConnectionResetError / BrokenPipeError, possibly wrapped in URLError.
            outcomes.append(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
    assert outcomes == ["HTTP 413"] * ATTEMPTS, outcomes


def valid_export(receiver, t: int):
    trace_id = f"{t:032x}"
    doc = {
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "over-limit-test"}},
            ]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_id,
                "spanId": "00000000000000aa",
                "name": "root",
                "kind": 1,
                "startTimeUnixNano": "1764000000000000000",
                "endTimeUnixNano": "1764000000000001000",
            }]}],
        }],
    }
    with post(receiver, json.dumps(doc).encode(), timeout=30) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {}
    return trace_id


@pytest.mark.parametrize("size_mib,chunked", [(6, False), (70, False), (70, True)])
def test_over_lowered_limit_gets_413(tmp_path, size_mib, chunked):
    limit = 4 * MIB
    r = start_receiver(tmp_path / "data", "--max-request-bytes", str(limit))
    try:
        expect_413(r, size_mib * MIB, limit, chunked)
        valid_export(r, 1)
        runs = r.wait_runs(1)
        assert [p.name for p in runs] == [f"{1:032x}"]
        assert r.proc.poll() is None
    finally:
        r.stop()


def test_over_default_limit_gets_413(receiver):
    """70 MiB against the default 64 MiB limit (the case of issue 16)."""
    expect_413(receiver, 70 * MIB, 64 * MIB)
    valid_export(receiver, 2)
    assert [p.name for p in receiver.wait_runs(1)] == [f"{2:032x}"]
