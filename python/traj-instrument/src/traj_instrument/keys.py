"""Attribute keys and values of schema v2 (``proto/attributes.md``), as used by the helpers.

Agent code written with this package never needs them; they are public for tests and for code
that reads spans back.
"""
from __future__ import annotations

SCHEMA_VERSION = "2"

# run
SCHEMA_VERSION_KEY = "traj.schema_version"
ROLE = "traj.role"
STEP = "traj.step"
GOAL = "traj.goal"
GOAL_FAMILY = "traj.goal_family"
TASK_ID = "traj.task_id"
SEED = "traj.seed"
SEED_KIND = "traj.seed_kind"
CONFIG_HASH = "traj.config_hash"
PROMPT_HASH = "traj.prompt_hash"
TOOLSET_HASH = "traj.toolset_hash"
MODEL_STACK = "traj.model_stack"
RUNTIME_CONFIG = "traj.runtime_config"
REDACTION_POLICY = "traj.redaction.policy"
REDACTION_VERSION = "traj.redaction.version"
OUTCOME = "traj.outcome"
FAILURE_CLASS = "traj.failure_class"
SPANS_DROPPED = "traj.spans_dropped"
# steps
PLANNER_INPUT = "traj.planner.input"
PLANNER_OUTPUT = "traj.planner.output"
WORKER_INPUT = "traj.worker.input"
WORKER_ACTION = "traj.worker.action"
WORKER_OUTPUT = "traj.worker.output"
VERIFIER_INPUT = "traj.verifier.input"
VERIFIER_OUTPUT = "traj.verifier.output"
VERDICT = "traj.verdict"
# tools, errors
TOOL_STATUS = "traj.tool.status"
ERROR_CLASS = "traj.error.class"
RETRY_ATTEMPT = "traj.retry.attempt"
# llm
PROMPT_RENDERED = "traj.prompt.rendered"
# span events
TRANSITION_EVENT = "traj.transition"
TRANSITION_FROM = "traj.transition.from"
TRANSITION_TO = "traj.transition.to"
TRANSITION_REASON = "traj.transition.reason"
OBSERVATION_EVENT = "traj.observation"
OBSERVATION_SOURCE = "traj.observation.source"
OBSERVATION_DATA = "traj.observation.data"
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
# GenAI / OpenInference
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
ERROR_TYPE = "error.type"

# (span name, gen_ai.operation.name, gen_ai.agent.name, openinference.span.kind) per step role
STEP_ROLES = {
    "planner": ("plan planner", "plan", "planner", "AGENT"),
    "worker": ("invoke_agent worker", "invoke_agent", "worker", "AGENT"),
    "verifier": ("invoke_agent verifier", "invoke_agent", "verifier", "EVALUATOR"),
}
