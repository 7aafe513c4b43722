"""Typed payloads mirroring ``traj_schema`` (``proto/schemas/payload.*.schema.json``).

Each class's :meth:`to_json` gives exactly the JSON object the Rust type serializes to: the same
field names, defaults written out, optional fields left out when unset. Every helper also accepts
a plain ``dict`` in place of a payload object (it is recorded as given).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "Verdict", "Outcome", "ToolStatus", "OrchestratorState",
    "PlanStep", "FailureNote", "PlannerInput", "PlannerOutput", "WorkerInput", "WorkerAction",
    "WorkerOutput", "PlanProgress", "VerifierInput", "VerifierOutput",
    "ModelSpec", "RuntimeConfig", "ChatMessage", "ToolDefinition", "Usage",
    "text_part", "tool_call_part", "tool_call_response_part", "reasoning_part",
    "to_json", "normalize_model_stack", "normalize_runtime_config",
]

JSON = Any


class Verdict(str, enum.Enum):
    CONTINUE = "continue"
    REPLAN = "replan"
    END = "end"


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    ABORTED = "aborted"


class ToolStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"


class OrchestratorState(str, enum.Enum):
    PLANNING = "planning"
    WORKING = "working"
    VERIFYING = "verifying"
    DONE = "done"


def _enum_value(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def to_json(v: Any) -> JSON:
    """A payload object, enum, dataclass list or plain JSON value as plain JSON."""
    if isinstance(v, enum.Enum):
        return v.value
    m = getattr(v, "to_json", None)
    if callable(m):
        return m()
    if isinstance(v, Mapping):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return v


def _put_opt(d: Dict[str, JSON], key: str, v: Any) -> None:
    if v is not None:
        d[key] = to_json(v)


@dataclass
class PlanStep:
    index: int
    description: str
    #: The tool the planner expects the step to use.
    tool: Optional[str] = None

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"index": self.index, "description": self.description}
        _put_opt(d, "tool", self.tool)
        return d


@dataclass
class FailureNote:
    """A failure the worker already met, given to it as context."""
    error_class: str
    message: str = ""
    tool: Optional[str] = None

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {}
        _put_opt(d, "tool", self.tool)
        d["error_class"] = self.error_class
        d["message"] = self.message
        return d


@dataclass
class PlannerInput:
    goal: str
    #: Snapshot of the environment the planner saw.
    observation: JSON = None
    #: Condensed history of earlier cycles (one line per step).
    history: List[str] = field(default_factory=list)
    #: Tool availability: tool name -> usable now.
    tool_mask: Dict[str, bool] = field(default_factory=dict)
    #: Set on a replan: the feedback that caused it.
    replan_reason: Optional[str] = None

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"goal": self.goal, "observation": to_json(self.observation),
                              "history": list(self.history), "tool_mask": dict(self.tool_mask)}
        _put_opt(d, "replan_reason", self.replan_reason)
        return d


@dataclass
class PlannerOutput:
    plan: List[PlanStep]
    rationale: str = ""
    #: Confidence in [0, 1].
    confidence: Optional[float] = None

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"plan": to_json(self.plan), "rationale": self.rationale}
        _put_opt(d, "confidence", self.confidence)
        return d


@dataclass
class WorkerInput:
    current_step: str
    #: Index of the plan step being executed, when known.
    plan_step: Optional[int] = None
    env_state: JSON = None
    allowed_tools: List[str] = field(default_factory=list)
    prior_failures: List[FailureNote] = field(default_factory=list)

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {}
        _put_opt(d, "plan_step", self.plan_step)
        d.update({"current_step": self.current_step, "env_state": to_json(self.env_state),
                  "allowed_tools": list(self.allowed_tools), "prior_failures": to_json(self.prior_failures)})
        return d


@dataclass
class WorkerAction:
    #: ``tool_call``, ``respond`` or ``give_up``.
    action: str
    tool: Optional[str] = None
    arguments: JSON = None
    #: Short reasoning summary.
    reasoning: str = ""

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"action": self.action}
        _put_opt(d, "tool", self.tool)
        d["arguments"] = to_json(self.arguments)
        d["reasoning"] = self.reasoning
        return d


@dataclass
class WorkerOutput:
    status: Union[ToolStatus, str] = ToolStatus.OK
    summary: str = ""
    error_class: Optional[str] = None
    #: Retries made within this worker step.
    retries: int = 0

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"status": _enum_value(self.status), "summary": self.summary}
        _put_opt(d, "error_class", self.error_class)
        d["retries"] = self.retries
        return d


@dataclass
class PlanProgress:
    completed: int = 0
    total: int = 0

    def to_json(self) -> Dict[str, JSON]:
        return {"completed": self.completed, "total": self.total}


@dataclass
class VerifierInput:
    plan_progress: PlanProgress = field(default_factory=PlanProgress)
    #: One line per action taken so far in the cycle.
    action_traces: List[str] = field(default_factory=list)
    evidence: JSON = None

    def to_json(self) -> Dict[str, JSON]:
        return {"plan_progress": to_json(self.plan_progress), "action_traces": list(self.action_traces),
                "evidence": to_json(self.evidence)}


@dataclass
class VerifierOutput:
    verdict: Union[Verdict, str]
    feedback: str = ""
    risk_flags: List[str] = field(default_factory=list)
    confidence: Optional[float] = None

    def __post_init__(self) -> None:
        self.verdict = Verdict(_enum_value(self.verdict))

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"verdict": _enum_value(self.verdict), "feedback": self.feedback,
                              "risk_flags": list(self.risk_flags)}
        _put_opt(d, "confidence", self.confidence)
        return d


# --- run configuration ----------------------------------------------------------------------

@dataclass
class ModelSpec:
    """Model and hyper-parameters of one role."""
    model: str
    params: Dict[str, JSON] = field(default_factory=dict)

    def to_json(self) -> Dict[str, JSON]:
        return {"model": self.model, "params": to_json(self.params)}


@dataclass
class RuntimeConfig:
    max_steps: int = 0
    #: Prompt template name -> where it came from (file, registry, inline).
    prompt_sources: Dict[str, str] = field(default_factory=dict)
    #: ``real`` (tools really run) or ``synthetic``.
    tool_mode: str = ""
    #: Anything else the agent records (flattened into the object, as on the Rust side).
    extra: Dict[str, JSON] = field(default_factory=dict)

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"max_steps": self.max_steps, "prompt_sources": dict(self.prompt_sources),
                              "tool_mode": self.tool_mode}
        for k, v in self.extra.items():
            if k in d:
                raise ValueError(f"runtime_config extra key {k!r} collides with a typed field")
            d[k] = to_json(v)
        return d


def normalize_model_stack(model_stack: Mapping[str, Any]) -> Dict[str, Dict[str, JSON]]:
    """``{role: ModelSpec | {"model", "params"?} | "model-name"}`` -> the JSON the Rust
    ``BTreeMap<String, ModelSpec>`` serializes to (``params`` always present)."""
    out: Dict[str, Dict[str, JSON]] = {}
    for role, spec in model_stack.items():
        if not isinstance(role, str):
            raise TypeError(f"model_stack keys must be str, got {role!r}")
        if isinstance(spec, str):
            spec = ModelSpec(spec)
        elif isinstance(spec, Mapping):
            unknown = set(spec) - {"model", "params"}
            if unknown:
                raise ValueError(f"model_stack[{role!r}]: unknown keys {sorted(unknown)} "
                                 "(a model spec is {model, params}; put the rest in params)")
            if not isinstance(spec.get("model"), str):
                raise ValueError(f"model_stack[{role!r}]: 'model' must be a string")
            spec = ModelSpec(spec["model"], dict(spec.get("params") or {}))
        elif not isinstance(spec, ModelSpec):
            raise TypeError(f"model_stack[{role!r}]: expected ModelSpec, dict or str, got {type(spec).__name__}")
        out[role] = spec.to_json()
    return out


def normalize_runtime_config(cfg: Union[RuntimeConfig, Mapping[str, Any], None]) -> Dict[str, JSON]:
    """A runtime config -> the JSON the Rust ``RuntimeConfig`` serializes to: ``max_steps``
    (default 0), ``prompt_sources`` (default ``{}``), ``tool_mode`` (default ``""``) always
    present, every other key kept as is."""
    if cfg is None:
        cfg = RuntimeConfig()
    if isinstance(cfg, Mapping):
        rest = {k: v for k, v in cfg.items() if k not in ("max_steps", "prompt_sources", "tool_mode")}
        cfg = RuntimeConfig(max_steps=cfg.get("max_steps", 0), prompt_sources=dict(cfg.get("prompt_sources") or {}),
                            tool_mode=cfg.get("tool_mode", ""), extra=rest)
    if not isinstance(cfg, RuntimeConfig):
        raise TypeError(f"expected RuntimeConfig or dict, got {type(cfg).__name__}")
    if isinstance(cfg.max_steps, bool) or not isinstance(cfg.max_steps, int) or not 0 <= cfg.max_steps < 2**32:
        raise ValueError(f"runtime_config.max_steps must be an int in [0, 2**32), got {cfg.max_steps!r}")
    if not isinstance(cfg.tool_mode, str):
        raise ValueError("runtime_config.tool_mode must be a string")
    for k, v in cfg.prompt_sources.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError("runtime_config.prompt_sources must map str to str")
    return cfg.to_json()


# --- LLM conversation (traj_schema::llm) ----------------------------------------------------

def text_part(content: str) -> Dict[str, JSON]:
    return {"type": "text", "content": content}


def reasoning_part(content: str) -> Dict[str, JSON]:
    return {"type": "reasoning", "content": content}


def tool_call_part(id: str, name: str, arguments: JSON) -> Dict[str, JSON]:
    """A tool call the model made; ``arguments`` as a JSON value (an object when valid JSON)."""
    return {"type": "tool_call", "id": id, "name": name, "arguments": to_json(arguments)}


def tool_call_response_part(id: str, response: JSON) -> Dict[str, JSON]:
    return {"type": "tool_call_response", "id": id, "response": to_json(response)}


@dataclass
class ChatMessage:
    #: ``system``, ``user``, ``assistant``, ``tool``.
    role: str
    parts: List[Dict[str, JSON]] = field(default_factory=list)
    name: Optional[str] = None
    #: Output messages only: why the model stopped.
    finish_reason: Optional[str] = None

    @classmethod
    def text(cls, role: str, content: str, finish_reason: Optional[str] = None) -> "ChatMessage":
        return cls(role, [text_part(content)], finish_reason=finish_reason)

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"role": self.role, "parts": to_json(self.parts)}
        _put_opt(d, "name", self.name)
        _put_opt(d, "finish_reason", self.finish_reason)
        return d


@dataclass
class ToolDefinition:
    name: str
    description: str = ""
    #: JSON Schema of the arguments.
    parameters: JSON = None
    strict: Optional[bool] = None

    def to_json(self) -> Dict[str, JSON]:
        d: Dict[str, JSON] = {"name": self.name, "description": self.description,
                              "parameters": to_json(self.parameters)}
        _put_opt(d, "strict", self.strict)
        return d


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def to_json(self) -> Dict[str, JSON]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


Payload = Union[PlannerInput, PlannerOutput, WorkerInput, WorkerAction, WorkerOutput, VerifierInput,
                VerifierOutput, Mapping[str, Any]]
Messages = Sequence[Union[ChatMessage, Mapping[str, Any]]]
