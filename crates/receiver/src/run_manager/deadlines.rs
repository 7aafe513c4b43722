//! When open runs come due, without scanning every open run: each activity of a run is queued
//! with its time (so the queue is in time order), and an entry is acted on only if it is still
//! the run's last activity. A run with its root is due a grace period after its last activity; a
//! run without one waits in a second queue until the idle timeout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use traj_schema::ids::TraceId;

#[derive(Default)]
pub(crate) struct Deadlines {
    /// (last activity, trace), oldest first: checked against the grace period.
    grace: VecDeque<(Instant, TraceId)>,
    /// Entries past the grace period whose run had no root then: checked against the idle timeout.
    idle: VecDeque<(Instant, TraceId)>,
}

/// What the owner says of a candidate.
pub(crate) enum Candidate {
    /// The entry is stale (the run is gone or had activity since): drop it.
    Stale,
    /// The run has its root: it is due.
    Due,
    /// No root yet: wait for the idle timeout.
    NoRoot,
}

impl Deadlines {
    /// Records an activity of `trace` at `at` (not earlier than the previous one recorded).
    pub fn touch(&mut self, trace: TraceId, at: Instant) {
        self.grace.push_back((at, trace));
    }

    /// Up to `budget` traces whose deadline passed at `now`, in deadline order. `judge` tells,
    /// for (trace, entry time), whether the entry is stale, the run has a root, or has none.
    pub fn due(
        &mut self,
        now: Instant,
        grace: Duration,
        idle: Duration,
        budget: usize,
        mut judge: impl FnMut(&TraceId, Instant) -> Candidate,
    ) -> Vec<TraceId> {
        let mut out = Vec::new();
        while out.len() < budget {
            let Some(&(at, trace)) = self.grace.front() else {
                break;
            };
            if now.saturating_duration_since(at) < grace {
                break;
            }
            self.grace.pop_front();
            match judge(&trace, at) {
                Candidate::Stale => {}
                Candidate::Due => out.push(trace),
                Candidate::NoRoot => self.idle.push_back((at, trace)),
            }
        }
        while out.len() < budget {
            let Some(&(at, trace)) = self.idle.front() else {
                break;
            };
            if now.saturating_duration_since(at) < idle {
                break;
            }
            self.idle.pop_front();
            if !matches!(judge(&trace, at), Candidate::Stale) {
                out.push(trace);
            }
        }
        out
    }

    /// Queued entries (stale ones included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.grace.len() + self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_come_due_in_order_and_stale_entries_are_skipped() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let mut d = Deadlines::default();
        d.touch(a, t0);
        d.touch(b, t0 + ms(1));
        d.touch(a, t0 + ms(2)); // a's first entry is now stale
        d.touch(c, t0 + ms(3));
        let last = |t: &TraceId| match *t {
            x if x == a => t0 + ms(2),
            x if x == b => t0 + ms(1),
            _ => t0 + ms(3),
        };
        // c has no root: after the grace period it waits for the idle timeout.
        let judge = |t: &TraceId, at: Instant| {
            if at != last(t) {
                Candidate::Stale
            } else if *t == c {
                Candidate::NoRoot
            } else {
                Candidate::Due
            }
        };
        let (grace, idle) = (ms(10), ms(100));
        assert!(d.due(t0 + ms(5), grace, idle, 10, judge).is_empty());
        assert_eq!(
            d.due(t0 + ms(12), grace, idle, 1, judge),
            vec![b],
            "budget of one"
        );
        assert_eq!(d.due(t0 + ms(20), grace, idle, 10, judge), vec![a]);
        assert_eq!(d.len(), 1, "c waits for the idle timeout");
        assert_eq!(d.due(t0 + ms(103), grace, idle, 10, judge), vec![c]);
        assert_eq!(d.len(), 0);
    }
}
