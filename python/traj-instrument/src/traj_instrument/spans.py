"""The span helpers: a run (root span) and its planner / worker / verifier steps, tool calls and
LLM calls, each recording every schema v2 key of its role (``docs/conventions.md``), so agent code
never types an attribute key. The vocabulary is the Rust ``traj-instrument``'s.

Every handle is a context manager (``with`` and ``async with``) that makes its span the current
one, so whatever LLM instrumentation the agent already has (openai-v2, OpenInference, a
framework's own spans) nests under the right role span; nothing those instrumentations record is
recorded again here.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, Status, StatusCode

from . import _active
from . import keys as K
from .hashing import canonical_json, hash_json, hash_str
from .payloads import (
    ChatMessage, Messages, ModelSpec, OrchestratorState, Outcome, Payload, RuntimeConfig, ToolDefinition, ToolStatus,
    Usage, VerifierOutput, normalize_model_stack, normalize_runtime_config, to_json,
)
from .redaction import RedactionPolicy, default_redaction

__all__ = [
    "run", "RunSpan", "RunHashes", "run_hashes", "PlannerSpan", "WorkerSpan", "VerifierSpan", "ToolSpan", "LlmSpan",
    "ToolError", "error_class_of", "current_run", "current_step", "planner", "worker", "verifier", "tool",
    "INSTRUMENTATION_NAME",
]

INSTRUMENTATION_NAME = "traj_instrument"
_VERSION = "0.1.0"

_current_run: "contextvars.ContextVar[Optional[RunSpan]]" = contextvars.ContextVar("traj_run", default=None)
_current_step: "contextvars.ContextVar[Optional[_StepSpan]]" = contextvars.ContextVar("traj_step", default=None)

F = TypeVar("F", bound=Callable[..., Any])


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


#: ``link=AUTO`` (the default): link as the conventions say (worker -> the planner or verifier
#: before it, verifier -> the last worker, planner -> the verifier that asked for the replan).
AUTO: Any = _Auto()

LinkLike = Union[SpanContext, "_Handle", None]


# --- errors -----------------------------------------------------------------------------------

class ToolError(Exception):
    """Raise from a tool (or pass to ``ToolSpan.err``) to give the error class explicitly."""

    def __init__(self, error_class: str, message: str = "") -> None:
        super().__init__(message or error_class)
        self.error_class = error_class
        self.message = message or error_class


_BUILTIN_CLASSES = (
    (TimeoutError, "timeout"), (asyncio.TimeoutError, "timeout"), (FileNotFoundError, "not_found"),
    (KeyError, "not_found"), (PermissionError, "permission_denied"), (ConnectionError, "unavailable"),
    (ValueError, "invalid_arguments"), (TypeError, "invalid_arguments"), (asyncio.CancelledError, "cancelled"),
)


def error_class_of(exc: BaseException) -> str:
    """The error-taxonomy class of an exception: ``ToolError.error_class`` or an ``error_class``
    attribute, else ``timeout`` / ``not_found`` / ``permission_denied`` / ``unavailable`` /
    ``invalid_arguments`` / ``cancelled`` for the matching builtin exceptions, else the
    exception's type name in snake_case."""
    cls = getattr(exc, "error_class", None)
    if isinstance(cls, str) and cls:
        return cls
    for typ, name in _BUILTIN_CLASSES:
        if isinstance(exc, typ):
            return name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


# --- hashes -------------------------------------------------------------------------------------

class RunHashes:
    """The three content hashes of a run (``sha256:`` + 32 hex digits, over canonical JSON)."""

    def __init__(self, config_hash: str, prompt_hash: str, toolset_hash: str) -> None:
        self.config_hash = config_hash
        self.prompt_hash = prompt_hash
        self.toolset_hash = toolset_hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunHashes) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"RunHashes({self.config_hash!r}, {self.prompt_hash!r}, {self.toolset_hash!r})"


def run_hashes(model_stack: Mapping[str, Any], runtime_config: Union[RuntimeConfig, Mapping[str, Any], None],
               prompts: Mapping[str, str], tools: Sequence[Any]) -> RunHashes:
    """``RunInfo::hashes()`` of the Rust side: ``config_hash`` over
    ``{"model_stack", "runtime_config"}`` (normalized as the Rust types serialize them),
    ``prompt_hash`` over the name -> template object, ``toolset_hash`` over the tool list in order."""
    for k, v in prompts.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("prompts must map template name (str) to template text (str)")
    config = {"model_stack": normalize_model_stack(model_stack),
              "runtime_config": normalize_runtime_config(runtime_config)}
    return RunHashes(hash_json(config), hash_json(dict(prompts)), hash_json([to_json(t) for t in tools]))


# --- plumbing ------------------------------------------------------------------------------------

def _int_attr(v: int) -> Union[int, str]:
    """An OTLP int; values outside int64 as decimal strings (as the Rust helpers record them)."""
    return v if -(2**63) <= v < 2**63 else str(v)


def _record_error(span: trace.Span, policy: RedactionPolicy, error_class: str, message: str) -> None:
    message = policy.redact_str(message)
    span.set_attribute(K.ERROR_CLASS, error_class)
    span.set_attribute(K.ERROR_TYPE, error_class)
    span.set_status(Status(StatusCode.ERROR, message))
    span.add_event(K.EXCEPTION_EVENT, {K.EXCEPTION_TYPE: error_class, K.EXCEPTION_MESSAGE: message})


def _link_context(target: LinkLike) -> Optional[SpanContext]:
    if target is None:
        return None
    if isinstance(target, _Handle):
        return target.link_target()
    if isinstance(target, SpanContext):
        return target
    raise TypeError(f"cannot link to {type(target).__name__}")


class _Handle:
    """Common to every span handle: the OTel span, context management, ending."""

    _span: trace.Span
    _policy: RedactionPolicy

    def __init__(self) -> None:
        self._tokens: List[Tuple[object, Optional[contextvars.Token[Any]]]] = []
        self._ended = False

    @property
    def span(self) -> trace.Span:
        """The OpenTelemetry span (to add your own attributes or events)."""
        return self._span

    @property
    def span_id(self) -> str:
        return format(self._span.get_span_context().span_id, "016x")

    def link_target(self) -> SpanContext:
        """What a later span links to (valid after this span has ended)."""
        return self._span.get_span_context()

    def _payload(self, payload: Any) -> str:
        try:
            return canonical_json(self._policy.redact_json(to_json(payload)))
        except (TypeError, ValueError) as e:  # as the Rust helpers do: record why, keep the run
            return canonical_json({"serialization_error": str(e)})

    def _set_payload(self, key: str, payload: Any) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, self._payload(payload))

    def _on_exception(self, exc: BaseException) -> None:
        _record_error(self._span, self._policy, error_class_of(exc), str(exc) or type(exc).__name__)

    def _close(self) -> None:
        pass

    def end(self) -> None:
        """Ends the span (leaving a ``with`` block does the same)."""
        if self._ended:
            return
        self._ended = True
        self._close()
        self._span.end()

    # context management: the span is the current one inside the block
    def _enter_extra(self) -> Optional["contextvars.Token[Any]"]:
        return None

    def __enter__(self) -> Any:
        ctx_token = otel_context.attach(trace.set_span_in_context(self._span))
        self._tokens.append((ctx_token, self._enter_extra()))
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is not None and not self._ended:
            self._on_exception(exc)
        ctx_token, extra = self._tokens.pop()
        if extra is not None:
            extra.var.reset(extra)
        otel_context.detach(cast(Any, ctx_token))
        self.end()

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


# --- the run -------------------------------------------------------------------------------------

_ROLE_RANK = {"planner": 0, "worker": 1, "verifier": 2}


class RunSpan(_Handle):
    """The root span of one run (``invoke_workflow <agent>``). One run = one trace; the run id is
    the trace id in lowercase hex. Start it with :func:`run`.

    Left without :meth:`finish`: outcome ``aborted``, failure class ``cancelled``; left by an
    exception: the exception is recorded as the run's error (``episode_error``), outcome
    ``aborted``, failure class = its error class. Either way the exception propagates.
    """

    def __init__(self, *, goal: str, goal_family: str, seed: int, agent_name: str = "traj-agent",
                 task_id: Optional[str] = None, model_stack: Optional[Mapping[str, Any]] = None,
                 runtime_config: Union[RuntimeConfig, Mapping[str, Any], None] = None,
                 prompts: Optional[Mapping[str, str]] = None, tools: Optional[Sequence[Any]] = None,
                 redaction: Optional[RedactionPolicy] = None,
                 tracer_provider: Optional[trace.TracerProvider] = None,
                 seed_kind: Optional[str] = None) -> None:
        super().__init__()
        if seed_kind not in (None, "fixed", "random"):
            raise ValueError(f"seed_kind must be 'fixed', 'random' or None, got {seed_kind!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int (the seed actually used), got {seed!r}")
        self._policy = redaction or default_redaction()
        self.agent_name = agent_name
        ms = normalize_model_stack(model_stack or {})
        rc = normalize_runtime_config(runtime_config)
        self.hashes = run_hashes(ms, rc, dict(prompts or {}), list(tools or []))
        self._tracer = (tracer_provider.get_tracer(INSTRUMENTATION_NAME, _VERSION) if tracer_provider is not None
                        else trace.get_tracer(INSTRUMENTATION_NAME, _VERSION))
        attrs: Dict[str, Any] = {
            K.SCHEMA_VERSION_KEY: K.SCHEMA_VERSION, K.ROLE: "run",
            K.GEN_AI_OPERATION_NAME: "invoke_workflow", K.OPENINFERENCE_SPAN_KIND: "CHAIN",
            K.GEN_AI_AGENT_NAME: agent_name,
            K.GOAL: self._policy.redact_str(goal), K.GOAL_FAMILY: goal_family, K.SEED: _int_attr(seed),
            K.CONFIG_HASH: self.hashes.config_hash, K.PROMPT_HASH: self.hashes.prompt_hash,
            K.TOOLSET_HASH: self.hashes.toolset_hash,
            K.MODEL_STACK: canonical_json(self._policy.redact_json(ms)),
            K.RUNTIME_CONFIG: canonical_json(self._policy.redact_json(rc)),
            K.REDACTION_POLICY: self._policy.name, K.REDACTION_VERSION: self._policy.version,
        }
        if task_id is not None:
            attrs[K.TASK_ID] = task_id
        if seed_kind is not None:
            attrs[K.SEED_KIND] = seed_kind
        # A run is a trace of its own: the root never has a parent.
        self._span = self._tracer.start_span(f"invoke_workflow {agent_name}", context=otel_context.Context(),
                                             attributes=attrs)
        self.run_id = format(self._span.get_span_context().trace_id, "032x")
        self._span.set_attribute(K.GEN_AI_CONVERSATION_ID, self.run_id)
        self._finished = False
        self._cycle = -1
        self._last_rank = 99
        self._last: Dict[str, SpanContext] = {}
        self._last_seq: Dict[str, int] = {}
        self._seq = 0

    # steps
    def _next_step(self, role: str, step: Optional[int]) -> int:
        rank = _ROLE_RANK[role]
        if step is None:
            if rank <= self._last_rank or self._cycle < 0:
                self._cycle += 1
            step = self._cycle
        else:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"step must be a non-negative int, got {step!r}")
            self._cycle = step
        self._last_rank = rank
        return step

    def _auto_link(self, role: str) -> Optional[SpanContext]:
        if role == "planner":
            return self._last.get("verifier")
        if role == "verifier":
            return self._last.get("worker")
        cands = [r for r in ("planner", "verifier") if r in self._last]
        if not cands:
            return None
        return self._last[max(cands, key=lambda r: self._last_seq[r])]

    def _step(self, cls: Any, role: str, step: Optional[int], link: Any) -> Any:
        n = self._next_step(role, step)
        target = self._auto_link(role) if link is AUTO else _link_context(link)
        s = cls(self, role, n, target)
        self._seq += 1
        self._last[role] = s.link_target()
        self._last_seq[role] = self._seq
        return s

    def planner(self, step: Optional[int] = None, link: Any = AUTO) -> "PlannerSpan":
        """Starts the planner span of cycle ``step`` (default: derived as traj derives cycles: a
        new cycle begins when a role does not come after the previous one in planner < worker <
        verifier)."""
        return cast(PlannerSpan, self._step(PlannerSpan, "planner", step, link))

    def worker(self, step: Optional[int] = None, link: Any = AUTO) -> "WorkerSpan":
        return cast(WorkerSpan, self._step(WorkerSpan, "worker", step, link))

    def verifier(self, step: Optional[int] = None, link: Any = AUTO) -> "VerifierSpan":
        return cast(VerifierSpan, self._step(VerifierSpan, "verifier", step, link))

    @property
    def cycle(self) -> int:
        """The cycle of the last step started (-1 before the first)."""
        return self._cycle

    def error(self, error_class: str, message: str) -> "RunSpan":
        """An error of the run itself (an ``exception`` event on the root: ``episode_error``);
        marks the root span ``ERROR``."""
        _record_error(self._span, self._policy, error_class, message)
        return self

    def finish(self, outcome: Union[Outcome, str], failure_class: Optional[str] = None) -> None:
        """Records outcome, failure class and ``traj.spans_dropped`` (spans the active pipeline lost
        so far in this process), ends the root span, then flushes the active pipeline (see
        :func:`traj_instrument.init`)."""
        if self._finished:
            return
        self._record_finish(outcome, failure_class)
        self.end()

    def _record_finish(self, outcome: Union[Outcome, str], failure_class: Optional[str]) -> None:
        outcome = Outcome(outcome.value if isinstance(outcome, Outcome) else outcome)
        self._finished = True
        self._span.set_attribute(K.OUTCOME, outcome.value)
        if failure_class is not None:
            self._span.set_attribute(K.FAILURE_CLASS, failure_class)
        self._span.set_attribute(K.SPANS_DROPPED, _int_attr(_active.active_stats().lost()))

    def end(self) -> None:
        """Ends the run; without :meth:`finish` first, as ``aborted`` / ``cancelled``."""
        if self._ended:
            return
        if not self._finished:
            self._record_finish(Outcome.ABORTED, "cancelled")
        self._ended = True
        self._span.end()
        src = _active.active()
        if src is not None and _active.flush_at_run_end():
            src.force_flush()

    def _on_exception(self, exc: BaseException) -> None:
        cls = error_class_of(exc)
        self.error(cls, str(exc) or type(exc).__name__)
        self.finish(Outcome.ABORTED, cls)

    def _enter_extra(self) -> Optional["contextvars.Token[Any]"]:
        return _current_run.set(self)

    def __enter__(self) -> "RunSpan":
        return cast(RunSpan, super().__enter__())

    async def __aenter__(self) -> "RunSpan":
        return self.__enter__()


def run(*, goal: str, goal_family: str, seed: int, agent_name: str = "traj-agent", task_id: Optional[str] = None,
        model_stack: Optional[Mapping[str, Any]] = None,
        runtime_config: Union[RuntimeConfig, Mapping[str, Any], None] = None,
        prompts: Optional[Mapping[str, str]] = None, tools: Optional[Sequence[Any]] = None,
        redaction: Optional[RedactionPolicy] = None,
        tracer_provider: Optional[trace.TracerProvider] = None, seed_kind: Optional[str] = None) -> RunSpan:
    """Starts a run: a new trace whose root span records goal, goal family, task id, seed, model
    stack, runtime config, the three hashes and the redaction policy.

    ``model_stack``: ``{role: ModelSpec | {"model", "params"} | "model"}``; ``runtime_config``:
    :class:`RuntimeConfig` or a dict (``max_steps``, ``prompt_sources``, ``tool_mode``, anything
    else); ``prompts``: template name -> template text; ``tools``: the tool schemas, in order;
    ``seed_kind``: ``"fixed"`` (given) or ``"random"`` (drawn), for the collection-coverage table."""
    return RunSpan(goal=goal, goal_family=goal_family, seed=seed, agent_name=agent_name, task_id=task_id,
                   model_stack=model_stack, runtime_config=runtime_config, prompts=prompts, tools=tools,
                   redaction=redaction, tracer_provider=tracer_provider, seed_kind=seed_kind)


def current_run() -> Optional[RunSpan]:
    """The run whose ``with`` block is active in this context (thread / asyncio task)."""
    return _current_run.get()


def current_step() -> Optional["_StepSpan"]:
    """The step whose ``with`` block is active in this context."""
    return _current_step.get()


# --- steps ---------------------------------------------------------------------------------------

class _StepSpan(_Handle):
    role = ""

    def __init__(self, run: RunSpan, role: str, step: int, link: Optional[SpanContext]) -> None:
        super().__init__()
        self.run = run
        self.step = step
        self._policy = run._policy
        name, op, agent, kind = K.STEP_ROLES[role]
        self._span = run._tracer.start_span(
            name, context=trace.set_span_in_context(run._span),
            links=[Link(link)] if link is not None and link.is_valid else None,
            attributes={K.ROLE: role, K.STEP: step, K.GEN_AI_OPERATION_NAME: op, K.GEN_AI_AGENT_NAME: agent,
                        K.OPENINFERENCE_SPAN_KIND: kind, K.GEN_AI_CONVERSATION_ID: run.run_id})

    def _enter_extra(self) -> Optional["contextvars.Token[Any]"]:
        return _current_step.set(self)

    def transition(self, from_state: Union[OrchestratorState, str], to_state: Union[OrchestratorState, str],
                   reason: str) -> Any:
        """A ``traj.transition`` span event (an ``orchestrator_transition`` event whose parent is
        this step's output)."""
        self._span.add_event(K.TRANSITION_EVENT, {
            K.TRANSITION_FROM: OrchestratorState(to_json(from_state)).value,
            K.TRANSITION_TO: OrchestratorState(to_json(to_state)).value,
            K.TRANSITION_REASON: self._policy.redact_str(reason)})
        return self

    def error(self, error_class: str, message: str) -> Any:
        """Marks this step failed (status ``ERROR``, ``error.type``, ``exception`` event)."""
        _record_error(self._span, self._policy, error_class, message)
        return self

    def llm_call(self, model: str, rendered_prompt: str) -> "LlmSpan":
        """A manual LLM-call span (``chat <model>``) under this step, for calls no instrumentation
        records. Calls made through an instrumented client need nothing: they nest by themselves."""
        return LlmSpan(self, model, rendered_prompt)

    def __enter__(self) -> Any:
        return super().__enter__()


class PlannerSpan(_StepSpan):
    """A planner step (``plan planner``)."""

    def input(self, payload: Payload) -> "PlannerSpan":
        """:class:`PlannerInput` (or its dict) -> ``traj.planner.input``."""
        self._set_payload(K.PLANNER_INPUT, payload)
        return self

    def output(self, payload: Payload) -> "PlannerSpan":
        """:class:`PlannerOutput` -> ``traj.planner.output``."""
        self._set_payload(K.PLANNER_OUTPUT, payload)
        return self

    def __enter__(self) -> "PlannerSpan":
        return cast(PlannerSpan, super().__enter__())

    async def __aenter__(self) -> "PlannerSpan":
        return self.__enter__()


class WorkerSpan(_StepSpan):
    """A worker step (``invoke_agent worker``)."""

    def input(self, payload: Payload) -> "WorkerSpan":
        self._set_payload(K.WORKER_INPUT, payload)
        return self

    def action(self, payload: Payload) -> "WorkerSpan":
        self._set_payload(K.WORKER_ACTION, payload)
        return self

    def output(self, payload: Payload) -> "WorkerSpan":
        """Records the output; status ``error`` also marks the span failed (class = its
        ``error_class``, else ``worker_error``)."""
        self._set_payload(K.WORKER_OUTPUT, payload)
        out = to_json(payload)
        if isinstance(out, Mapping) and out.get("status") == ToolStatus.ERROR.value:
            _record_error(self._span, self._policy, out.get("error_class") or "worker_error", out.get("summary", ""))
        return self

    def observation(self, source: str, data: Any) -> "WorkerSpan":
        """What the environment showed (a ``traj.observation`` event: ``env_observation``)."""
        _observation(self, source, data)
        return self

    def tool_call(self, name: str, call_id: Optional[str] = None, arguments: Any = None,
                  attempt: int = 1) -> "ToolSpan":
        """Starts a tool-call span (``execute_tool <name>``). ``attempt`` is 1 for the first try, 2
        for the first retry (same ``call_id``), ... End it with ``ok`` / ``err``; in a ``with``
        block an exception is recorded as ``err`` (and propagates)."""
        return ToolSpan(self, name, call_id or new_call_id(), arguments, attempt)

    def call_tool(self, name: str, fn: Callable[..., Any], arguments: Optional[Mapping[str, Any]] = None,
                  call_id: Optional[str] = None, max_attempts: int = 1,
                  retry_on: Iterable[str] = ("timeout", "unavailable", "invalid_arguments")) -> Any:
        """Runs ``fn(**arguments)`` as a tool call: one tool span per attempt (same call id), retried
        up to ``max_attempts`` while the error class is in ``retry_on``. Returns the result, or
        raises the last error. ``self.retries`` counts the retries made in this step."""
        call_id = call_id or new_call_id()
        args = dict(arguments or {})
        retry = set(retry_on)
        for attempt in range(1, max_attempts + 1):
            with self.tool_call(name, call_id, args, attempt) as t:
                try:
                    result = fn(**args)
                except Exception as exc:  # noqa: BLE001 - recorded, retried or re-raised
                    t.err(error_class_of(exc), str(exc) or type(exc).__name__)
                    if attempt < max_attempts and error_class_of(exc) in retry:
                        self.retries += 1
                        continue
                    raise
                t.ok(result)
                return result
        raise AssertionError("unreachable")

    async def acall_tool(self, name: str, fn: Callable[..., Any], arguments: Optional[Mapping[str, Any]] = None,
                         call_id: Optional[str] = None, max_attempts: int = 1,
                         retry_on: Iterable[str] = ("timeout", "unavailable", "invalid_arguments")) -> Any:
        """:meth:`call_tool` for a coroutine function."""
        call_id = call_id or new_call_id()
        args = dict(arguments or {})
        retry = set(retry_on)
        for attempt in range(1, max_attempts + 1):
            async with self.tool_call(name, call_id, args, attempt) as t:
                try:
                    result = await fn(**args)
                except Exception as exc:  # noqa: BLE001
                    t.err(error_class_of(exc), str(exc) or type(exc).__name__)
                    if attempt < max_attempts and error_class_of(exc) in retry:
                        self.retries += 1
                        continue
                    raise
                t.ok(result)
                return result
        raise AssertionError("unreachable")

    retries = 0

    def __enter__(self) -> "WorkerSpan":
        return cast(WorkerSpan, super().__enter__())

    async def __aenter__(self) -> "WorkerSpan":
        return self.__enter__()


class VerifierSpan(_StepSpan):
    """A verifier step (``invoke_agent verifier``)."""

    def input(self, payload: Payload) -> "VerifierSpan":
        self._set_payload(K.VERIFIER_INPUT, payload)
        return self

    def verdict(self, payload: Union[VerifierOutput, Mapping[str, Any]]) -> "VerifierSpan":
        """:class:`VerifierOutput` -> ``traj.verifier.output`` and ``traj.verdict``."""
        out = to_json(payload)
        verdict = out.get("verdict") if isinstance(out, Mapping) else None
        if verdict not in ("continue", "replan", "end"):
            raise ValueError(f"verdict must be continue, replan or end, got {verdict!r}")
        self._set_payload(K.VERIFIER_OUTPUT, out)
        self._span.set_attribute(K.VERDICT, verdict)
        return self

    output = verdict

    def __enter__(self) -> "VerifierSpan":
        return cast(VerifierSpan, super().__enter__())

    async def __aenter__(self) -> "VerifierSpan":
        return self.__enter__()


def _observation(h: _Handle, source: str, data: Any) -> None:
    h._span.add_event(K.OBSERVATION_EVENT, {K.OBSERVATION_SOURCE: source, K.OBSERVATION_DATA: h._payload(data)})


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:16]


# --- tool and LLM calls ------------------------------------------------------------------------

class ToolSpan(_Handle):
    """One tool execution (``execute_tool <tool>``). End with :meth:`ok` or :meth:`err`; ended
    without either, it is recorded as error class ``abandoned``."""

    def __init__(self, worker: _StepSpan, name: str, call_id: str, arguments: Any, attempt: int) -> None:
        super().__init__()
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
        self._policy = worker._policy
        self.name, self.call_id, self.attempt = name, call_id, attempt
        self._done = False
        self._span = worker.run._tracer.start_span(
            f"execute_tool {name}", context=trace.set_span_in_context(worker._span),
            attributes={K.ROLE: "tool", K.GEN_AI_OPERATION_NAME: "execute_tool", K.OPENINFERENCE_SPAN_KIND: "TOOL",
                        K.GEN_AI_CONVERSATION_ID: worker.run.run_id, K.GEN_AI_TOOL_NAME: name,
                        K.GEN_AI_TOOL_CALL_ID: call_id,
                        K.GEN_AI_TOOL_CALL_ARGUMENTS: self._payload(arguments if arguments is not None else {}),
                        K.RETRY_ATTEMPT: attempt})

    def ok(self, result: Any = None) -> None:
        """The tool succeeded with ``result`` (any JSON value); ends the span."""
        if self._done:
            return
        self._done = True
        self._span.set_attribute(K.TOOL_STATUS, "ok")
        self._set_payload(K.GEN_AI_TOOL_CALL_RESULT, result)
        self.end()

    def err(self, error_class: str, message: str = "") -> None:
        """The tool failed: status ``ERROR``, ``error.type`` = ``error_class``, ``exception`` event."""
        if self._done:
            return
        self._done = True
        self._span.set_attribute(K.TOOL_STATUS, "error")
        _record_error(self._span, self._policy, error_class, message or error_class)
        self.end()

    def observation(self, source: str, data: Any) -> "ToolSpan":
        _observation(self, source, data)
        return self

    def _on_exception(self, exc: BaseException) -> None:
        self.err(error_class_of(exc), str(exc) or type(exc).__name__)

    def _close(self) -> None:
        if not self._done:
            self._done = True
            self._span.set_attribute(K.TOOL_STATUS, "error")
            _record_error(self._span, self._policy, "abandoned", "tool span ended without a result")

    def __enter__(self) -> "ToolSpan":
        return cast(ToolSpan, super().__enter__())

    async def __aenter__(self) -> "ToolSpan":
        return self.__enter__()


def _request_value(policy: RedactionPolicy, v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, float):
        return v
    if isinstance(v, int):
        return _int_attr(v)
    if isinstance(v, str):
        return policy.redact_str(v)
    if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        return [policy.redact_str(x) for x in v]
    return canonical_json(policy.redact_json(to_json(v)))


class LlmSpan(_Handle):
    """A manual model call (``chat <model>``), recorded in the GenAI form exactly as the Rust
    ``LlmSpan``: for calls that no instrumentation records. Content passes through the run's
    redaction policy."""

    def __init__(self, step: _StepSpan, model: str, rendered_prompt: str) -> None:
        super().__init__()
        self._policy = step._policy
        prompt = self._policy.redact_str(rendered_prompt)
        self._span = step.run._tracer.start_span(
            f"chat {model}", context=trace.set_span_in_context(step._span),
            attributes={K.ROLE: "llm", K.GEN_AI_OPERATION_NAME: "chat", K.OPENINFERENCE_SPAN_KIND: "LLM",
                        K.GEN_AI_CONVERSATION_ID: step.run.run_id, K.GEN_AI_REQUEST_MODEL: model,
                        K.PROMPT_RENDERED: prompt, K.PROMPT_HASH: hash_str(prompt)})

    def request(self, params: Mapping[str, Any]) -> "LlmSpan":
        """``gen_ai.request.<name>`` per parameter (``model`` skipped); a ModelSpec's params fit."""
        for name, value in params.items():
            if name != "model":
                self._span.set_attribute(f"gen_ai.request.{name}", _request_value(self._policy, value))
        return self

    def system_instructions(self, parts: Sequence[Any]) -> "LlmSpan":
        self._set_payload(K.GEN_AI_SYSTEM_INSTRUCTIONS, list(parts))
        return self

    def input_messages(self, messages: Messages) -> "LlmSpan":
        self._set_payload(K.GEN_AI_INPUT_MESSAGES, list(messages))
        return self

    def tool_definitions(self, tools: Sequence[Union[ToolDefinition, Mapping[str, Any]]]) -> "LlmSpan":
        defs = [dict(to_json(t), type="function") for t in tools]
        self._set_payload(K.GEN_AI_TOOL_DEFINITIONS, defs)
        return self

    def output_messages(self, messages: Messages) -> "LlmSpan":
        msgs = [to_json(m) for m in messages]
        self._set_payload(K.GEN_AI_OUTPUT_MESSAGES, msgs)
        reasons = [m["finish_reason"] for m in msgs if isinstance(m, Mapping) and m.get("finish_reason")]
        if reasons:
            self._span.set_attribute(K.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
        return self

    def output_text(self, text: str) -> "LlmSpan":
        return self.output_messages([ChatMessage.text("assistant", text, finish_reason="stop")])

    def response(self, id: str, usage: Optional[Usage] = None) -> "LlmSpan":
        self._span.set_attribute(K.GEN_AI_RESPONSE_ID, id)
        if usage is not None:
            self.usage(usage.input_tokens, usage.output_tokens)
        return self

    def usage(self, input_tokens: int, output_tokens: int) -> "LlmSpan":
        self._span.set_attribute(K.GEN_AI_USAGE_INPUT_TOKENS, _int_attr(input_tokens))
        self._span.set_attribute(K.GEN_AI_USAGE_OUTPUT_TOKENS, _int_attr(output_tokens))
        return self

    def __enter__(self) -> "LlmSpan":
        return cast(LlmSpan, super().__enter__())

    async def __aenter__(self) -> "LlmSpan":
        return self.__enter__()


# --- decorators ----------------------------------------------------------------------------------

def _need_run() -> RunSpan:
    r = _current_run.get()
    if r is None:
        raise RuntimeError("no traj run is active here: call inside `with traj_instrument.run(...)`")
    return r


def _step_decorator(role: str) -> Callable[..., Any]:
    def decorator(fn: Optional[F] = None, *, step: Optional[int] = None, link: Any = AUTO) -> Any:
        def wrap(f: F) -> F:
            if inspect.iscoroutinefunction(f):
                @functools.wraps(f)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    async with getattr(_need_run(), role)(step=step, link=link):
                        return await f(*args, **kwargs)
                return cast(F, awrapper)

            @functools.wraps(f)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with getattr(_need_run(), role)(step=step, link=link):
                    return f(*args, **kwargs)
            return cast(F, wrapper)
        return wrap(fn) if fn is not None else wrap
    decorator.__name__ = role
    decorator.__doc__ = (f"Decorator: each call of the function runs in a new {role} step of the current run "
                         f"(``@{role}`` or ``@{role}(step=N, link=...)``); inside, ``current_step()`` is it.")
    return decorator


planner = _step_decorator("planner")
worker = _step_decorator("worker")
verifier = _step_decorator("verifier")


def tool(fn: Optional[F] = None, *, name: Optional[str] = None) -> Any:
    """Decorator: each call runs in a tool span of the current worker step (the call's bound
    arguments recorded as ``gen_ai.tool.call.arguments``, the return value as the result, an
    exception as the error, which propagates). Works for sync and ``async`` functions."""
    def wrap(f: F) -> F:
        tool_name = name or f.__name__
        sig = inspect.signature(f)

        def start(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> ToolSpan:
            step = _current_step.get()
            if not isinstance(step, WorkerSpan):
                raise RuntimeError(f"tool {tool_name!r} called outside a worker step")
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return step.tool_call(tool_name, None, dict(bound.arguments))

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async with start(args, kwargs) as t:
                    result = await f(*args, **kwargs)
                    t.ok(result)
                    return result
            return cast(F, awrapper)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with start(args, kwargs) as t:
                result = f(*args, **kwargs)
                t.ok(result)
                return result
        return cast(F, wrapper)
    return wrap(fn) if fn is not None else wrap
