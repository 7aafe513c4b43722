//! JSON Schemas of `session.json`, an `events.jsonl` row and each payload, generated from the
//! Rust types. `proto/schemas/` holds the published copies; a test fails when they drift.

use crate::event::{self, Event};
use crate::session::Session;
use schemars::{schema_for, JsonSchema, Schema};

fn pretty(s: &Schema) -> String {
    serde_json::to_string_pretty(s).unwrap_or_default() + "\n"
}

fn of<T: JsonSchema>() -> String {
    pretty(&schema_for!(T))
}

/// (file name, schema text) for every published schema.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("session.schema.json", of::<Session>()),
        ("event.schema.json", of::<Event>()),
        (
            "payload.planner_input.schema.json",
            of::<event::PlannerInput>(),
        ),
        (
            "payload.planner_output.schema.json",
            of::<event::PlannerOutput>(),
        ),
        (
            "payload.worker_input.schema.json",
            of::<event::WorkerInput>(),
        ),
        (
            "payload.worker_action.schema.json",
            of::<event::WorkerAction>(),
        ),
        (
            "payload.worker_tool_call.schema.json",
            of::<event::WorkerToolCall>(),
        ),
        (
            "payload.worker_tool_result.schema.json",
            of::<event::WorkerToolResult>(),
        ),
        (
            "payload.worker_output.schema.json",
            of::<event::WorkerOutput>(),
        ),
        (
            "payload.verifier_input.schema.json",
            of::<event::VerifierInput>(),
        ),
        (
            "payload.verifier_output.schema.json",
            of::<event::VerifierOutput>(),
        ),
        (
            "payload.orchestrator_transition.schema.json",
            of::<event::OrchestratorTransition>(),
        ),
        (
            "payload.env_observation.schema.json",
            of::<event::EnvObservation>(),
        ),
        (
            "payload.episode_error.schema.json",
            of::<event::EpisodeError>(),
        ),
        ("payload.episode_end.schema.json", of::<event::EpisodeEnd>()),
        (
            "payload.llm_call.schema.json",
            of::<crate::llm::LlmCallRecord>(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn every_event_type_has_a_payload_schema() {
        let names: Vec<&str> = all().iter().map(|(n, _)| *n).collect();
        for t in EventType::ALL {
            let want = format!("payload.{}.schema.json", t.as_str());
            assert!(names.contains(&want.as_str()), "missing {want}");
        }
    }

    #[test]
    fn event_schema_names_every_event_type() {
        let text = of::<Event>();
        for t in EventType::ALL {
            assert!(
                text.contains(&format!("\"{}\"", t.as_str())),
                "{}",
                t.as_str()
            );
        }
    }
}
