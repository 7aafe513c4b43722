"""Planner -> Worker -> Verifier agent: the real `openai` client, auto-instrumented by Traceloop's
OpenLLMetry `opentelemetry-instrumentation-openai` (not the -v2 package); the agent's own role spans
carry traj schema v2 keys.

Content capture is on (`TRACELOOP_TRACE_CONTENT=true`, which is also this package's default) and the
instrumentor runs with its default `use_attributes=True`: prompts / completions go to the `openai.chat`
span as attributes, nothing to logs. Traceloop's own metrics are switched off (no MeterProvider here).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvw_common as pc  # noqa: E402


def main():
    a = pc.base_args(__doc__).parse_args()
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    os.environ["TRACELOOP_METRICS_ENABLED"] = "false"
    tp, lp = pc.otel_providers(a.endpoint, a.protocol, a.service_name or "pvw-openllmetry")
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    import openai

    OpenAIInstrumentor().instrument(tracer_provider=tp)
    client = openai.OpenAI(base_url=a.stub, api_key="sk-stub-not-a-secret", max_retries=0)
    tools = pc.Tools(pc.make_workspace())
    tracer = tp.get_tracer("pvw-agent")
    runs = [pc.run_native_episode(tracer, client, goal, tools) for goal in a.goal]
    pc.shutdown(tp, lp)
    pc.write_truth(a.truth, "openllmetry", runs)
    print(" ".join(r["trace_id"] for r in runs))


if __name__ == "__main__":
    main()
