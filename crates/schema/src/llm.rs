//! What a model saw and said: one LLM call as recorded by any instrumentation (GenAI, OpenInference,
//! OpenLLMetry, traj), normalized to the GenAI message-parts form. The payload of `llm_call` events
//! and the source of every LLM-grounded dataset row.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One part of a message (the GenAI `parts` vocabulary). Binary content is never inlined:
/// `blob` keeps its size and digest, `uri` / `file` their reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessagePart {
    Text {
        content: String,
    },
    ToolCall {
        #[serde(default)]
        id: String,
        name: String,
        /// The arguments as a JSON value (an object when the model produced valid JSON; the raw
        /// string otherwise).
        #[serde(default)]
        arguments: Value,
    },
    ToolCallResponse {
        #[serde(default)]
        id: String,
        /// The tool result the model was given (a string as sent, or structured).
        #[serde(default)]
        response: Value,
    },
    Reasoning {
        content: String,
    },
    /// Inline binary content, kept as a reference only: its bytes never reach a row.
    Blob {
        #[serde(default)]
        modality: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        size_bytes: u64,
        /// Lowercase hex sha256 of the decoded content.
        sha256: String,
    },
    Uri {
        #[serde(default)]
        modality: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        uri: String,
    },
    File {
        #[serde(default)]
        modality: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        file_id: String,
    },
    /// A part of a type traj does not know, kept as recorded (with a warning in the run).
    Other {
        original_type: String,
        #[serde(default)]
        value: Value,
    },
}

impl MessagePart {
    pub fn text(content: impl Into<String>) -> MessagePart {
        MessagePart::Text {
            content: content.into(),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool` (as recorded; `developer` is kept as is).
    pub role: String,
    #[serde(default)]
    pub parts: Vec<MessagePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Output messages only: why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, parts: Vec<MessagePart>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            parts,
            name: None,
            finish_reason: None,
        }
    }

    /// The text parts joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            if let MessagePart::Text { content } = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(content);
            }
        }
        out
    }
}

/// A tool the model was offered, with its full JSON Schema.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ToolDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments (`{"type": "object", ...}`), as offered.
    #[serde(default)]
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// Where the content of a call was read from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ContentSource {
    /// `gen_ai.system_instructions` / `gen_ai.input.messages` / `gen_ai.output.messages` span attributes.
    GenaiAttributes,
    /// The older GenAI span events (`gen_ai.user.message`, `gen_ai.choice`, ...).
    GenaiSpanEvents,
    /// OTLP log records tied to the span (GenAI event mode).
    GenaiLogs,
    /// OpenInference flattened `llm.input_messages.N.*` / `llm.output_messages.N.*`.
    Openinference,
    /// OpenLLMetry / Traceloop `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`.
    Traceloop,
    /// Only `traj.prompt.rendered` (no messages were recorded).
    RenderedPrompt,
    /// Nothing: content capture was off.
    None,
}

impl ContentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentSource::GenaiAttributes => "genai_attributes",
            ContentSource::GenaiSpanEvents => "genai_span_events",
            ContentSource::GenaiLogs => "genai_logs",
            ContentSource::Openinference => "openinference",
            ContentSource::Traceloop => "traceloop",
            ContentSource::RenderedPrompt => "rendered_prompt",
            ContentSource::None => "none",
        }
    }
}

/// Payload of an `llm_call` event: one model call, what it was given and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmCallRecord {
    /// `chat`, `text_completion`, `generate_content` or `embeddings` (not trained on).
    pub operation: String,
    /// `gen_ai.provider.name` / `gen_ai.system` / `llm.provider`, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The requested model (the response model when no request model was recorded).
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// Request parameters (`temperature`, `max_tokens`, `top_p`, `seed`, ...), as recorded.
    #[serde(default)]
    pub request: Map<String, Value>,
    /// System instructions given apart from the messages (`gen_ai.system_instructions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_instructions: Vec<MessagePart>,
    #[serde(default)]
    pub input_messages: Vec<ChatMessage>,
    #[serde(default)]
    pub output_messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_definitions: Vec<ToolDefinition>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finish_reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Where the messages came from; `none` when content capture was off.
    pub content_source: ContentSource,
    /// Every convention the span's content was found in, when more than one (the first wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_found_in: Vec<ContentSource>,
    /// The call failed (span status ERROR); `error_type` says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

impl LlmCallRecord {
    /// Whether the call has messages a training row can be made of.
    pub fn has_conversation(&self) -> bool {
        self.operation != "embeddings"
            && !self.output_messages.is_empty()
            && (!self.input_messages.is_empty() || !self.system_instructions.is_empty())
    }
}
