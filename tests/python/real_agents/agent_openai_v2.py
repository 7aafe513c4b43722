"""Planner -> Worker -> Verifier agent: the real `openai` client, auto-instrumented by
`opentelemetry-instrumentation-openai-v2`; the agent's own role spans carry traj schema v2 keys.

--mode span : content in `chat` span attributes (gen_ai_latest_experimental + SPAN_ONLY)
--mode event: content in OTLP log records (EVENT_ONLY, LoggerProvider + OTLP log exporter)
--mode legacy: the older semconv v1.30 path (no OTEL_SEMCONV_STABILITY_OPT_IN,
               OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true): one OTLP log record per
               message (`gen_ai.{system,user,assistant,tool}.message`) and per choice
               (`gen_ai.choice`), content in the log body (LoggerProvider + OTLP log exporter)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvw_common as pc  # noqa: E402


def main():
    p = pc.base_args(__doc__)
    p.add_argument("--mode", choices=["span", "event", "legacy"], default="span")
    a = p.parse_args()
    if a.mode == "legacy":
        os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
        os.environ.pop("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", None)
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    else:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY" if a.mode == "span" else "EVENT_ONLY"
    if a.mode == "event":
        os.environ["OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"] = "true"
    tp, lp = pc.otel_providers(a.endpoint, a.protocol, a.service_name or f"pvw-openai-v2-{a.mode}",
                               with_logs=(a.mode in ("event", "legacy")))
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    import openai

    kwargs = {"tracer_provider": tp}
    if lp is not None:
        kwargs["logger_provider"] = lp
    OpenAIInstrumentor().instrument(**kwargs)
    client = openai.OpenAI(base_url=a.stub, api_key="sk-stub-not-a-secret", max_retries=0)
    tools = pc.Tools(pc.make_workspace())
    tracer = tp.get_tracer("pvw-agent")
    runs = [pc.run_native_episode(tracer, client, goal, tools) for goal in a.goal]
    pc.shutdown(tp, lp)
    pc.write_truth(a.truth, f"openai_v2_{a.mode}", runs)
    print(" ".join(r["trace_id"] for r in runs))


if __name__ == "__main__":
    main()
