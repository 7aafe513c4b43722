//! OTLP partial-success bookkeeping shared by the span and log checks: count what was rejected,
//! name the first few problems with their location, summarise the rest.

/// How many problems the rejection message names before summarising the rest.
const MAX_PROBLEMS_NAMED: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct Rejections {
    count: u64,
    named: Vec<String>,
}

impl Rejections {
    /// Records one rejected item; `at` (its location) is only built when it will be named.
    pub fn add(&mut self, at: impl FnOnce() -> String, problem: &str) {
        self.count += 1;
        if self.named.len() < MAX_PROBLEMS_NAMED {
            self.named.push(format!("{}: {problem}", at()));
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `N <noun>s rejected: <first problems>[; and M more]`, or empty when nothing was.
    pub fn message(&self, noun: &str) -> String {
        if self.count == 0 {
            return String::new();
        }
        let more = self.count as usize - self.named.len();
        format!(
            "{} {noun}{} rejected: {}{}",
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.named.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    }
}
