"""An agent that knows nothing of traj: one episode with only GenAI semantic-convention spans
(workflow → planner agent with its chat call → executor agent with a tool call), shared by the
tests that send such traffic through the receiver or a Collector."""
import json


def genai_episode(tracer, n, planner="planner", unmapped_span=False):
    """Records episode `n`; `planner` names the planning agent; `unmapped_span` adds a span that
    matches no mapping rule. Returns the trace id (32 hex digits)."""
    with tracer.start_as_current_span("invoke_workflow research", attributes={
            "gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "research"}) as root:
        with tracer.start_as_current_span(f"invoke_agent {planner}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": planner,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"find fact {n}"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "1. search"}]}]),
        }):
            with tracer.start_as_current_span("chat gpt-x", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-x",
                    "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 5}):
                pass
        with tracer.start_as_current_span("invoke_agent executor", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "executor"}):
            with tracer.start_as_current_span("execute_tool search", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                    "gen_ai.tool.call.id": f"c{n}", "gen_ai.tool.call.arguments": json.dumps({"q": f"fact {n}"}),
                    "gen_ai.tool.call.result": json.dumps({"hits": 1})}):
                pass
        if unmapped_span:
            with tracer.start_as_current_span("http.request GET", attributes={"http.request.method": "GET"}):
                pass  # matches no rule: kept in raw, counted as unmapped
        return format(root.get_span_context().trace_id, "032x")
