"""Canonical JSON and the content hashes of schema v2, byte for byte as the Rust side
(`traj_schema::hashing`) computes them.

Canonical JSON: object keys sorted by code point at every depth (the same order as sorting their
UTF-8 bytes), no whitespace, strings with non-ASCII characters written raw and only ``"``, ``\\``
and control characters escaped, numbers as ``serde_json`` prints them:

- integers in ``[-2**63, 2**64)`` as integers; larger integers become floats (as ``serde_json``
  parses them);
- floats by their shortest round-trip digits: ``0.1``, ``3.0``, ``1000000000000000.0`` (up to 16
  integer digits), ``0.00001`` (down to 5 leading zeros), otherwise ``1e+16``, ``1e-7``,
  ``1.2345e-7``;
- ``NaN`` and infinities become ``null`` (``serde_json::to_value`` does the same).

``hash_json(v)`` / ``hash_str(s)`` are ``"sha256:"`` + the first 16 bytes (32 hex digits) of the
SHA-256 of the canonical text / of the text. ``proto/test-vectors/`` holds vectors both
implementations are tested against.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, List

__all__ = ["canonical_json", "hash_json", "hash_str", "format_float"]

_I64_MIN = -(2**63)
_U64_END = 2**64


def format_float(f: float) -> str:
    """A float as ``serde_json`` writes it (shortest round-trip digits, its notation rules)."""
    if math.isnan(f) or math.isinf(f):
        return "null"
    if f == 0.0:
        return "-0.0" if math.copysign(1.0, f) < 0 else "0.0"
    r = repr(f)  # shortest round-trip digits, like ryu
    sign = ""
    if r.startswith("-"):
        sign, r = "-", r[1:]
    exp = 0
    if "e" in r:
        r, exp_txt = r.split("e")
        exp = int(exp_txt)
    if "." in r:
        ip, fp = r.split(".")
    else:
        ip, fp = r, ""
    digits = (ip + fp).lstrip("0")
    # value = 0.<digits> * 10**kk
    kk = len(ip) + exp - (len(ip + fp) - len((ip + fp).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    n = len(digits)
    k = kk - n
    if 0 <= k and kk <= 16:
        out = digits + "0" * k + ".0"
    elif 0 < kk <= 16:
        out = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        out = "0." + "0" * (-kk) + digits
    else:
        e10 = kk - 1
        e_txt = ("e+" if e10 >= 0 else "e-") + str(abs(e10))
        out = (digits if n == 1 else digits[0] + "." + digits[1:]) + e_txt
    return sign + out


def _write(v: Any, out: List[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if _I64_MIN <= v < _U64_END:
            out.append(str(int(v)))
        else:
            out.append(format_float(float(v)))
    elif isinstance(v, float):
        out.append(format_float(v))
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise TypeError(f"canonical JSON object keys must be str, got {type(k).__name__} {k!r}")
        out.append("{")
        for i, k in enumerate(sorted(v)):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _write(v[k], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        to_json = getattr(v, "to_json", None)
        if callable(to_json):
            _write(to_json(), out)
            return
        raise TypeError(f"{type(v).__name__} is not JSON-serializable: {v!r}")


def canonical_json(v: Any) -> str:
    """``v`` (dicts, lists, str, int, float, bool, None, or payload objects with ``to_json()``)
    as canonical JSON text."""
    out: List[str] = []
    _write(v, out)
    return "".join(out)


def hash_str(s: str) -> str:
    """``sha256:`` + the first 32 hex digits of SHA-256 of the UTF-8 text."""
    return "sha256:" + hashlib.sha256(s.encode("utf-8")).hexdigest()[:32]


def hash_json(v: Any) -> str:
    """``sha256:`` + the first 32 hex digits of SHA-256 of the canonical JSON of ``v``."""
    return hash_str(canonical_json(v))
