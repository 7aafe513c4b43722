"""The export pipeline the run spans report to (set by :func:`traj_instrument.init` or
:meth:`CountingSpanProcessor.activate`); free of SDK imports."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional, Protocol


@dataclass(frozen=True)
class ExportStats:
    """Span accounting of one export pipeline since it was set up."""
    #: Spans that ended (handed to the span processor; sampled spans only).
    ended: int = 0
    #: Spans in batches the exporter reported as exported.
    exported: int = 0
    #: Spans dropped because the queue was full (or the pipeline was already shut down).
    dropped: int = 0
    #: Spans in batches whose export failed (collector down, timeout, rejected).
    failed: int = 0

    def lost(self) -> int:
        """Spans that will never arrive: ``dropped + failed``."""
        return self.dropped + self.failed

    def pending(self) -> int:
        """Spans still queued or in flight (0 right after a successful flush)."""
        return max(0, self.ended - self.exported - self.dropped - self.failed)


class StatsSource(Protocol):
    def stats(self) -> ExportStats: ...

    def force_flush(self, timeout_millis: int = 30000) -> bool: ...


_lock = threading.Lock()
_active: Optional[StatsSource] = None
_flush_at_run_end = True


def set_active(source: Optional[StatsSource], flush_at_run_end: bool = True) -> None:
    global _active, _flush_at_run_end
    with _lock:
        _active = source
        _flush_at_run_end = flush_at_run_end


def active() -> Optional[StatsSource]:
    return _active


def flush_at_run_end() -> bool:
    return _flush_at_run_end


def active_stats() -> ExportStats:
    """Stats of the active pipeline (all zero when none is set up)."""
    src = _active
    return src.stats() if src is not None else ExportStats()
