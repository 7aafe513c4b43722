"""Source-side redaction: a policy applied to every payload, goal, message, prompt and error text
before it becomes an attribute. Its name and version go on the run span
(``traj.redaction.policy`` / ``traj.redaction.version``), as on the Rust side.

The Rust helpers apply ``traj_redact``'s ``traj-source`` policy; this package ships no detectors
of its own. The default is :data:`NO_REDACTION` (name ``none``, version ``0``), which traj records
as ``pii_scan_status = not_redacted`` (the dataset build still runs its own pass). Plug in your
own::

    policy = RedactionPolicy("acme-pii", "3", text=lambda s: EMAIL.sub("<EMAIL>", s))
    traj_instrument.set_default_redaction(policy)          # or run(..., redaction=policy)
"""
from __future__ import annotations

from typing import Any, Callable, Optional

__all__ = ["RedactionPolicy", "NO_REDACTION", "set_default_redaction", "default_redaction"]


class RedactionPolicy:
    """A named, versioned redaction hook.

    ``text`` is applied to every string: free text (goals, reasons, error messages, rendered
    prompts) and every string value inside a JSON payload (object keys are kept). ``payload``,
    when given, replaces the walk for JSON values: it receives a deep copy of the payload (plain
    JSON: dicts, lists, str, numbers, bools, None) and returns the value to record. With only
    ``payload`` given, free text is passed through ``payload`` too.
    """

    def __init__(self, name: str, version: str, text: Optional[Callable[[str], str]] = None,
                 payload: Optional[Callable[[Any], Any]] = None) -> None:
        if not name or not version:
            raise ValueError("a redaction policy needs a non-empty name and version")
        self.name = name
        self.version = version
        self._text = text
        self._payload = payload

    def redact_str(self, s: str) -> str:
        if self._text is not None:
            return self._text(s)
        if self._payload is not None:
            out = self._payload(s)
            return out if isinstance(out, str) else str(out)
        return s

    def redact_json(self, value: Any) -> Any:
        """A redacted copy of a JSON value (the input is never modified)."""
        if self._payload is not None:
            return self._payload(_copy(value))
        if self._text is None:
            return value
        return _walk(value, self._text)

    def __repr__(self) -> str:
        return f"RedactionPolicy({self.name!r}, {self.version!r})"


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_copy(x) for x in v]
    return v


def _walk(v: Any, text: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return text(v)
    if isinstance(v, dict):
        return {k: _walk(x, text) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_walk(x, text) for x in v]
    return v


#: No redaction at the source: recorded as policy ``none`` version ``0``.
NO_REDACTION = RedactionPolicy("none", "0")

_default: RedactionPolicy = NO_REDACTION


def set_default_redaction(policy: RedactionPolicy) -> None:
    """The policy of runs started without ``redaction=``."""
    global _default
    if not isinstance(policy, RedactionPolicy):
        raise TypeError("expected a RedactionPolicy")
    _default = policy


def default_redaction() -> RedactionPolicy:
    return _default
