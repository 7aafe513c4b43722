//! Events before their ids and parents are final: what each pass adds, and the slots of each
//! span's input / action / output event that later passes point at.

use traj_schema::{EventType, Payload, Role};

/// How an event's parent is found.
#[derive(Debug, Clone, Copy)]
pub(super) enum Par {
    Root,
    Event(usize),
    Broken([u8; 8]),
    /// Resolved after all ids are known.
    Pending,
    /// The last role event at or before this time (episode_error, root span events).
    LastBefore,
    /// The last event of any kind at or before this time (episode_end).
    LastAny,
    /// The last step output (planner / worker / verifier) at or before this time, else root.
    PrevStep,
}

pub(super) struct Draft<'r> {
    pub time: u64,
    pub node: usize,
    pub ty: EventType,
    pub ordinal: u32,
    pub role: Role,
    pub step: u32,
    pub parent: Par,
    pub payload: Payload,
    pub source: &'r str,
    /// Derived from a non-root span (a candidate for `LastBefore`).
    pub role_event: bool,
}

/// A span's input, action and output events (indices into the drafts).
#[derive(Default, Clone, Copy)]
pub(super) struct Slots {
    pub input: Option<usize>,
    pub action: Option<usize>,
    pub output: Option<usize>,
}

pub(super) struct Drafts<'r> {
    pub list: Vec<Draft<'r>>,
    pub slots: Vec<Slots>,
}

impl<'r> Drafts<'r> {
    pub fn new(nodes: usize) -> Self {
        Drafts {
            list: Vec::with_capacity(nodes * 3),
            slots: vec![Slots::default(); nodes],
        }
    }

    /// Adds a draft and returns its index.
    pub fn push(&mut self, d: Draft<'r>) -> usize {
        self.list.push(d);
        self.list.len() - 1
    }

    pub fn time(&self, d: usize) -> u64 {
        self.list[d].time
    }
}
