//! A bounded list of assembly warnings (malformed payloads, broken links, ...): the first
//! [`MAX_WARNINGS`] are kept verbatim and the rest only counted, so hostile input cannot make a
//! run's warning list grow without bound.

/// How many warnings are kept verbatim per run.
pub const MAX_WARNINGS: usize = 100;

#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    dropped: u64,
}

impl Warnings {
    pub fn push(&mut self, w: String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(w);
        } else {
            self.dropped += 1;
        }
    }

    pub fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list
                .push(format!("... and {} more warnings", self.dropped));
        }
        self.list
    }
}
