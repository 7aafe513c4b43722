"""traj-instrument: schema v2 spans for Python Planner / Worker / Verifier agents.

The Python side of the Rust ``traj-instrument`` crate: the same vocabulary (a run, its planner /
worker / verifier steps, tool calls with retries, transitions, observations, verdicts, outcome),
the same hashes (byte-identical canonical JSON), on top of ``opentelemetry-api`` only::

    import traj_instrument as traj

    telemetry = traj.init()                      # needs opentelemetry-sdk + an OTLP exporter
    with traj.run(goal=goal, goal_family="summaries", seed=7, model_stack=..., prompts=..., tools=...) as run:
        with run.planner() as p:
            p.input(traj.PlannerInput(goal=goal))
            plan = client.chat.completions.create(...)   # auto-instrumented: nests under the planner
            p.output(traj.PlannerOutput(plan=[traj.PlanStep(0, "read notes.txt", "read_file")]))
        ...
        run.finish("success")

:func:`init`, :class:`Telemetry`, :class:`CountingSpanProcessor` and :func:`resolve_export`
need ``opentelemetry-sdk``; they are imported on first use.
"""
from __future__ import annotations

from typing import Any

from . import keys
from ._active import ExportStats, active_stats
from .hashing import canonical_json, format_float, hash_json, hash_str
from .payloads import (
    ChatMessage, FailureNote, ModelSpec, OrchestratorState, Outcome, PlannerInput, PlannerOutput, PlanProgress,
    PlanStep, RuntimeConfig, ToolDefinition, ToolStatus, Usage, Verdict, VerifierInput, VerifierOutput, WorkerAction,
    WorkerInput, WorkerOutput, reasoning_part, text_part, to_json, tool_call_part, tool_call_response_part,
)
from .redaction import NO_REDACTION, RedactionPolicy, default_redaction, set_default_redaction
from .spans import (
    AUTO, INSTRUMENTATION_NAME, LlmSpan, PlannerSpan, RunHashes, RunSpan, ToolError, ToolSpan, VerifierSpan,
    WorkerSpan, current_run, current_step, error_class_of, planner, run, run_hashes, tool, verifier, worker,
)

__version__ = "0.1.0"

_SDK_NAMES = {"init", "Telemetry", "CountingSpanProcessor", "CountingSpanExporter", "ResolvedExport",
              "resolve_export", "DEFAULT_MAX_QUEUE_SIZE"}


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from . import telemetry
        return getattr(telemetry, name)
    raise AttributeError(f"module 'traj_instrument' has no attribute {name!r}")


__all__ = [
    "keys", "ExportStats", "active_stats", "canonical_json", "format_float", "hash_json", "hash_str",
    "ChatMessage", "FailureNote", "ModelSpec", "OrchestratorState", "Outcome", "PlannerInput", "PlannerOutput",
    "PlanProgress", "PlanStep", "RuntimeConfig", "ToolDefinition", "ToolStatus", "Usage", "Verdict",
    "VerifierInput", "VerifierOutput", "WorkerAction", "WorkerInput", "WorkerOutput", "reasoning_part",
    "text_part", "to_json", "tool_call_part", "tool_call_response_part",
    "NO_REDACTION", "RedactionPolicy", "default_redaction", "set_default_redaction",
    "AUTO", "INSTRUMENTATION_NAME", "LlmSpan", "PlannerSpan", "RunHashes", "RunSpan", "ToolError", "ToolSpan",
    "VerifierSpan", "WorkerSpan", "current_run", "current_step", "error_class_of", "planner", "run",
    "run_hashes", "tool", "verifier", "worker", *sorted(_SDK_NAMES),
]
