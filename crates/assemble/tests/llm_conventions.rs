//! The LLM-content conventions no library on this machine emits any more (they still come from
//! older releases in the field): OpenLLMetry's flattened `gen_ai.prompt.N.*`, the older GenAI
//! per-message span events, OpenInference multimodal contents; and a native worker whose
//! auto-instrumented child is an LLM call without traj keys.

mod common;

use common::*;
use serde_json::json;
use traj_assemble::{assemble, MappingRules};
use traj_schema::{ContentSource, LlmCallRecord, MessagePart, Payload};

fn calls(spans: Vec<traj_assemble::SpanRecord>) -> (Vec<LlmCallRecord>, Vec<String>) {
    let run = assemble(TRACE, &spans, &MappingRules::default());
    assert_valid(&run);
    let calls = run
        .events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::LlmCall(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    (calls, run.warnings)
}

/// A native run with one worker whose child span is `child` (no traj keys on it).
fn native_with(
    child: opentelemetry_proto::tonic::trace::v1::Span,
) -> Vec<traj_assemble::SpanRecord> {
    vec![
        rec(run_span(1, 0, 100, "success")),
        rec(worker(2, 1, 0, 10, 90, 0)),
        rec(child),
    ]
}

#[test]
fn openllmetry_flattened_prompt_and_completion() {
    let mut sp = span(3, Some(2), "openai.chat", 20, 30);
    sp.attributes = vec![
        s("llm.request.type", "chat"),
        s("gen_ai.request.model", "gpt-x"),
        i("gen_ai.usage.prompt_tokens", 11),
        i("gen_ai.usage.completion_tokens", 5),
        s("gen_ai.prompt.0.role", "system"),
        s("gen_ai.prompt.0.content", "be brief"),
        s("gen_ai.prompt.1.role", "user"),
        s("gen_ai.prompt.1.content", "read a"),
        s("gen_ai.prompt.2.role", "assistant"),
        s("gen_ai.prompt.2.tool_calls.0.id", "c1"),
        s("gen_ai.prompt.2.tool_calls.0.name", "read_file"),
        s("gen_ai.prompt.2.tool_calls.0.arguments", r#"{"path": "a"}"#),
        s("gen_ai.prompt.3.role", "tool"),
        s("gen_ai.prompt.3.tool_call_id", "c1"),
        s("gen_ai.prompt.3.content", "hello"),
        s("gen_ai.completion.0.role", "assistant"),
        s("gen_ai.completion.0.content", "a says hello"),
        s("gen_ai.completion.0.finish_reason", "stop"),
        s("llm.request.functions.0.name", "read_file"),
        s("llm.request.functions.0.description", "Read a file"),
        s(
            "llm.request.functions.0.parameters",
            r#"{"type": "object", "required": ["path"]}"#,
        ),
    ];
    let (calls, _) = calls(native_with(sp));
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.content_source, ContentSource::Traceloop);
    assert_eq!(
        (
            c.model.as_str(),
            c.usage.input_tokens,
            c.usage.output_tokens
        ),
        ("gpt-x", 11, 5)
    );
    let roles: Vec<&str> = c.input_messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
    assert_eq!(
        c.input_messages[2].parts,
        vec![MessagePart::ToolCall {
            id: "c1".into(),
            name: "read_file".into(),
            arguments: json!({"path": "a"})
        }]
    );
    assert_eq!(
        c.input_messages[3].parts,
        vec![MessagePart::ToolCallResponse {
            id: "c1".into(),
            response: json!("hello")
        }]
    );
    assert_eq!(c.output_messages[0].text(), "a says hello");
    assert_eq!(c.finish_reasons, ["stop"]);
    assert_eq!(c.tool_definitions[0].parameters["required"][0], "path");
}

#[test]
fn older_genai_span_events_in_order() {
    let mut sp = span(3, Some(2), "chat gpt-x", 20, 30);
    sp.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "gpt-x"),
    ];
    sp.events = vec![
        ev("gen_ai.system.message", 21, vec![s("content", "be brief")]),
        ev("gen_ai.user.message", 21, vec![s("content", "list /")]),
        ev(
            "gen_ai.assistant.message",
            22,
            vec![j(
                "tool_calls",
                json!([{"id": "c7", "type": "function", "function": {"name": "ls", "arguments": "{\"p\": \"/\"}"}}]),
            )],
        ),
        ev(
            "gen_ai.tool.message",
            23,
            vec![s("content", "bin etc"), s("id", "c7")],
        ),
        ev(
            "gen_ai.choice",
            29,
            vec![
                s("finish_reason", "stop"),
                j(
                    "message",
                    json!({"role": "assistant", "content": "bin and etc"}),
                ),
            ],
        ),
    ];
    let (calls, _) = calls(native_with(sp));
    let c = &calls[0];
    assert_eq!(c.content_source, ContentSource::GenaiSpanEvents);
    assert_eq!(c.input_messages.len(), 4);
    assert_eq!(c.input_messages[0].text(), "be brief");
    assert!(
        matches!(&c.input_messages[2].parts[0], MessagePart::ToolCall { id, arguments, .. } if id == "c7" && arguments["p"] == "/")
    );
    assert!(
        matches!(&c.input_messages[3].parts[0], MessagePart::ToolCallResponse { id, .. } if id == "c7")
    );
    assert_eq!(c.output_messages[0].text(), "bin and etc");
    assert_eq!(c.output_messages[0].finish_reason.as_deref(), Some("stop"));
}

#[test]
fn openinference_images_are_references_never_inline() {
    let mut sp = span(3, Some(2), "ChatCompletion", 20, 30);
    sp.attributes = vec![
        s("openinference.span.kind", "LLM"),
        s("llm.model_name", "gpt-v"),
        s("llm.input_messages.0.message.role", "user"),
        s(
            "llm.input_messages.0.message.contents.0.message_content.type",
            "text",
        ),
        s(
            "llm.input_messages.0.message.contents.0.message_content.text",
            "what is this?",
        ),
        s(
            "llm.input_messages.0.message.contents.1.message_content.type",
            "image",
        ),
        s(
            "llm.input_messages.0.message.contents.1.message_content.image.image.url",
            "data:image/png;base64,aGVsbG8=",
        ),
        s(
            "llm.input_messages.0.message.contents.2.message_content.type",
            "image",
        ),
        s(
            "llm.input_messages.0.message.contents.2.message_content.image.image.url",
            "https://example.invalid/cat.png",
        ),
        s("llm.output_messages.0.message.role", "assistant"),
        s("llm.output_messages.0.message.content", "a cat"),
    ];
    let (calls, _) = calls(native_with(sp));
    let parts = &calls[0].input_messages[0].parts;
    assert_eq!(parts[0], MessagePart::text("what is this?"));
    match &parts[1] {
        MessagePart::Blob {
            mime_type,
            size_bytes,
            sha256,
            ..
        } => {
            assert_eq!(mime_type.as_deref(), Some("image/png"));
            assert_eq!(*size_bytes, 5);
            assert_eq!(sha256.len(), 64);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&parts[2], MessagePart::Uri { uri, .. } if uri.ends_with("cat.png")));
    let text = serde_json::to_string(&calls[0]).unwrap();
    assert!(!text.contains("aGVsbG8="), "no base64 in the record");
}

#[test]
fn a_native_llm_span_without_content_is_recorded_with_source_none() {
    let mut sp = span(3, Some(2), "chat gpt-x", 20, 30);
    sp.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "gpt-x"),
        i("gen_ai.usage.input_tokens", 9),
    ];
    let (calls, _) = calls(native_with(sp));
    assert_eq!(
        calls.len(),
        1,
        "the auto-instrumented child is an LLM call of the worker"
    );
    assert_eq!(calls[0].content_source, ContentSource::None);
    assert_eq!(calls[0].usage.input_tokens, 9);
    assert!(!calls[0].has_conversation());
}

#[test]
fn unknown_part_types_and_non_array_messages_are_warnings() {
    let mut sp = span(3, Some(2), "chat gpt-x", 20, 30);
    sp.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.input.messages", r#"{"role": "user"}"#),
        s(
            "gen_ai.output.messages",
            r#"[{"role": "assistant", "parts": [{"type": "hologram"}, {"type": "text", "content": "ok"}]}]"#,
        ),
    ];
    let (calls, warnings) = calls(native_with(sp));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not an array of messages")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("hologram")),
        "{warnings:?}"
    );
    assert_eq!(calls[0].output_messages[0].text(), "ok");
}
