//! Phase 5: events from span events (orchestrator transitions, environment observations) and
//! the run's own events (errors, the end with its outcome).

use super::children::{Children, Steps};
use super::drafts::{Draft, Drafts, Par};
use super::tree::Tree;
use crate::attributes::attr_str;
use crate::payloads as pl;
use crate::rules::MappingRules;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::trace::v1::{span::Event as SpanEvent, status::StatusCode};
use traj_schema::event::{EpisodeEnd, EpisodeError};
use traj_schema::{keys, EventType, Outcome, Payload, Role, Verdict};

pub(super) fn transitions_and_observations<'r>(
    tree: &Tree<'_, 'r>,
    steps: &Steps,
    children: &Children,
    drafts: &mut Drafts<'r>,
    w: &mut Warnings,
) {
    for i in 0..tree.len() {
        let Some((role, source)) = tree.roles[i] else {
            continue;
        };
        let sp = &tree.idx.nodes[i].rec.span;
        let (mut n_tr, mut n_obs) = (0u32, 0u32);
        for ev in &sp.events {
            let is_tr = ev.name == keys::EVENT_TRANSITION;
            if !is_tr && ev.name != keys::EVENT_OBSERVATION {
                continue;
            }
            if role == Role::Llm {
                w.push(format!(
                    "span {}: {} on an LLM-call span ignored",
                    tree.idx.nodes[i].hex, ev.name
                ));
                continue;
            }
            let time = event_time(ev, sp.end_time_unix_nano.max(sp.start_time_unix_nano));
            let (ty, ordinal, payload, parent) = if is_tr {
                n_tr += 1;
                let parent = match role {
                    Role::Run => Par::LastBefore,
                    _ => drafts.slots[i]
                        .output
                        .map(Par::Event)
                        .unwrap_or(Par::LastBefore),
                };
                let payload = Payload::OrchestratorTransition(pl::transition(&ev.attributes));
                (EventType::OrchestratorTransition, n_tr - 1, payload, parent)
            } else {
                n_obs += 1;
                let default_source = match role {
                    Role::Tool => pl::tool_facts(sp).tool,
                    r => r.as_str().to_owned(),
                };
                let parent = match role {
                    Role::Run => Par::LastBefore,
                    _ => observation_parent(i, role, time, children, drafts),
                };
                let payload =
                    Payload::EnvObservation(pl::observation(&ev.attributes, &default_source));
                (EventType::EnvObservation, n_obs - 1, payload, parent)
            };
            drafts.push(Draft {
                time,
                node: i,
                ty,
                ordinal,
                role,
                step: if role == Role::Run {
                    steps.max
                } else {
                    steps.of[i]
                },
                parent,
                payload,
                source,
                role_event: role != Role::Run,
            });
        }
    }
}

/// Among the span's own input / action (a tool's own result, a worker's tools' results), the
/// last at or before the observation; else the earliest of them.
fn observation_parent(
    i: usize,
    role: Role,
    time: u64,
    children: &Children,
    drafts: &Drafts,
) -> Par {
    let s = drafts.slots[i];
    let mut cands: Vec<usize> = [s.input, s.action].into_iter().flatten().collect();
    if role == Role::Tool {
        cands.extend(s.output);
    }
    if role == Role::Worker {
        cands.extend(
            children.tools_of[i]
                .iter()
                .filter_map(|&t| drafts.slots[t].output),
        );
    }
    let timed: Vec<(u64, usize)> = cands.iter().map(|&d| (drafts.time(d), d)).collect();
    timed
        .iter()
        .filter(|(t, _)| *t <= time)
        .max_by_key(|(t, d)| (*t, *d))
        .or_else(|| timed.iter().min_by_key(|(t, d)| (*t, *d)))
        .map(|&(_, d)| Par::Event(d))
        .unwrap_or(Par::LastBefore)
}

fn event_time(ev: &SpanEvent, fallback: u64) -> u64 {
    if ev.time_unix_nano == 0 {
        fallback
    } else {
        ev.time_unix_nano
    }
}

/// The run span's `episode_error` events (one per `exception` event, or one for an `ERROR`
/// status without any) and its `episode_end`. Returns the outcome recorded.
pub(super) fn run_events<'r>(
    tree: &Tree<'_, 'r>,
    steps: &Steps,
    last_verdict: Option<Verdict>,
    rules: &MappingRules,
    drafts: &mut Drafts<'r>,
) -> Option<Outcome> {
    let r = tree.root?;
    let sp = &tree.idx.nodes[r].rec.span;
    let a = &sp.attributes;
    let source = tree.source(r);
    let end = sp.end_time_unix_nano.max(sp.start_time_unix_nano);
    let root_error = sp
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let mk = |time, ty, ordinal, parent, payload| Draft {
        time,
        node: r,
        ty,
        ordinal,
        role: Role::Run,
        step: steps.max,
        parent,
        payload,
        source,
        role_event: false,
    };
    let exceptions: Vec<&SpanEvent> = sp
        .events
        .iter()
        .filter(|e| e.name == keys::EVENT_EXCEPTION)
        .collect();
    for (k, ev) in exceptions.iter().enumerate() {
        let fatal = root_error && k + 1 == exceptions.len();
        let payload = Payload::EpisodeError(pl::episode_error(&ev.attributes, fatal));
        drafts.push(mk(
            event_time(ev, end),
            EventType::EpisodeError,
            k as u32,
            Par::LastBefore,
            payload,
        ));
    }
    if root_error && exceptions.is_empty() {
        let class = attr_str(a, keys::ERROR_TYPE)
            .or_else(|| attr_str(a, keys::FAILURE_CLASS))
            .unwrap_or("error");
        let payload = Payload::EpisodeError(EpisodeError {
            error_class: class.to_owned(),
            message: sp
                .status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default(),
            fatal: true,
        });
        drafts.push(mk(
            end,
            EventType::EpisodeError,
            0,
            Par::LastBefore,
            payload,
        ));
    }
    let outcome = match attr_str(a, keys::OUTCOME) {
        Some(o) => Outcome::parse(o),
        None if root_error => Outcome::Failure,
        None if !tree.native
            && rules.facts.success_on_final_end
            && last_verdict == Some(Verdict::End) =>
        {
            Outcome::Success
        }
        None => Outcome::Unknown,
    };
    let payload = Payload::EpisodeEnd(EpisodeEnd {
        outcome,
        steps: steps.taken,
        failure_class: attr_str(a, keys::FAILURE_CLASS).map(str::to_owned),
    });
    drafts.push(mk(end, EventType::EpisodeEnd, 0, Par::LastAny, payload));
    Some(outcome)
}
