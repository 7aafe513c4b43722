"""No silent loss: an export pipeline that sizes the batch processor, counts every span, flushes
at the end of each run and lets the run span record how many spans were lost.

The Python SDK's ``BatchSpanProcessor`` keeps its queue in a bounded ``deque``: when it is full
the oldest span is silently discarded (a one-line warning log, and an
``otel.sdk.processor.span.processed`` metric with ``error.type=queue_full`` only when the SDK's
internal metrics are turned on and a MeterProvider is set). There is no public drop counter, so,
as on the Rust side, the processor is wrapped twice:

1. :class:`CountingSpanProcessor` sees every ended (sampled) span (``ended``). It admits a span
   only while fewer than ``max_queue_size`` admitted spans have not yet been handed to the
   exporter; otherwise it drops the span itself and counts it (``dropped``). Spans ending after
   shutdown are counted as dropped too.
2. :class:`CountingSpanExporter` sees every batch as it leaves the queue and counts its spans as
   ``exported`` or ``failed`` by the export result (an exception counts as failed).

The inner SDK queue is sized ``max_queue_size + max_export_batch_size``, above our bound, so the
SDK never drops on its own: after a flush, ``ended == exported + dropped + failed``.

This module needs ``opentelemetry-sdk`` (and an OTLP exporter package for :func:`init` without
``exporter=``); the rest of the package needs only ``opentelemetry-api``.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from . import _active
from ._active import ExportStats

__all__ = ["CountingSpanProcessor", "CountingSpanExporter", "ExportStats", "Telemetry", "ResolvedExport",
           "init", "resolve_export", "DEFAULT_MAX_QUEUE_SIZE", "DEFAULT_GRPC_ENDPOINT", "DEFAULT_HTTP_ENDPOINT",
           "DEFAULT_SERVICE_NAME"]

_log = logging.getLogger("traj_instrument.export")

DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_SERVICE_NAME = "traj-agent"
#: Holds a 10 000-span burst several times over (as on the Rust side).
DEFAULT_MAX_QUEUE_SIZE = 65_536


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ended = self.exported = self.dropped = self.failed = 0
        self.queued = 0  # admitted and not yet handed to the exporter

    def snapshot(self) -> ExportStats:
        with self.lock:
            return ExportStats(self.ended, self.exported, self.dropped, self.failed)


class CountingSpanExporter(SpanExporter):
    """Wraps an exporter: counts each batch's spans as exported or failed."""

    def __init__(self, inner: SpanExporter, counters: Optional[_Counters] = None) -> None:
        self.inner = inner
        self._c = counters or _Counters()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        with self._c.lock:
            self._c.queued = max(0, self._c.queued - n)
        try:
            result = self.inner.export(spans)
        except Exception:
            with self._c.lock:
                self._c.failed += n
            raise
        with self._c.lock:
            if result == SpanExportResult.SUCCESS:
                self._c.exported += n
            else:
                self._c.failed += n
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call,unused-ignore]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` with exact accounting (module docstring). Add it to your own
    ``TracerProvider`` and call :meth:`activate` so run spans record its losses, or let
    :func:`init` do both."""

    def __init__(self, exporter: SpanExporter, max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
                 max_export_batch_size: int = 1024, schedule_delay_millis: float = 500,
                 export_timeout_millis: float = 10_000) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be >= 1")
        max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self._c = _Counters()
        self.capacity = max_queue_size
        self.exporter = CountingSpanExporter(exporter, self._c)
        self._inner = BatchSpanProcessor(self.exporter, max_queue_size=max_queue_size + max_export_batch_size,
                                         schedule_delay_millis=schedule_delay_millis,
                                         max_export_batch_size=max_export_batch_size,
                                         export_timeout_millis=export_timeout_millis)
        self._shut_down = False
        self._warned = False

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        self._inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return  # the batch processor never exports unsampled spans; they are not counted
        c = self._c
        with c.lock:
            c.ended += 1
            if self._shut_down or c.queued >= self.capacity:
                c.dropped += 1
                warn = not self._warned
                self._warned = True
                admitted = False
            else:
                c.queued += 1
                admitted = True
                warn = False
        if warn:
            _log.warning("traj_instrument: span queue full or shut down (capacity %d): dropping spans; "
                         "the loss is counted and recorded as traj.spans_dropped", self.capacity)
        if admitted:
            self._inner.on_end(span)

    def stats(self) -> ExportStats:
        return self._c.snapshot()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        with self._c.lock:
            self._shut_down = True
        self._inner.shutdown()  # type: ignore[no-untyped-call,unused-ignore]

    def activate(self, flush_at_run_end: bool = True) -> "CountingSpanProcessor":
        """Makes this the pipeline whose losses run spans record (``traj.spans_dropped``) and,
        with ``flush_at_run_end``, which ``RunSpan.finish`` flushes."""
        _active.set_active(self, flush_at_run_end)
        return self


@dataclass(frozen=True)
class ResolvedExport:
    #: ``grpc`` or ``http/protobuf``.
    protocol: str
    #: The URL the exporter sends to (for HTTP including ``/v1/traces``).
    endpoint: str
    service_name: str


def _append_traces_path(base: str) -> str:
    return base.strip().rstrip("/") + "/v1/traces"


def _with_traces_path_if_bare(url: str) -> str:
    u = url.strip()
    rest = u.split("://", 1)[1] if "://" in u else u
    i = rest.find("/")
    if i < 0 or rest[i:] == "/":
        return _append_traces_path(u)
    return u


def resolve_export(protocol: Optional[str] = None, endpoint: Optional[str] = None,
                   service_name: Optional[str] = None,
                   env: Optional[Mapping[str, str]] = None) -> ResolvedExport:
    """Explicit arguments, else ``OTEL_EXPORTER_OTLP_TRACES_*``, else ``OTEL_EXPORTER_OTLP_*``,
    else the defaults, exactly as the Rust ``ExportConfig::resolve``: the traces endpoint
    variable is used as is, the generic one gets ``/v1/traces`` for HTTP; an explicit HTTP
    endpoint without a path gets ``/v1/traces``."""
    environ: Mapping[str, str] = os.environ if env is None else env

    def get(k: str) -> Optional[str]:
        v = environ.get(k)
        return v if v is not None and v.strip() else None

    def parse(v: str, where: str) -> str:
        v = v.strip()
        if v == "grpc":
            return "grpc"
        if v in ("http/protobuf", "http"):
            return "http/protobuf"
        raise ValueError(f"{where}: unsupported protocol {v!r} (use grpc or http/protobuf)")

    if protocol:
        proto = parse(protocol, "protocol")
    elif get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        proto = parse(get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or "", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    elif get("OTEL_EXPORTER_OTLP_PROTOCOL"):
        proto = parse(get("OTEL_EXPORTER_OTLP_PROTOCOL") or "", "OTEL_EXPORTER_OTLP_PROTOCOL")
    else:
        proto = "grpc"
    http = proto == "http/protobuf"
    if endpoint:
        ep = _with_traces_path_if_bare(endpoint) if http else endpoint
    elif get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        ep = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or ""
    elif get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        base = get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
        ep = _append_traces_path(base) if http else base
    else:
        ep = _append_traces_path(DEFAULT_HTTP_ENDPOINT) if http else DEFAULT_GRPC_ENDPOINT
    ep = ep.strip()
    if not (ep.startswith("http://") or ep.startswith("https://")):
        raise ValueError(f"endpoint {ep!r} must be an http:// or https:// URL")
    name = service_name or get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    return ResolvedExport(proto, ep, name)


def _otlp_exporter(r: ResolvedExport, timeout_s: float) -> SpanExporter:
    try:
        if r.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
            exporter: SpanExporter = GrpcExporter(endpoint=r.endpoint, insecure=r.endpoint.startswith("http://"),
                                                  timeout=timeout_s)
            return exporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter as HttpExporter,
        )
        exporter = HttpExporter(endpoint=r.endpoint, timeout=timeout_s)
        return exporter
    except ImportError as e:
        pkg = ("opentelemetry-exporter-otlp-proto-grpc" if r.protocol == "grpc"
               else "opentelemetry-exporter-otlp-proto-http")
        raise ImportError(f"traj_instrument.init: OTLP {r.protocol} export needs {pkg} "
                          f"(pip install {pkg}), or pass exporter=...") from e


class Telemetry:
    """What :func:`init` set up: the provider, the counting processor, the resolved target."""

    def __init__(self, provider: TracerProvider, processor: CountingSpanProcessor,
                 resolved: Optional[ResolvedExport]) -> None:
        self.provider = provider
        self.processor = processor
        self.resolved = resolved

    def stats(self) -> ExportStats:
        return self.processor.stats()

    def flush(self, timeout_millis: int = 30000) -> ExportStats:
        """Exports everything queued; returns the stats after it (``pending() == 0`` unless the
        exporter is still busy past the timeout)."""
        self.processor.force_flush(timeout_millis)
        return self.stats()

    def shutdown(self) -> ExportStats:
        """Flushes and shuts the processor and provider down; returns the final stats."""
        self.processor.force_flush()
        self.provider.shutdown()
        if _active.active() is self.processor:
            _active.set_active(None)
        return self.stats()


def init(*, exporter: Optional[SpanExporter] = None, protocol: Optional[str] = None,
         endpoint: Optional[str] = None, service_name: Optional[str] = None,
         max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE, max_export_batch_size: int = 1024,
         schedule_delay_millis: float = 500, export_timeout_millis: float = 10_000,
         tracer_provider: Optional[TracerProvider] = None, resource_attributes: Optional[Mapping[str, Any]] = None,
         set_global: bool = True, flush_at_run_end: bool = True,
         instrument: Sequence[Callable[[TracerProvider], Any]] = ()) -> Telemetry:
    """Sets up export with drop accounting, like the Rust ``traj_instrument::init``.

    Without ``exporter``: OTLP over ``protocol`` (``grpc`` | ``http/protobuf``) to ``endpoint``,
    both resolved against the ``OTEL_EXPORTER_OTLP_*`` variables (:func:`resolve_export`). The
    :class:`CountingSpanProcessor` (queue ``max_queue_size``) is added to ``tracer_provider`` (a
    new one with ``service.name`` when not given), which becomes the global provider when
    ``set_global``. Run spans then record the pipeline's losses as ``traj.spans_dropped``, and
    with ``flush_at_run_end`` every ``RunSpan.finish`` flushes it. ``instrument``: callables run
    with the provider (e.g. ``lambda tp: OpenAIInstrumentor().instrument(tracer_provider=tp)``).
    """
    resolved = None
    if exporter is None:
        resolved = resolve_export(protocol, endpoint, service_name)
        exporter = _otlp_exporter(resolved, export_timeout_millis / 1000)
    if tracer_provider is None:
        attrs = dict(resource_attributes or {})
        attrs.setdefault("service.name", (resolved.service_name if resolved else None)
                         or service_name or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME)
        tracer_provider = TracerProvider(resource=Resource.create(attrs))
    processor = CountingSpanProcessor(exporter, max_queue_size=max_queue_size,
                                      max_export_batch_size=max_export_batch_size,
                                      schedule_delay_millis=schedule_delay_millis,
                                      export_timeout_millis=export_timeout_millis)
    tracer_provider.add_span_processor(processor)
    processor.activate(flush_at_run_end)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
    for f in instrument:
        f(tracer_provider)
    return Telemetry(tracer_provider, processor, resolved)
